"""GAN throughput: `GAN.fit` against a plain `tf.function` GradientTape loop, and generation latency
of the exported SavedModel against the LiteRT file. Prints a Markdown table.

    python benchmarks/gan_throughput.py                 # default GAN config on the embedded MNIST
    python benchmarks/gan_throughput.py --steps 300 --batch-size 128

Both training loops do the same work (the default config: non-saturating loss, one generator
pass per step, EMA generator) on the same networks, batch and tf.data pipeline, in one process.
Each measurement is `--steps` steady-state steps after a warm-up (for `fit`, inside one call);
fit and the plain loop are measured in pairs of alternating order, because this CPU's speed
drifts, and the table gives medians of `--repeats` pairs. The plain loop is what a user would
write by hand: `BinaryCrossentropy`, `tf.random.normal` noise, a direct EMA `assign` (fine on
one device), no metrics.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from timing import fit_against_plain, folder_mb, machine, median_ms  # noqa: E402

from aigc_keras.export.litert import export_bundle  # noqa: E402
from aigc_keras.gan.config import GANConfig  # noqa: E402
from aigc_keras.gan.family import GANFamily  # noqa: E402


def plain_loop(generator, discriminator, ema_generator, ema_momentum, latent_dim):
    """A hand-written DCGAN step over the same networks: one G pass serves the D and the G update."""
    g_opt = keras.optimizers.Adam(2e-4, 0.5)
    d_opt = keras.optimizers.Adam(2e-4, 0.5)
    g_opt.build(generator.trainable_variables)
    d_opt.build(discriminator.trainable_variables)
    bce = keras.losses.BinaryCrossentropy(from_logits=True)

    @tf.function
    def step(real):
        z = tf.random.normal([tf.shape(real)[0], latent_dim])
        with tf.GradientTape() as g_tape:
            fake = generator(z, training=True)
            with tf.GradientTape() as d_tape:
                real_logits = discriminator(real, training=True)
                fake_logits = discriminator(tf.stop_gradient(fake), training=True)
                d_loss = bce(tf.ones_like(real_logits), real_logits) + bce(tf.zeros_like(fake_logits), fake_logits)
            d_opt.apply(d_tape.gradient(d_loss, discriminator.trainable_weights), discriminator.trainable_weights)
            fake_logits = discriminator(fake, training=True)
            g_loss = bce(tf.ones_like(fake_logits), fake_logits)
        g_opt.apply(g_tape.gradient(g_loss, generator.trainable_weights), generator.trainable_weights)
        if ema_generator is not None:
            for ema, w in zip(ema_generator.weights, generator.weights):
                ema.assign(ema_momentum * ema + (1.0 - ema_momentum) * w)
        return d_loss, g_loss

    return step


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="timed steps per measurement")
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--batch-size", type=int, default=GANConfig().batch_size)
    parser.add_argument("--data", default="mnist")
    args = parser.parse_args()

    config = GANConfig(data=args.data, batch_size=args.batch_size, strategy="default")
    family = GANFamily()
    keras.utils.set_random_seed(0)
    data = family.load_data(config)
    model = family.build(config, data.info())
    epochs_needed = 2 + 2 * args.repeats * args.steps // data.steps_per_epoch(config.batch_size, 1)
    dataset = data.batches(config.batch_size, config.seed, num_epochs=epochs_needed, per_step=1)
    step = plain_loop(model.generator, model.discriminator, model.ema_generator, config.ema_momentum,
                      config.latent_dim)
    fit_s, plain_s, ratio = fit_against_plain(model, dataset, lambda batch: step(batch[0][:, 0])[0],
                                              args.steps, args.repeats)
    images = args.steps * config.batch_size
    fit_ips, plain_ips = images / fit_s, images / plain_s

    with tempfile.TemporaryDirectory() as tmp:
        tracked, endpoints, metadata = family.export_spec(model, {"config": config.to_dict(), "data": data.info()})
        export_bundle(tracked, endpoints, Path(tmp) / "gan", tflite=True, quantize="none", metadata=metadata)
        saved = tf.saved_model.load(str(Path(tmp) / "gan" / "saved_model")).signatures["generate"]
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(Path(tmp) / "gan" / "model.tflite")).get_signature_runner("generate")
        z = np.random.default_rng(0).standard_normal((64, config.latent_dim)).astype(np.float32)
        z_tf = tf.constant(z)
        saved_ms = median_ms(lambda: saved(z=z_tf)["images"].numpy())
        litert_ms = median_ms(lambda: runner(z=z)["images"])
        saved_mb = folder_mb(Path(tmp) / "gan" / "saved_model")
        tflite_mb = (Path(tmp) / "gan" / "model.tflite").stat().st_size / 1e6

    print(f"GAN throughput on {machine()}; batch {config.batch_size}, "
          f"G {model.generator.count_params():,} + D {model.discriminator.count_params():,} params, "
          f"{args.steps} steps x {args.repeats}\n")
    print("| measurement | value |")
    print("|---|---|")
    print(f"| `GAN.fit` training | {fit_ips:,.0f} img/s |")
    print(f"| plain `tf.function` GradientTape loop | {plain_ips:,.0f} img/s |")
    print(f"| fit / plain loop (median of paired runs) | {ratio:.2f}x |")
    print(f"| SavedModel `generate`, batch 64 | {saved_ms:.1f} ms ({saved_mb:.2f} MB) |")
    print(f"| LiteRT `generate`, batch 64 (fp32) | {litert_ms:.1f} ms ({tflite_mb:.2f} MB) |")


if __name__ == "__main__":
    main()
