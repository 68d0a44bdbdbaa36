"""A user's own data, at the defaults: every image family on the Oxygen icons (32x32 and 64x64 colour,
1,203 and 584 pictures, very unbalanced) and on Fashion-MNIST, and the text family on Chinese poems.

Each run is the command a user types: `aigc-keras train FAMILY --data SPEC` with no other option. The
images are then scored with `aigc-keras evaluate --classifier`, in the features of a classifier trained
on that same data (`aigc-keras train classifier`): FID/KID of the samples against real images, the
real-vs-real floor at the same size, the smallest class share, and the memorisation ratio (toward 0: the
samples copy training images). Text: validation bits per character. A picture of each image run goes
to docs/.

    python benchmarks/own_data.py --data-dir ../shared/data                 # every run
    python benchmarks/own_data.py --data-dir ../shared/data --runs gan:icons32 diffusion:icons32

Runs already trained are not trained again (train resumes, and a finished run returns at once), so the
script can be stopped and started again. Saves results.json and table.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = {  # name -> (spec relative to --data-dir, classifier epochs)
    "icons32": ("npz:{d}/oxygen_icons/icons32.npz", 40),
    "icons64": ("npz:{d}/oxygen_icons/icons64.npz", 40),
    "fashion": ("idx:{d}/fashion_mnist", 3),
    "poems": ("text:{d}/chinese_poems/tang300.txt,{d}/chinese_poems/song100.txt", None),
}
RUNS = [f"{family}:{data}" for data in ("icons32", "icons64", "fashion") for family in ("gan", "diffusion", "vae")] + \
    ["text:poems"]
TEXT_OPTIONS = ["--min-count", "2"]  # a Chinese corpus: characters seen once share the unknown id


def aigc(*args, cwd=ROOT) -> tuple[float, str]:
    """(seconds, stdout) of one `aigc-keras` command; a failure stops the benchmark with its stderr."""
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "aigc_keras.cli", *map(str, args)], capture_output=True,
                            text=True, cwd=cwd, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    if result.returncode:
        raise SystemExit(f"aigc-keras {' '.join(map(str, args))} failed: {result.stderr.strip()[-600:]}")
    return time.perf_counter() - start, result.stdout


def image_run(family: str, name: str, spec: str, out: Path, num: int) -> dict:
    model, classifier = out / f"{family}-{name}", out / f"classifier-{name}"
    seconds, stdout = aigc("train", family, "--data", spec, "--model-dir", model)
    budget = next((line for line in stdout.splitlines() if line.startswith("budget:")), "")
    if not (classifier / "model.keras").exists():
        aigc("train", "classifier", "--data", spec, "--model-dir", classifier, "--epochs", DATA[name][1])
    history = json.loads((model / "history.json").read_text())
    picture = ROOT / "docs" / f"own-data-{family}-{name}.png"
    aigc("sample", family, "--model", model, "--num", 64, "--seed", 0, "--out", picture)
    return {"run": f"{family}:{name}", "train_minutes": round(sum(h["seconds"] for h in history) / 60, 1),
            "command_minutes": round(seconds / 60, 1), "budget": budget, **image_scores(model, classifier, num),
            "picture": str(picture.relative_to(ROOT))}


def image_scores(model: Path, classifier: Path, num: int) -> dict:
    """`aigc-keras evaluate` of an image model in `classifier`'s features, as a benchmark row's fields."""
    aigc("evaluate", model, "--classifier", classifier, "--num", num)
    metrics = json.loads((model / "metrics.json").read_text())
    coverage = metrics.get("mode_coverage", {})
    return {"fid": metrics["samples"]["fid"], "kid": metrics["samples"]["kid"],
            "fid_floor": metrics["real_vs_real"]["fid"], "kid_floor": metrics["real_vs_real"]["kid"],
            "min_class_share": coverage.get("samples", {}).get("min_class_share"),
            "real_min_class_share": coverage.get("real", {}).get("min_class_share"),
            "memorisation": metrics["memorisation"]["ratio"], "features": metrics["features"],
            "classifier_val_accuracy": json.loads((classifier / "history.json").read_text())[-1].get("val_accuracy"),
            "num": metrics["num_samples"]}


def text_run(name: str, spec: str, out: Path) -> dict:
    model = out / f"text-{name}"
    seconds, stdout = aigc("train", "text", "--data", spec, "--model-dir", model, *TEXT_OPTIONS)
    metrics = text_scores(model, 120)
    history = json.loads((model / "history.json").read_text())
    (ROOT / "docs" / "own-data-text-poems.txt").write_text(metrics["sample"])
    return {"run": f"text:{name}", "train_minutes": round(sum(h["seconds"] for h in history) / 60, 1),
            "command_minutes": round(seconds / 60, 1),
            "budget": next((line for line in stdout.splitlines() if line.startswith("budget:")), ""), **metrics}


def text_scores(model: Path, length: int) -> dict:
    """`aigc-keras evaluate` of a text model (validation bits per character) and a poem it writes to a title
    prompt, as a benchmark row's fields."""
    aigc("evaluate", model)
    metrics = json.loads((model / "metrics.json").read_text())
    _, poem = aigc("sample", "text", "--model", model, "--prompt", "《静夜思》\n", "--length", length, "--seed", 1,
                   "--temperature", "0.8")
    return {"bits_per_character": metrics["bits_per_character"], "unknown_characters": metrics["unknown_characters"],
            "characters": metrics["characters"], "sample": poem}


