"""Language-model speed: `fit` against a plain GradientTape loop (training tokens/s), generation
characters/s in TF eager, TF `tf.function` and LiteRT, and the exported file's size and latency per
character for each quantization. Prints Markdown tables.

    python benchmarks/text_speed.py                          # default LSTM config, fresh weights
    python benchmarks/text_speed.py --model saved_models/text # a trained model (same speed)
    python benchmarks/text_speed.py --arch transformer

Training: both loops do the same work (teacher forcing, cross-entropy, clipped Adam) on the same
model, batch and pipeline, in pairs of alternating order, medians of `--repeats`. Generation: 200
characters after a 6-character prompt at temperature 0.8, top-k 40; per character, medians.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import fit_against_plain, machine, median_ms  # noqa: E402

from aigc_keras.export.litert import export_bundle  # noqa: E402
from aigc_keras.text.config import TextConfig  # noqa: E402
from aigc_keras.text.family import TextFamily  # noqa: E402
from aigc_keras.text.sampling import generate_fn  # noqa: E402
from aigc_keras.text.tokenizer import tokenizer_from_config  # noqa: E402

LENGTH = 200


def plain_loop(model: keras.Model, config: TextConfig):
    """A hand-written teacher-forcing step over the same model."""
    optimizer = keras.optimizers.Adam(config.learning_rate, global_clipnorm=config.clipnorm or None)
    optimizer.build(model.trainable_variables)

    @tf.function
    def step(windows):
        with tf.GradientTape() as tape:
            logits = model(windows[:, :-1], training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(windows[:, 1:], logits))
        optimizer.apply(tape.gradient(loss, model.trainable_weights), model.trainable_weights)
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model folder (default: the default config, fresh weights)")
    parser.add_argument("--arch", default="lstm", choices=["lstm", "transformer"])
    parser.add_argument("--steps", type=int, default=10, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    family = TextFamily()
    if args.model:
        from aigc_keras.model_dir import ModelDir

        md = ModelDir(args.model)
        config = md.config("lstm")
        config.strategy = "default"
    else:
        config = TextConfig(arch=args.arch, strategy="default")
    keras.utils.set_random_seed(0)
    data = family.load_data(config)
    info = family.data_info(config, data)
    model = family.build(config, info)
    dataset, _ = family.dataset(config, data, config.batch_size)
    fit_s, plain_s, ratio = fit_against_plain(model, dataset, plain_loop(model, config), args.steps, args.repeats)
    tokens = args.steps * config.batch_size * config.seq_len
    if args.model:
        model = md.load_model("lstm")
        run = md.record()
    else:
        run = {"config": config.to_dict(), "data": info}
    print(f"Language-model speed on {machine()}; {config.arch}, {model.count_params():,} params, "
          f"batch {config.batch_size} x {config.seq_len} tokens\n")
    print("| training | tokens/s |")
    print("|---|---|")
    print(f"| `fit` | {tokens / fit_s:,.0f} |")
    print(f"| plain `tf.function` GradientTape loop | {tokens / plain_s:,.0f} |")
    print(f"| fit / plain loop (median of paired runs) | {ratio:.2f}x |\n")

    tokenizer = tokenizer_from_config(model.tokenizer)
    prompt = tokenizer.encode("ROMEO:")
    length = min(LENGTH, model.max_positions - len(prompt) + 1) if model.max_positions else LENGTH
    uniform = np.random.default_rng(0).random(length).astype(np.float32)
    controls = (np.float32(0.8), np.int32(40), np.float32(1.0))

    def eager():
        state = model.initial_state(1)
        for token in prompt[:-1]:
            _, state = model.step(tf.constant([token]), state)
        token = tf.constant(prompt[-1:])
        from aigc_keras.text.sampling import next_token

        for i in range(length):
            logits, state = model.step(token, state)
            token = next_token(logits, tf.constant(uniform[i:i + 1]), *controls)

    graph = tf.function(generate_fn(model))
    rows = [("TF eager (`step` per character)", 1000 * _once(eager) / length),
            ("TF `tf.function`, whole loop", median_ms(lambda: graph(prompt, uniform, *controls).numpy(), 5) / length),
            ("`sample` CLI path (one `tf.function` call per character)",
             1000 * _once(lambda: model.generate("ROMEO:", length, 0.8, 40, seed=0)) / length)]

    from ai_edge_litert.interpreter import Interpreter

    exports = []
    for quantize in ("none", "float16", "dynamic"):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "lm"
            tracked, endpoints, metadata = family.export_spec(model, run)
            meta = export_bundle(tracked, endpoints, out, tflite=True, quantize=quantize, metadata=metadata,
                                 tolerance=family.export_tolerance)
            interpreter = Interpreter(model_path=str(out / "model.tflite"))
            generate = interpreter.get_signature_runner("generate")
            step = interpreter.get_signature_runner("step")
            inputs = dict(prompt_ids=prompt, uniform=uniform, temperature=controls[0], top_k=controls[1],
                          top_p=controls[2])
            whole_ms = median_ms(lambda: generate(**inputs), 5) / length
            state = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in meta["state"]}
            token = np.array(prompt[:1], np.int32)
            step_ms = median_ms(lambda: step(token=token, **state), 50)
            diffs = meta["parity"]["max_abs_diff"]
            exports.append((quantize, meta["files"]["tflite_bytes"] / 1e6, diffs["step/logits"], whole_ms, step_ms))
            if quantize == "none":
                rows.append(("LiteRT `generate`, whole loop (fp32)", whole_ms))
                rows.append(("LiteRT `step` per character (fp32, app-side sampling not counted)", step_ms))
    print(f"| generation ({length} characters) | ms/char | chars/s |")
    print("|---|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} | {1000 / ms:,.0f} |")
    print("\n| LiteRT export | file | step logits max abs diff vs TF | `generate` ms/char | `step` ms/call |")
    print("|---|---|---|---|---|")
    for quantize, mb, diff, whole_ms, step_ms in exports:
        print(f"| {quantize} | {mb:.2f} MB | {diff:.2g} | {whole_ms:.2f} | {step_ms:.2f} |")


def _once(fn) -> float:
    fn()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
