"""Inpainting measured: MNIST digits with a part masked (the centre, the top half, the left half),
completed by a diffusion model's `edit`, then read by the shipped MNIST classifier: how often it still
reads the original digit, against the same digits with the masked part filled with noise or with the
mean image, and the time of one `edit` call in Python's LiteRT.

    python benchmarks/editing.py --model saved_models/diffusion --export export/diffusion --num 1000 \
        --picture docs/diffusion-inpainting.png

The digits are the last --num of MNIST's training set: the shipped classifier never saw them (it
validates on the last 6,000), the diffusion model did (it trained on all 60,000). A conditional model
completes them unguided (guidance 0: the unconditional prediction, which does not know the digit),
unguided with RePaint's resampling (4 passes a step), and told the true class (guidance 1). Saves
results.json and table.md in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import machine, median_ms  # noqa: E402

import aigc_keras as ak  # noqa: E402
from aigc_keras.inputs import noise_and_labels  # noqa: E402
from aigc_keras.metrics.features import shipped_classifier  # noqa: E402

REPAINT = 4  # passes a step of the RePaint column
MASKS = {"centre 14x14": (slice(7, 21), slice(7, 21)), "top half": (slice(0, 14), slice(None)),
         "left half": (slice(None), slice(0, 14))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="saved_models/diffusion")
    parser.add_argument("--export", type=Path, help="an export of the model: times its `edit` in LiteRT")
    parser.add_argument("--num", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/editing"))
    parser.add_argument("--picture", type=Path, help="also write a PNG: one digit of each class, its top half "
                                                     "masked, completed unguided, and completed as the next digit")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = ak.load(args.model)
    images, labels = ak.load_data("mnist")
    digits, truth = images[-args.num:], labels[-args.num:]
    classifier = shipped_classifier("mnist")
    mean = np.round(images.mean(axis=0)).astype(np.uint8)
    rng = np.random.default_rng(args.seed)

    def read(x):
        return float(np.mean(classifier.predict(x.astype("float32") / 127.5 - 1.0, verbose=0).argmax(-1) == truth))

    rows = [{"mask": "none", "original": read(digits)}]
    for name, (ys, xs) in MASKS.items():
        mask = np.zeros((28, 28), np.uint8)
        mask[ys, xs] = 255
        kept = mask[..., None] == 0
        noise_fill = np.where(kept, digits, rng.integers(0, 256, digits.shape, dtype=np.uint8))
        mean_fill = np.where(kept, digits, mean)
        row = {"mask": name, "noise": read(noise_fill), "mean": read(mean_fill)}
        start = time.time()
        unguided = {"guidance": 0.0} if model.num_classes else {}
        row["inpainted"] = read(model.edit(digits, mask=mask, seed=args.seed, **unguided))
        row[f"inpainted, RePaint x{REPAINT}"] = read(model.edit(digits, mask=mask, seed=args.seed, resample=REPAINT,
                                                               **unguided))
        if model.num_classes:
            row["inpainted, told the class"] = read(model.edit(digits, mask=mask, seed=args.seed, labels=truth,
                                                               guidance=1.0))
        row["seconds"] = round(time.time() - start, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.picture:
        picture(model, digits, truth, args.picture, args.seed)
    timing = None
    if args.export:
        from aigc_keras.export.runtime import LiteRTModel

        meta = json.loads((args.export / "metadata.json").read_text())
        batch, shape = meta["batch"], meta["image_shape"]
        noise, chosen = noise_and_labels(batch, shape, 0, meta["num_classes"], 0 if meta["num_classes"] else None)
        inputs = {"image": digits[:batch], "mask": np.full((batch, *shape[:2], 1), 255, np.uint8), "noise": noise,
                  "strength": np.float32(1.0)}
        if meta["num_classes"]:
            inputs.update(label=chosen, guidance=np.float32(1.0))
        timing = {api: median_ms(lambda r=LiteRTModel(args.export / "model.tflite", api): r.run("edit", **inputs),
                                 repeats=20) / batch for api in ("compiled", "interpreter")}
        timing.update(sampler=meta["sampler"], steps=meta["steps"])
    info = machine()
    header = ["mask", "original", "noise", "mean", "inpainted", f"inpainted, RePaint x{REPAINT}",
              "inpainted, told the class"]
    lines = [f"{info}; {args.num} digits, the shipped MNIST classifier's accuracy on the original class.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(f"{row[h]:.1%}" if isinstance(row.get(h), float) else "" if h not in row
                                       else str(row[h]) for h in header) + " |")
    if timing:
        lines += ["", f"One `edit` call ({timing['sampler']}, {timing['steps']} steps) in Python's LiteRT: "
                      f"{timing['compiled']:.1f} ms per image in the CompiledModel API, "
                      f"{timing['interpreter']:.1f} ms in the Interpreter."]
    table = "\n".join(lines) + "\n"
    print(table)
    (args.out / "table.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps({"machine": info, "model": args.model, "rows": rows,
                                                       "litert_ms_per_image": timing}, indent=2) + "\n")


def picture(model, digits, truth, path: Path, seed: int) -> None:
    """Rows: a digit of each class; its top half masked (grey); completed unguided; completed as the next digit."""
    from aigc_keras.imaging import save_images
    from aigc_keras.provenance import record

    chosen = np.array([np.flatnonzero(truth == d)[0] for d in range(10)])
    originals = digits[chosen]
    mask = np.zeros((28, 28), np.uint8)
    mask[:14] = 255
    shown = originals.copy()
    shown[:, :14] = 128
    rows = [originals, shown, model.edit(originals, mask=mask, seed=seed, guidance=0.0)]
    if model.num_classes:
        rows.append(model.edit(originals, mask=mask, seed=seed, labels=(np.arange(10) + 1) % 10, guidance=2.0))
    made = record("diffusion", "saved_models/diffusion", {"made": "benchmarks/editing.py --picture", "seed": seed,
                                                          "mask": "top half", "strength": 1.0})
    save_images(path, np.concatenate(rows), columns=10, provenance=made)


if __name__ == "__main__":
    main()