def table(rows: list[dict]) -> str:
    lines = ["| run | minutes | FID (floor) | KID (floor) | smallest class (real) | memorisation | bits/char |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "fid" in r:
            lines.append(f"| {r['run']} | {r['train_minutes']} | {score_cells(r)} | |")
        else:
            lines.append(f"| {r['run']} | {r['train_minutes']} | | | | | {r['bits_per_character']:.3f} |")
    return "\n".join(lines)


def score_cells(r: dict) -> str:
    """An image row's FID (floor) | KID (floor) | smallest class (real) | memorisation cells."""
    share = "-" if r["min_class_share"] is None else f"{r['min_class_share']:.1%} ({r['real_min_class_share']:.1%})"
    return (f"{r['fid']:.2f} ({r['fid_floor']:.2f}) | {r['kid']:.3f} ({r['kid_floor']:.3f}) | {share} | "
            f"{r['memorisation']:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", required=True,
                        help="the folder with oxygen_icons/, fashion_mnist/, chinese_poems/")
    parser.add_argument("--runs", nargs="+", default=RUNS, choices=RUNS)
    parser.add_argument("--num", type=int, default=1000, help="samples per FID (at most half the real images count)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "own_data")
    args = parser.parse_args()
    data_dir = Path(args.data_dir).resolve()
    rows = {r["run"]: r for r in saved_rows(args.out)}
    for run in args.runs:
        family, name = run.split(":")
        spec = DATA[name][0].format(d=data_dir)
        rows[run] = text_run(name, spec, args.out) if family == "text" else image_run(family, name, spec, args.out,
                                                                                   args.num)
        rows[run]["machine"] = machine()
        save_rows(args.out, [rows[r] for r in RUNS if r in rows], table)


def saved_rows(out: Path) -> list[dict]:
    """The rows of `out`/results.json (the folder made if need be): a rerun keeps the rows it does not redo."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "results.json"
    return json.loads(path.read_text())["rows"] if path.exists() else []


def save_rows(out: Path, rows: list[dict], table) -> None:
    """results.json (dated; each row names its machine) and table.md (`table(rows)`) in `out`; print the table."""
    (out / "results.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=2,
                                                 ensure_ascii=False) + "\n")
    (out / "table.md").write_text(table(rows) + "\n")
    print(table(rows), flush=True)


if __name__ == "__main__":
    main()
