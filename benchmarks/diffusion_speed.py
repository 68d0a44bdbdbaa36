"""Diffusion speed: `DiffusionModel.fit` against a plain GradientTape loop, sampling time against
steps for each sampler, and the exported `generate` (the whole sampler in one graph) in LiteRT
against the SavedModel. Prints Markdown tables.

    python benchmarks/diffusion_speed.py                                # a DDPM U-Net, fresh weights
    python benchmarks/diffusion_speed.py --model saved_models/diffusion  # the trained default (flow) model

Training (always the DDPM config below, unconditional): both loops do the same work (t ~ U,
eps ~ N, x_t, MSE to eps, Adam, EMA) on the same network, batch and pipeline, `--steps` steady-state
steps per measurement in pairs of alternating order, medians of `--repeats`. Sampling (the samplers of
the model's objective) and export latencies are medians of repeated calls; the LiteRT parity is
max |LiteRT - TF| on images_float in [-1, 1] for the same noise.
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
from timing import fit_against_plain, folder_mb, machine, median_ms  # noqa: E402

from aigc_keras.diffusion.config import GUIDANCE, DiffusionConfig  # noqa: E402
from aigc_keras.diffusion.family import DiffusionFamily  # noqa: E402
from aigc_keras.diffusion.pipeline import generate_fn  # noqa: E402
from aigc_keras.diffusion.samplers import make_sampler  # noqa: E402
from aigc_keras.export.litert import export_bundle  # noqa: E402

DDPM = dict(objective="eps", patch=1, base_filters=16, levels=3, conditional=False)  # the earlier default
SAMPLERS = {"ddpm": (("ddpm", 1000), ("ddim", 10), ("ddim", 25), ("ddim", 50), ("dpm++", 10), ("dpm++", 25),
                     ("dpm++", 50)),
            "flow": (("euler", 10), ("euler", 25), ("euler", 50), ("heun", 6), ("heun", 12), ("heun", 25))}


def plain_loop(model: keras.Model, learning_rate: float, ema_momentum: float):
    """A hand-written DDPM step over the same network, with an EMA `assign` (fine on one device)."""
    network, ema_network = model.network, model.ema_network
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build(network.trainable_variables)
    alpha_bar_all = tf.constant(model.schedule.alphas_cumprod, tf.float32)
    timesteps = model.schedule.timesteps

    @tf.function
    def step(x0):
        batch = tf.shape(x0)[0]
        t = tf.random.uniform([batch], 0, timesteps, tf.int32)
        eps = tf.random.normal(tf.shape(x0))
        alpha_bar = tf.reshape(tf.gather(alpha_bar_all, t), [-1, 1, 1, 1])
        x_t = tf.sqrt(alpha_bar) * x0 + tf.sqrt(1.0 - alpha_bar) * eps
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(network([x_t, t], training=True) - eps))
        optimizer.apply(tape.gradient(loss, network.trainable_weights), network.trainable_weights)
        for e, w in zip(ema_network.weights, network.weights):
            e.assign(ema_momentum * e + (1.0 - ema_momentum) * w)
        return loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="a trained model folder (default: the default config, fresh weights)")
    parser.add_argument("--steps", type=int, default=30, help="timed training steps per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16, help="images per sampling call")
    args = parser.parse_args()

    config = DiffusionConfig(strategy="default", **DDPM)
    family = DiffusionFamily()
    keras.utils.set_random_seed(0)
    data = family.load_data(config)
    model = family.build(config, data.info())
    dataset, _ = family.dataset(config, data, config.batch_size)
    step = plain_loop(model, config.learning_rate, config.ema_momentum)
    fit_s, plain_s, ratio = fit_against_plain(model, dataset, lambda batch: step(batch[0]), args.steps,
                                              args.repeats)
    images = args.steps * config.batch_size
    print(f"Diffusion speed on {machine()}; U-Net {model.network.count_params():,} params, "
          f"training batch {config.batch_size}, sampling batch {args.batch}\n")
    print("| training | img/s |")
    print("|---|---|")
    print(f"| `DiffusionModel.fit` | {images / fit_s:,.0f} |")
    print(f"| plain `tf.function` GradientTape loop | {images / plain_s:,.0f} |")
    print(f"| fit / plain loop (median of paired runs) | {ratio:.2f}x |\n")

    if args.model:
        from aigc_keras.model_dir import ModelDir

        md = ModelDir(args.model)
        model, run = md.load_model("diffusion"), md.record()
    else:
        run = {"config": config.to_dict(), "data": data.info()}
    noise = np.random.default_rng(0).standard_normal((args.batch, *model.image_shape)).astype(np.float32)
    print(f"| sampler | steps | seconds per batch of {args.batch} | ms per image |")
    print("|---|---|---|---|")
    labels = tf.zeros([args.batch], tf.int32) if model.num_classes else None
    flow = model.objective == "flow"
    for name, steps in SAMPLERS["flow" if flow else "ddpm"]:
        fn = tf.function(generate_fn(model, make_sampler(name, model.schedule), steps))
        fn(tf.constant(noise), labels).numpy()
        start = time.perf_counter()
        fn(tf.constant(noise), labels).numpy()
        seconds = time.perf_counter() - start
        print(f"| {name} | {steps} | {seconds:.2f} | {1000 * seconds / args.batch:.0f} |")

    from ai_edge_litert.interpreter import Interpreter

    export_sampler = "heun" if flow else "ddim"
    print(f"\n| export (`generate`, {export_sampler}) | file | LiteRT vs TF max abs diff | SavedModel ms/image | "
          "LiteRT ms/image |")
    print("|---|---|---|---|---|")
    for steps, quantize in (((6, "none"), (12, "none"), (25, "none"), (12, "float16"), (12, "dynamic")) if flow else
                            ((10, "none"), (25, "none"), (50, "none"), (25, "float16"), (25, "dynamic"))):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "d"
            tracked, endpoints, metadata = family.export_spec(model, run, steps=steps, sampler=export_sampler)
            meta = export_bundle(tracked, endpoints, out, tflite=True, quantize=quantize, metadata=metadata,
                                 tolerance=family.export_tolerance)
            saved = tf.saved_model.load(str(out / "saved_model")).signatures["generate"]
            runner = Interpreter(model_path=str(out / "model.tflite")).get_signature_runner("generate")
            one = noise[:1]
            inputs = {"noise": one}
            if model.num_classes:
                inputs.update(label=np.zeros(1, np.int32), guidance=np.array(GUIDANCE, np.float32))
            saved_ms = median_ms(lambda: saved(**{k: tf.constant(v) for k, v in inputs.items()})["images"].numpy(),
                                 repeats=5)
            litert_ms = median_ms(lambda: runner(**inputs)["images"], repeats=5)
            diff = meta["parity"]["max_abs_diff"]["generate/images_float"]
            print(f"| {steps} steps, {quantize} | {meta['files']['tflite_bytes'] / 1e6:.2f} MB tflite, "
                  f"{folder_mb(out / 'saved_model'):.2f} MB SavedModel | {diff:.2g} | {saved_ms:.0f} | "
                  f"{litert_ms:.0f} |")


if __name__ == "__main__":
    main()
