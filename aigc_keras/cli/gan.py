"""`train gan`, `sample gan` and `export gan`."""

from __future__ import annotations

import click

from ..console import import_tensorflow_quietly
from ..gan.config import GANConfig
from ..imaging import check_output_name
from .common import (
    batch_option,
    export_command,
    model_option,
    sample_options,
    train_command,
)

train_gan = train_command(
    GANConfig,
    "Train a DCGAN; rerun the same command to resume after an interruption.",
    ["", " --loss wgan-gp --epochs 20", " --conditional --model-dir saved_models/cgan",
     " --data npz:faces.npz --base-filters 64"],
)


@click.command("gan", epilog="""\b
Examples:
  aigc-keras sample gan --num 64 --seed 0 --out digits.png
  aigc-keras sample gan --num 1000 --out digits.npz
  aigc-keras sample gan --model saved_models/cgan --label 7 --out sevens.png""")
@model_option("gan")
@sample_options
def sample_gan(model_dir, num, seed, label, out):
    """Generate images from a trained GAN."""
    check_output_name(out)
    import_tensorflow_quietly()
    from ..families import get_family
    from ..imaging import save_images
    from ..training.model_dir import ModelDir

    family = get_family("gan")
    model = ModelDir(model_dir).load_model("gan")
    images, labels, columns = family.sample(model, num, seed, label)
    save_images(out, images, labels, columns)
    click.echo(f"wrote {num} images to {out}")


export_gan = export_command(
    "gan", "Export a GAN: SavedModel signature `generate` (+ model.tflite) + metadata.json.",
    [" --tflite", " --tflite --batch 16 --out export/gan16", " --tflite --quantize int8 --out export/gan_int8"],
    [batch_option("images")],
)
