"""Few-step diffusion: the default teacher at 12 Heun steps and at 1, 2 and 4 Euler steps, against its
reflowed student (`train diffusion --distill-from`) at 1, 2 and 4 calls.

Each model is the command a user types: `aigc-keras train diffusion` (the teacher, unless --teacher names
one already trained), then `aigc-keras train diffusion --distill-from TEACHER` (its pairs and its
training both counted in the student's minutes). Each row is `aigc-keras evaluate` at its sampler and
steps (FID/KID of --num samples in the data's features, the real-vs-real floor, the smallest class
share), and ms per image of the export's one-graph `generate` at batch 1 in LiteRT's Interpreter and
CompiledModel APIs.

    python benchmarks/few_step.py                                   # trains the teacher too
    python benchmarks/few_step.py --teacher saved_models/diffusion

Runs already trained are not trained again. Saves results.json and table.md in --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import aigc, save_rows  # noqa: E402
from timing import machine, median_ms  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROWS = [("teacher", "heun", 12), ("teacher", "euler", 1), ("teacher", "euler", 2), ("teacher", "euler", 4),
        ("student", "euler", 1), ("student", "euler", 2), ("student", "euler", 4)]


def minutes(model: Path) -> float:
    return round(sum(h["seconds"] for h in json.loads((model / "history.json").read_text())) / 60, 1)


def scores(model: Path, sampler: str, steps: int, num: int) -> dict:
    aigc("evaluate", model, "--num", num, "--sampler", sampler, "--steps", steps)
    metrics = json.loads((model / "metrics.json").read_text())
    return {"fid": metrics["samples"]["fid"], "kid": metrics["samples"]["kid"],
            "fid_floor": metrics["real_vs_real"]["fid"],
            "min_class_share": metrics.get("mode_coverage", {}).get("samples", {}).get("min_class_share"),
            "features": metrics["features"], "num": metrics["num_samples"]}


def litert_ms(model: Path, sampler: str, steps: int, out: Path) -> dict:
    """ms per image of the export's `generate` at batch 1, in each LiteRT API."""
    from aigc_keras.export.runtime import APIS, LiteRTModel

    folder = out / f"export-{model.name}-{sampler}{steps}"
    if not (folder / "model.tflite").exists():
        aigc("export", "diffusion", "--model", model, "--out", folder, "--tflite", "--sampler", sampler, "--steps",
             steps)
    meta = json.loads((folder / "metadata.json").read_text())
    inputs = {"noise": np.random.default_rng(0).standard_normal(
        meta["signatures"]["generate"]["inputs"]["noise"]["shape"]).astype(np.float32)}
    if meta["conditional"]:
        inputs.update(label=np.zeros([1], np.int32), guidance=np.array(1.0, np.float32))
    runners = {api: LiteRTModel(folder / "model.tflite", api) for api in APIS}
    return {api: median_ms(lambda: runner.run("generate", **inputs), repeats=10) for api, runner in runners.items()}


def table(rows: list[dict]) -> str:
    lines = ["| model | sampler | network calls | FID (floor) | KID | smallest class | LiteRT ms/image (Interpreter, "
             "CompiledModel) |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        calls = r["steps"] * (2 if r["sampler"] == "heun" else 1)
        share = "-" if r["min_class_share"] is None else f"{r['min_class_share']:.1%}"
        ms = r.get("ms") or {}
        lines.append(f"| {r['model']} | {r['sampler']} x{r['steps']} | {calls} | {r['fid']:.2f} ({r['fid_floor']:.2f}) "
                     f"| {r['kid']:.3f} | {share} | {ms.get('interpreter', 0):.1f}, {ms.get('compiled', 0):.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, help="a trained default diffusion model [default: train one in --out]")
    parser.add_argument("--num", type=int, default=2000, help="samples per FID")
    parser.add_argument("--student-option", action="append", default=[],
                        help="an extra option of the student's `train`, e.g. --student-option=--time-sampling=uniform")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "few_step")
    parser.add_argument("--retime", action="store_true",
                        help="only time the exports of the saved rows again (with nothing else running)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.retime:
        rows = json.loads((args.out / "results.json").read_text())["rows"]
        for r in rows:
            r["ms"] = litert_ms(args.teacher or args.out / "teacher" if r["model"] == "teacher" else
                                args.out / "student", r["sampler"], r["steps"], args.out)
        return save_rows(args.out, rows, table)
    teacher, student = args.teacher or args.out / "teacher", args.out / "student"
    if not (teacher / "model.keras").exists():
        aigc("train", "diffusion", "--model-dir", teacher)
    cost = {"teacher": {"train_minutes": minutes(teacher)}}
    if not (student / "model.keras").exists():
        seconds, _ = aigc("train", "diffusion", "--distill-from", teacher, "--model-dir", student,
                          *args.student_option)
        (args.out / "student-seconds.json").write_text(json.dumps({"command_seconds": seconds}))
    cost["student"] = {"train_minutes": minutes(student), "command_minutes": round(
        json.loads((args.out / "student-seconds.json").read_text())["command_seconds"] / 60, 1)}
    rows = []
    for name, sampler, steps in ROWS:
        model = teacher if name == "teacher" else student
        rows.append({"model": name, "sampler": sampler, "steps": steps, **scores(model, sampler, steps, args.num),
                     "ms": litert_ms(model, sampler, steps, args.out), "machine": machine()})
        save_rows(args.out, rows, table)
    (args.out / "cost.json").write_text(json.dumps({**cost, "student_options": args.student_option}, indent=2) + "\n")
    print(json.dumps(cost))


if __name__ == "__main__":
    main()
