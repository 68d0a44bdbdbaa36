"""`train vae`, `sample vae` and `export vae` (TensorFlow is imported only when a command runs)."""

from __future__ import annotations

import click

from ..commands import (
    IMAGE_EVALUATE_OPTIONS,
    batch_option,
    epilog,
    export_command,
    load_for_sampling,
    made_by,
    model_option,
    sample_options,
    train_command,
    write_images,
)
from ..imaging import check_output_name
from .config import VAEConfig

EVALUATE_OPTIONS = IMAGE_EVALUATE_OPTIONS


def commands(name: str = "vae") -> dict:
    train = train_command(
        VAEConfig, name, "Train a convolutional variational autoencoder; rerun the same command to resume.",
        ["", " --beta 4 --latent-dim 8 --model-dir saved_models/beta-vae", " --data npz:faces.npz --epochs 30"],
    )

    @click.command(name, epilog=epilog("sample", name, [
        " --num 64 --seed 0 --out vae.png", " --interpolate 8 --out morph.png"]))
    @model_option(name)
    @sample_options
    @click.option("--interpolate", type=click.IntRange(min=1),
                  help="instead, a grid of N rows, each morphing one real training image into another")
    @click.option("--steps", default=10, show_default=True, type=click.IntRange(min=2),
                  help="points on each --interpolate row")
    def sample(model_dir, num, seed, label, out, interpolate, steps):
        """Generate images from a trained VAE: decoded draws of the prior, or interpolations."""
        check_output_name(out)
        family, model = load_for_sampling(model_dir, "vae")
        if interpolate is None:
            write_images(out, *family.sample(model, num, seed, label), made_by("vae", model_dir))
            return
        from ..imaging import encode_png, save_images
        from ..model_dir import ModelDir

        picture = family.interpolate(model, ModelDir(model_dir).training_data("vae"), interpolate, steps, seed)
        if out.lower().endswith(".png"):
            from .. import fileio

            fileio.write_bytes(out, encode_png(picture, made_by("vae", model_dir)))
        else:
            save_images(out, picture[None])
        click.echo(f"wrote {interpolate} interpolations of {steps} points to {out}")

    export = export_command(
        "vae", name, "Export a VAE: signatures `generate` (prior to images), `decode` and `encode`.",
        [" --tflite", " --tflite --batch 16 --quantize int8 --out export/vae_int8"],
        [batch_option("images")],
    )
    return {"train": train, "sample": sample, "export": export}
