"""Quality per CPU minute: train each image family for a fixed wall-clock budget, measuring FID/KID
every few minutes with the shipped MNIST classifier. Prints and saves a table and a PNG plot.

    python benchmarks/quality_per_minute.py                     # 10 minutes per run (default)
    python benchmarks/quality_per_minute.py --minutes 2 --every 1 --runs gan-ns

Runs: GAN with each loss (ns, hinge, wgan-gp) at its defaults, and diffusion at its defaults
sampled with DDIM-50. The clock counts training only; it stops while samples are evaluated.
Models are left in OUT/<run>/ for `aigc-keras evaluate` and `sample`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import machine  # noqa: E402

from aigc_keras.data import load_images  # noqa: E402
from aigc_keras.diffusion.config import DiffusionConfig  # noqa: E402
from aigc_keras.families import get_family  # noqa: E402
from aigc_keras.gan.config import GANConfig  # noqa: E402
from aigc_keras.metrics.evaluate import generate, image_metrics  # noqa: E402
from aigc_keras.metrics.features import feature_net  # noqa: E402
from aigc_keras.training.runner import train  # noqa: E402

RUNS = {
    "gan-ns": (GANConfig, {"loss": "ns"}, {}),
    "gan-hinge": (GANConfig, {"loss": "hinge"}, {}),
    "gan-wgan-gp": (GANConfig, {"loss": "wgan-gp"}, {}),
    "diffusion-ddim50": (DiffusionConfig, {}, {"sampler": "ddim", "steps": 50}),
}


class BudgetEvaluator(keras.callbacks.Callback):
    """Stops `fit` after `budget` seconds of training; every `every` seconds, pauses the clock and
    measures FID/KID of `num` samples against the real reference features."""

    def __init__(self, family, budget, every, num, net, real_features, sample_options, seed=1):
        super().__init__()
        self.family, self.budget, self.every, self.num = family, budget, every, num
        self.net, self.real_features, self.options, self.seed = net, real_features, sample_options, seed
        self.trained, self.next_eval, self.rows = 0.0, every, []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(next(iter(logs.values())))  # wait for the step before reading the clock
        self.trained += time.perf_counter() - self._start
        if self.trained >= self.next_eval or self.trained >= self.budget:
            self.evaluate()
            self.next_eval += self.every
        if self.trained >= self.budget:
            self.model.stop_training = True

    def evaluate(self):
        start = time.perf_counter()
        images = generate(self.family, self.model, self.num, self.seed, **self.options)
        features, _ = self.net(images)
        row = {"minutes": round(self.trained / 60, 2), **image_metrics(features, self.real_features)}
        row["eval_seconds"] = round(time.perf_counter() - start, 1)
        self.rows.append(row)
        print(f"  {row['minutes']:6.2f} min  FID {row['fid']:8.3f}  KID {row['kid']:.4f}", flush=True)


def plot(results: dict, path: Path, width=720, height=440):
    """FID against training minutes, one line per run, drawn with Pillow (no plotting library)."""
    from PIL import Image, ImageDraw

    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    left, right, top, bottom = 60, width - 170, 20, height - 40
    points = [(r["minutes"], r["fid"]) for rows in results.values() for r in rows]
    max_x = max(x for x, _ in points) or 1
    max_y = max(y for _, y in points) * 1.05 or 1
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def xy(x, y):
        return left + (right - left) * x / max_x, bottom - (bottom - top) * y / max_y

    draw.rectangle([left, top, right, bottom], outline="black")
    for i in range(6):
        x, y = max_x * i / 5, max_y * i / 5
        draw.text((xy(x, 0)[0] - 10, bottom + 6), f"{x:.0f}", fill="black")
        draw.text((8, xy(0, y)[1] - 6), f"{y:.1f}", fill="black")
    draw.text(((left + right) / 2 - 60, height - 18), "training minutes (wall clock)", fill="black")
    draw.text((8, 4), "FID (lower is better)", fill="black")
    for i, (name, rows) in enumerate(results.items()):
        colour = colours[i % len(colours)]
        line = [xy(r["minutes"], r["fid"]) for r in rows]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for px, py in line:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.line([right + 15, top + 20 * i + 8, right + 35, top + 20 * i + 8], fill=colour, width=3)
        draw.text((right + 40, top + 20 * i + 2), name, fill="black")
    image.save(path)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="training budget per run")
    parser.add_argument("--every", type=float, default=2.0, help="minutes of training between evaluations")
    parser.add_argument("--num", type=int, default=500, help="samples per evaluation")
    parser.add_argument("--real", type=int, default=5000, help="real images in the reference set")
    parser.add_argument("--runs", nargs="+", choices=list(RUNS), default=list(RUNS))
    parser.add_argument("--out", default="benchmarks/results/quality_per_minute")
    parser.add_argument("--merge", action="store_true",
                        help="add these runs to OUT/results.json (same settings) instead of starting a new table")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_images("mnist")
    net = feature_net("mnist")
    images, _ = data.arrays()
    order = np.random.default_rng(0).permutation(len(images))
    real_features, _ = net(images[order[:args.real]])
    floor_features, _ = net(images[order[args.real:args.real + args.num]])
    floor = image_metrics(floor_features, real_features)
    results = {}
    if args.merge and (out / "results.json").exists():
        results = json.loads((out / "results.json").read_text())["runs"]
    for name in args.runs:
        config_class, overrides, sample_options = RUNS[name]
        config = config_class(epochs=40, **overrides)  # more than any budget here needs
        print(f"{name}: {args.minutes:g} minutes", flush=True)
        family = get_family(config.family)
        evaluator = BudgetEvaluator(family, args.minutes * 60, args.every * 60, args.num, net, real_features,
                                    sample_options)
        train(config, out / name, overwrite=True, callbacks=[evaluator], verbose=0, log=lambda _: None)
        results[name] = evaluator.rows

    report = {"machine": machine(), "minutes": args.minutes, "num_samples": args.num, "num_real": args.real,
              "features": net.name, "real_vs_real": floor, "runs": results}
    (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    plot(results, out / "fid_per_minute.png")
    lines = [f"Machine: {report['machine']}. FID/KID of {args.num} samples against {args.real} real MNIST "
             f"images in the shipped classifier's features; real-vs-real floor FID {floor['fid']:.3f}, "
             f"KID {floor['kid']:.4f}.", "",
             "| run | " + " | ".join(f"{r['minutes']:.0f} min" for r in max(results.values(), key=len)) + " |",
             "|---|" + "---|" * max(len(rows) for rows in results.values())]
    for name, rows in results.items():
        lines.append(f"| {name} | " + " | ".join(f"{r['fid']:.2f} ({r['kid']:.4f})" for r in rows) + " |")
    table = "\n".join(lines) + "\n\nCells: FID (KID).\n"
    (out / "table.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
