"""Few-step diffusion: the default teacher at 12 Heun steps and at 1, 2 and 4 Euler steps, against its
reflowed student (`train diffusion --distill-from`) at 1, 2 and 4 calls, each unguided and with the
previews' guidance weight.

Each model is the command a user types: `aigc-keras train diffusion` (the teacher, unless --teacher names
one already trained), then `aigc-keras train diffusion --distill-from TEACHER` (its pairs and its
training both counted in the student's minutes). Each row is `aigc-keras evaluate` at its sampler and
steps (FID/KID of --num samples in the data's features, the real-vs-real floor, the smallest class
share), and ms per image of the export's one-graph `generate` at batch 1 in LiteRT's Interpreter and
CompiledModel APIs and in the demo page (LiteRT.js in headless Chromium; `--retime` measures them alone).

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

from aigc_keras.diffusion.config import GUIDANCE  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ROWS = [(model, sampler, steps, guidance) for guidance in (1.0, GUIDANCE)  # 1: the conditional prediction alone
        for model, sampler, steps in (("teacher", "heun", 12), ("teacher", "euler", 1), ("teacher", "euler", 2),
                                      ("teacher", "euler", 4), ("student", "euler", 1), ("student", "euler", 2),
                                      ("student", "euler", 4))]


def minutes(model: Path) -> float:
    return round(sum(h["seconds"] for h in json.loads((model / "history.json").read_text())) / 60, 1)


def scores(model: Path, sampler: str, steps: int, guidance: float, num: int) -> dict:
    aigc("evaluate", model, "--num", num, "--sampler", sampler, "--steps", steps, "--guidance", guidance)
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


def browser_ms(model: Path, sampler: str, steps: int, out: Path, repeats: int = 5) -> float:
    """ms per image of the same export's `generate` in the demo page (LiteRT.js in headless Chromium)."""
    import shutil
    import tempfile

    from browser_speed import Page

    with tempfile.TemporaryDirectory() as exports:
        shutil.copytree(out / f"export-{model.name}-{sampler}{steps}", Path(exports) / "diffusion")
        page = Page(Path(exports))
        try:
            return page.ms("diffusion", "generate", "msPerCall", repeats)
        finally:
            page.close()


def table(rows: list[dict]) -> str:
    lines = ["| model | sampler | network calls | guidance | FID (floor) | KID | smallest class | LiteRT ms/image "
             "(Interpreter, CompiledModel) | browser ms/image |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        calls = r["steps"] * (2 if r["sampler"] == "heun" else 1)
        share = "-" if r["min_class_share"] is None else f"{r['min_class_share']:.1%}"
        ms, page, guidance = r.get("ms") or {}, r.get("browser_ms"), r["guidance"]
        lines.append(f"| {r['model']} | {r['sampler']} x{r['steps']} | {calls} | {guidance:g} | "
                     f"{r['fid']:.2f} ({r['fid_floor']:.2f}) "
                     f"| {r['kid']:.3f} | {share} | {ms.get('interpreter', 0):.1f}, {ms.get('compiled', 0):.1f} | "
                     f"{'-' if page is None else f'{page:.1f}'} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--teacher", type=Path, help="a trained default diffusion model [default: train one in --out]")
    parser.add_argument("--num", type=int, default=2000, help="samples per FID")
    parser.add_argument("--student-option", action="append", default=[],
                        help="an extra option of the student's `train`, e.g. --student-option=--time-sampling=uniform")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "few_step")
    parser.add_argument("--retime", action="store_true",
                        help="only time the exports of the saved rows again, in LiteRT and in the demo page (with "
                             "nothing else running)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.retime:
        rows = json.loads((args.out / "results.json").read_text())["rows"]
        timed = {}
        for r in rows:
            model = args.teacher or args.out / "teacher" if r["model"] == "teacher" else args.out / "student"
            key = r["model"], r["sampler"], r["steps"]
            if key not in timed:
                timed[key] = {"ms": litert_ms(model, r["sampler"], r["steps"], args.out),
                              "browser_ms": browser_ms(model, r["sampler"], r["steps"], args.out)}
            r.update(timed[key])
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
    rows, timed = [], {}
    for name, sampler, steps, guidance in ROWS:
        model = teacher if name == "teacher" else student
        if (name, sampler, steps) not in timed:  # one export serves both guidance weights (it is an input)
            timed[name, sampler, steps] = {"ms": litert_ms(model, sampler, steps, args.out),
                                           "browser_ms": browser_ms(model, sampler, steps, args.out)}
        rows.append({"model": name, "sampler": sampler, "steps": steps, "guidance": guidance,
                     **scores(model, sampler, steps, guidance, args.num), **timed[name, sampler, steps],
                     "machine": machine()})
        save_rows(args.out, rows, table)
    (args.out / "cost.json").write_text(json.dumps({**cost, "student_options": args.student_option}, indent=2) + "\n")
    print(json.dumps(cost))


if __name__ == "__main__":
    main()
