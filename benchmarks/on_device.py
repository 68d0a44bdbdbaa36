"""On-device exports judged by quality: for each trained model, every --quantize mode the family
offers, with file size, ms per call of every signature in LiteRT's classic Interpreter and its
CompiledModel API (the runtime of Android's CompiledModel and of LiteRT.js), the SavedModel beside
them, and the quality of what the .tflite itself generates (FID/KID of --num samples in LiteRT for
images, bits per character through `step` for text), measured as `aigc-keras evaluate EXPORT` does.

    python benchmarks/on_device.py --models saved_models/gan saved_models/diffusion saved_models/text

Prints the tables and saves results.json and table.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import folder_mb, machine, median_ms  # noqa: E402

from aigc_keras.diffusion.config import GUIDANCE  # noqa: E402
from aigc_keras.export import QUANTIZATIONS, export_trained  # noqa: E402
from aigc_keras.export.runtime import APIS, LiteRTModel  # noqa: E402
from aigc_keras.families import get_family  # noqa: E402
from aigc_keras.model_dir import ModelDir  # noqa: E402
from aigc_keras.training.family import ImageFamily  # noqa: E402


def example_inputs(spec: dict, metadata: dict, rng) -> dict:
    """Inputs of a signature with the values a real call uses."""
    inputs = {}
    for name, tensor in spec["inputs"].items():
        shape, dtype = tensor["shape"], tensor["dtype"]
        if dtype == "float32":
            inputs[name] = rng.standard_normal(shape).astype(np.float32)
        else:
            inputs[name] = np.zeros(shape, dtype)
    if "uniform" in inputs:
        inputs.update(uniform=rng.random(inputs["uniform"].shape).astype(np.float32),
                      temperature=np.array(0.8, np.float32), top_k=np.array(40, np.int32),
                      top_p=np.array(0.95, np.float32), prompt_length=np.array(6, np.int32))
        inputs["prompt_ids"][:6] = np.arange(1, 7)
    if "guidance" in inputs:
        inputs["guidance"] = np.array(GUIDANCE, np.float32)
    if "t" in inputs:  # a middle step of denoise_step
        times = metadata["timesteps"] + [0.0 if metadata.get("objective") == "flow" else -1]
        middle = len(metadata["timesteps"]) // 2
        inputs["t"], inputs["t_prev"] = (np.array(times[middle], inputs["t"].dtype),
                                         np.array(times[middle + 1], inputs["t"].dtype))
    if "token" in inputs:
        inputs["token"] = np.array([1], np.int32)
    return inputs


def measure(model_dir: Path, out: Path, quantize: str, num: int, options: dict) -> dict:
    md = ModelDir(model_dir)
    run = md.record()
    family = get_family(run["family"])
    folder = out / f"{model_dir.name}-{quantize}"
    start = time.time()
    meta = export_trained(run["family"], model_dir, folder, tflite=True, quantize=quantize, force=True, **options)
    row = {"model": model_dir.name, "family": run["family"], "images": isinstance(family, ImageFamily),
           "quantize": quantize,
           "export_seconds": round(time.time() - start, 1), "tflite_mb": meta["files"]["tflite_bytes"] / 1e6,
           "saved_model_mb": folder_mb(folder / "saved_model"), "ms_per_call": {}}
    rng = np.random.default_rng(0)
    served = tf.saved_model.load(str(folder / "saved_model"))
    for signature, spec in meta["signatures"].items():
        inputs = example_inputs(spec, meta, rng)
        times = {}
        for api in APIS:
            runner = LiteRTModel(folder / "model.tflite", api)
            times[api] = median_ms(lambda: runner.run(signature, **inputs))
        function = served.signatures[signature]
        tensors = {k: tf.constant(v) for k, v in inputs.items()}
        times["saved_model"] = median_ms(lambda: [v.numpy() for v in function(**tensors).values()])
        row["ms_per_call"][signature] = times
    runner = LiteRTModel(folder / "model.tflite", "compiled")
    if not isinstance(family, ImageFamily):
        from aigc_keras.data.text import load_text

        text = load_text(run["data"]["spec"]).split(run["config"]["validation_split"])[1]
        metrics = family.litert_metrics(runner, meta, text)
        row["quality"] = {"bits_per_character": metrics["bits_per_character"], "characters": metrics["characters"]}
    else:
        from aigc_keras.data import load_images
        from aigc_keras.metrics.evaluate import evaluate_images, generate, real_sets
        from aigc_keras.metrics.features import feature_net

        net = feature_net(run["data"]["spec"])
        real, floor = real_sets(load_images(run["data"]["spec"]), num, 0)
        fake = generate(lambda n, s: family.litert_sample(runner, meta, n, s)[0], num, 0)
        result = evaluate_images(fake, real, floor, net)
        row["quality"] = {"fid": result["samples"]["fid"], "kid": result["samples"]["kid"],
                          "floor_fid": result["real_vs_real"]["fid"], "num": num,
                          "min_class_share": result.get("mode_coverage", {}).get("samples", {}).get("min_class_share")}
    row["quality_warning"] = bool(meta.get("quality", {}).get("warnings"))
    print(json.dumps(row), flush=True)
    return row


def table(rows: list[dict]) -> str:
    lines = []
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = [r for r in rows if r["model"] == model]
        signatures = list(mine[0]["ms_per_call"])
        text = not mine[0]["images"]
        quality = "bits/char (LiteRT)" if text else f"FID / KID of {mine[0]['quality']['num']} (LiteRT)"
        head = ["--quantize", "tflite MB", quality] + [f"{s} ms: Interpreter / CompiledModel / SavedModel"
                                                       for s in signatures]
        lines += [f"**{model}** ({mine[0]['family']})", "", "| " + " | ".join(head) + " |",
                  "|" + "---|" * len(head)]
        for r in mine:
            q = r["quality"]
            score = f"{q['bits_per_character']:.3f}" if text else f"{q['fid']:.2f} / {q['kid']:.3f}"
            if r["quality_warning"]:
                score += " (warned)"
            cells = [r["quantize"], f"{r['tflite_mb']:.2f}", score] + [
                " / ".join(f"{r['ms_per_call'][s][k]:.2f}" for k in ("interpreter", "compiled", "saved_model"))
                for s in signatures]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", type=Path, required=True, help="trained model folders")
    parser.add_argument("--num", type=int, default=2000, help="samples per image FID")
    parser.add_argument("--quantize", nargs="+", choices=QUANTIZATIONS, default=list(QUANTIZATIONS))
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/on_device"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for model_dir in args.models:
        family = get_family(ModelDir(model_dir).record()["family"])
        for quantize in args.quantize:
            if quantize == "int8" and family.int8_refusal:
                print(f"{model_dir}: int8 skipped: {family.int8_refusal}")
                continue
            rows.append(measure(model_dir, args.out, quantize, args.num, {}))
    header = f"Machine: {machine()}. One call per measurement (batch 1 images, 256 ids per text generate), " \
             "median of 20."
    report = header + "\n\n" + table(rows)
    print(report)
    (args.out / "table.md").write_text(report + "\n")
    (args.out / "results.json").write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
