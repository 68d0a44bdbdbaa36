"""Quality per CPU minute, every family at its defaults: train for a wall-clock budget and measure the
quality at checkpoints of that budget (5, 10 and 20 minutes by default). The clock counts training
only; it stops while the model is measured.

Images (gan, diffusion, vae): FID and KID of --num samples, drawn as `aigc-keras sample` draws them
(the default sampler for diffusion), against --num real MNIST images, in the shipped classifier's
features, with the real-vs-real floor at the same size and the smallest class share. Text: bits per
character on the whole validation split with the context carried (`aigc-keras evaluate`).

    python benchmarks/quality_per_minute.py                            # every family, 5/10/20 minutes
    python benchmarks/quality_per_minute.py --runs gan --budgets 2 4   # a quick look

Saves results.json, table.md and fid_per_minute.png in --out; the models stay in --out/<run>/.
"""

from __future__ import annotations

import argparse
import json
import math
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
from aigc_keras.data.text import load_text  # noqa: E402
from aigc_keras.families import config_class, get_family  # noqa: E402
from aigc_keras.metrics.evaluate import generate, image_metrics  # noqa: E402
from aigc_keras.metrics.features import feature_net  # noqa: E402
from aigc_keras.metrics.image import mode_coverage  # noqa: E402
from aigc_keras.precision import float32_model  # noqa: E402
from aigc_keras.text.metrics import text_metrics  # noqa: E402
from aigc_keras.training.family import ImageFamily  # noqa: E402
from aigc_keras.training.runner import train  # noqa: E402

RUNS = ("gan", "diffusion", "text", "vae")


class Budget(keras.callbacks.Callback):
    """Stops `fit` after the last budget's seconds of training; at each budget, pauses the clock and
    calls `measure(model)`."""

    def __init__(self, budgets_s: list[float], measure):
        super().__init__()
        self.budgets, self.measure, self.trained, self.rows = sorted(budgets_s), measure, 0.0, []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(next(iter(logs.values())))  # wait for the step before reading the clock
        self.trained += time.perf_counter() - self._start
        while self.budgets and self.trained >= self.budgets[0]:
            self._record(self.budgets.pop(0) / 60)
        if not self.budgets:
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        """A run whose planned epochs (and learning-rate schedule) end before the last budget is measured
        once more at its end: what it reaches, at the minutes it took."""
        if self.budgets:
            self.budgets = []
            self._record(self.trained / 60, finished=True)

    def _record(self, minutes: float, finished: bool = False):
        start = time.perf_counter()
        row = {"minutes": round(minutes, 2), **self.measure(self.model)}
        if finished:
            row["run_finished"] = True
        row["measure_seconds"] = round(time.perf_counter() - start, 1)
        self.rows.append(row)
        print(f"  {row}", flush=True)


def image_measure(family, num: int, net, real_features):
    def measure(model):
        model = float32_model(model)
        images = generate(lambda n, seed: family.sample(model, n, seed)[0], num, seed=1)
        features, probs = net(images)
        row = image_metrics(features, real_features)
        row["min_class_share"] = mode_coverage(probs)["min_class_share"]
        return row

    return measure


def text_measure(text: str):
    return lambda model: {"bpc": text_metrics(float32_model(model), text)["bits_per_character"]}


def plot(results: dict, path: Path, key: str, label: str, width=720, height=440):
    """`key` against training minutes, one line per run, drawn with Pillow (no plotting library)."""
    from PIL import Image, ImageDraw

    colours = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189)]
    left, right, top, bottom = 60, width - 170, 20, height - 40
    points = [(r["minutes"], r[key]) for rows in results.values() for r in rows if key in r]
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
    draw.text((8, 4), label, fill="black")
    for i, (name, rows) in enumerate((n, [r for r in rs if key in r]) for n, rs in results.items()):
        if not rows:
            continue
        colour = colours[i % len(colours)]
        line = [xy(r["minutes"], r[key]) for r in rows]
        if len(line) > 1:
            draw.line(line, fill=colour, width=2)
        for px, py in line:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], fill=colour)
        draw.line([right + 15, top + 20 * i + 8, right + 35, top + 20 * i + 8], fill=colour, width=3)
        draw.text((right + 40, top + 20 * i + 2), name, fill="black")
    image.save(path)


def table(report: dict) -> str:
    budgets = report["budgets"]
    floor = report["real_vs_real"]
    lines = [f"Machine: {report['machine']}. Images: FID / KID of {report['num']} samples against {report['num']} "
             f"real MNIST images in the shipped classifier's features (real-vs-real floor FID {floor['fid']:.2f}, "
             f"KID {floor['kid']:.3f}), smallest class share in brackets. Text: validation bits per character "
             "with the context carried.", "",
             "| run | " + " | ".join(f"{b:g} min" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name, rows in report["runs"].items():
        cells = []
        for row in rows:
            cell = f"{row['bpc']:.3f} bpc" if "bpc" in row else \
                f"{row['fid']:.2f} / {row['kid']:.3f} ({row['min_class_share']:.1%})"
            cells.append(cell + (f" (run ended at {row['minutes']:.1f} min)" if row.get("run_finished") else ""))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=float, nargs="+", default=[5.0, 10.0, 20.0], help="minutes of training")
    parser.add_argument("--num", type=int, default=2000, help="samples (and real images) per image measurement")
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument("--out", default="benchmarks/results/quality_per_minute")
    parser.add_argument("--merge", action="store_true",
                        help="add these runs to OUT/results.json (same settings) instead of starting a new table")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    net = feature_net("mnist")
    images, _ = load_images("mnist").arrays()
    order = np.random.default_rng(0).permutation(len(images))
    real_features, _ = net(images[order[:args.num]])
    floor_features, _ = net(images[order[args.num:2 * args.num]])
    report = {"machine": machine(), "budgets": args.budgets, "num": args.num, "features": net.name,
              "real_vs_real": image_metrics(floor_features, real_features), "runs": {}}
    if args.merge and (out / "results.json").exists():
        report["runs"] = json.loads((out / "results.json").read_text())["runs"]
    for name in args.runs:
        config = config_class(name)()
        if config.lr_schedule == "constant":  # the budget stops it; a scheduled run keeps its planned length
            # Enough epochs for the largest budget (every family's epoch takes over 15 s here).
            config = config_class(name)(epochs=max(config.epochs, math.ceil(60 * max(args.budgets) / 15)))
        family = get_family(name)
        images = isinstance(family, ImageFamily)
        if not images:
            measure = text_measure(load_text(config.data).split(config.validation_split)[1])
        else:
            measure = image_measure(family, args.num, net, real_features)
        print(f"{name}: {', '.join(f'{b:g}' for b in args.budgets)} minutes", flush=True)
        budget = Budget([b * 60 for b in args.budgets], measure)
        start = time.time()
        train(config, out / name, overwrite=True, callbacks=[budget], verbose=0, log=lambda _: None)
        report["runs"][name] = budget.rows
        report.setdefault("image_runs", [])
        if images and name not in report["image_runs"]:
            report["image_runs"].append(name)
        print(f"{name}: {time.time() - start:.0f} s in all", flush=True)
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")

    plot({k: v for k, v in report["runs"].items() if k in report.get("image_runs", [])}, out / "fid_per_minute.png",
         "fid",
         "FID (lower is better)")
    text = table(report)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
