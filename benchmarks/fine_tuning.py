"""Fine-tuning on small data: from scratch, against `--init-from` a trained base (every weight trains on),
against LoRA adapters of rank 4 and 8 (`--lora-rank`, the base frozen), at the same optimizer steps.

Images (GAN, diffusion): the base is the family's default run on MNIST; every run then trains on the same
500 Fashion-MNIST pictures (50 of each class), for the default budget of that data, and is scored with
`aigc-keras evaluate --classifier`, in the features of a classifier trained on all of Fashion-MNIST:
FID/KID of 250 samples against 250 of the 500 pictures, the real-vs-real floor at that size, the smallest
class share and the memorisation ratio. Text: a Tiny Shakespeare base (bytes tokenizer, which covers
every script) fine-tuned on the Chinese poems, against the poems alone: validation bits per character.
Every row gives the seconds per optimizer step, the weights that train, and the size of what the run
saves (model.keras, and the adapter file under LoRA).

    python benchmarks/fine_tuning.py --data-dir ../shared/data
    python benchmarks/fine_tuning.py --data-dir ../shared/data --families gan

A run in results.json is not run again, and train resumes an interrupted one, so the script can be
stopped and started again (delete results.json to measure again). Saves results.json and table.md in
--out, and one picture per family (a row of 16 samples per run) to docs/.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import DATA, ROOT, aigc, image_scores, save_rows, saved_rows, score_cells, text_scores  # noqa: E402
from timing import machine  # noqa: E402

# family -> (base data, base steps as (epochs, steps an epoch), fine-tune steps likewise, options of every
# run); None: the family's default budget for that data, which `train` chooses and names
FAMILIES = {
    "gan": ("mnist", None, None, []),
    "diffusion": ("mnist", None, None, []),
    "text": ("shakespeare", (3, 500), (3, 200), ["--tokenizer", "bytes"]),
}
RUNS = {"scratch": None, "init-from": 0, "lora-4": 4, "lora-8": 8}  # run -> LoRA rank (None: no base)
SUBSET = 50  # Fashion-MNIST pictures per class
NUM = 250  # samples per FID: half the subset, as evaluate's real sets are drawn from it


def steps(budget: tuple[int, int] | None) -> list[str]:
    return [] if budget is None else ["--epochs", budget[0], "--steps-per-epoch", budget[1]]


def subset(data_dir: Path, out: Path) -> str:
    """The npz spec of SUBSET pictures of each Fashion-MNIST class (the first ones, in file order)."""
    path = out / "data" / "fashion-500.npz"
    if not path.exists():
        path.parent.mkdir(exist_ok=True)
        import aigc_keras as ak

        images, labels = ak.load_data(DATA["fashion"][0].format(d=data_dir))
        keep = np.concatenate([np.flatnonzero(labels == c)[:SUBSET] for c in range(10)])
        np.savez(path, images=images[keep], labels=labels[keep])
    return f"npz:{path}"


def trained(stdout: str) -> int:
    """The weights that train, from train's `weights:` line."""
    return int(re.search(r"^weights: ([\d,]+) of [\d,]+ train", stdout, flags=re.M).group(1).replace(",", ""))


def run_row(family: str, name: str, model: Path, stdout: str) -> dict:
    from aigc_keras.families import get_family
    from aigc_keras.model_dir import ModelDir

    md = ModelDir(model)
    config = md.config(family)
    steps = config.epochs * get_family(family).steps_per_epoch(config, md.record()["data"])
    seconds = sum(h["seconds"] for h in md.history())
    adapter = model / "adapter.lora.h5"
    return {"family": family, "run": name, "steps": steps, "seconds_per_step": round(seconds / steps, 4),
            "train_minutes": round(seconds / 60, 1), "trained_weights": trained(stdout),
            "model_bytes": (model / "model.keras").stat().st_size,
            "adapter_bytes": adapter.stat().st_size if adapter.exists() else None}


def family_rows(family: str, data_dir: Path, out: Path, done: set[str]) -> list[dict]:
    """The rows of `family`'s runs not in `done` (those measured before are kept as they are)."""
    base_data, base_steps, tune_steps, options = FAMILIES[family]
    base = out / f"{family}-base"
    aigc("train", family, "--data", base_data, "--model-dir", base, *steps(base_steps), *options)
    if family == "text":
        spec = DATA["poems"][0].format(d=data_dir)
    else:
        spec = subset(data_dir, out)
        classifier = out / "classifier-fashion"
        if not (classifier / "model.keras").exists():
            aigc("train", "classifier", "--data", DATA["fashion"][0].format(d=data_dir), "--model-dir", classifier,
                 "--epochs", DATA["fashion"][1])
    rows, pictures = [], []
    for name, rank in RUNS.items():
        model = out / f"{family}-{name}"
        picture = model / "benchmark-samples.png"
        pictures.append((name, picture))
        if name in done:
            continue
        extra = [] if rank is None else ["--init-from", base, *(["--lora-rank", rank] if rank else [])]
        _, stdout = aigc("train", family, "--data", spec, "--model-dir", model, *steps(tune_steps), *options, *extra)
        row = run_row(family, name, model, stdout)
        if family == "text":
            row.update(text_scores(model, 60))
        else:
            row.update(image_scores(model, classifier, NUM))
            aigc("sample", family, "--model", model, "--num", 16, "--seed", 0, "--out", picture)
        rows.append(row)
        print(table([row]).splitlines()[-1], flush=True)
    if family != "text":
        montage(pictures, ROOT / "docs" / f"fine-tuning-{family}.png")
    return rows


def montage(pictures: list[tuple[str, Path]], path: Path) -> None:
    """One picture: each run's grid of samples in a row, named at its left."""
    from PIL import Image, ImageDraw

    grids = [Image.open(p).convert("RGB") for _, p in pictures]
    label = 90
    sheet = Image.new("RGB", (label + max(g.width for g in grids), sum(g.height for g in grids)), "white")
    draw, y = ImageDraw.Draw(sheet), 0
    for (name, _), grid in zip(pictures, grids):
        sheet.paste(grid, (label, y))
        draw.text((6, y + grid.height // 2 - 6), name, fill="black")
        y += grid.height
    sheet.save(path)


def table(rows: list[dict]) -> str:
    lines = ["| family | run | steps | s/step | weights trained | model.keras | adapter | FID (floor) | KID (floor) "
             "| smallest class (real) | memorisation | val bits/char |", "|---" * 12 + "|"]
    for r in rows:
        adapter = "" if r["adapter_bytes"] is None else \
            f"{r['adapter_bytes'] / 1e3:.0f} KB ({r['adapter_bytes'] / r['model_bytes']:.1%})"
        head = (f"| {r['family']} | {r['run']} | {r['steps']:,} | {r['seconds_per_step']:.3f} | "
                f"{r['trained_weights']:,} | {r['model_bytes'] / 1e6:.1f} MB | {adapter} |")
        if "fid" in r:
            lines.append(f"{head} {score_cells(r)} | |")
        else:
            lines.append(f"{head} | | | | {r['bits_per_character']:.3f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True, help="the folder with fashion_mnist/ and chinese_poems/")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fine_tuning")
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    rows = {(r["family"], r["run"]): r for r in saved_rows(args.out)}
    for family in args.families:
        for row in family_rows(family, data_dir, args.out, {r for f, r in rows if f == family}):
            rows[family, row["run"]] = {**row, "machine": machine()}
        save_rows(args.out, [rows[f, r] for f in FAMILIES for r in RUNS if (f, r) in rows], table)


if __name__ == "__main__":
    main()
