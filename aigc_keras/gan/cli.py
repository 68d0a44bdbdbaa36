"""`train gan`, `sample gan` and `export gan` (TensorFlow is imported only when a command runs)."""

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
from .config import GANConfig

EVALUATE_OPTIONS = IMAGE_EVALUATE_OPTIONS


def commands(name: str = "gan") -> dict:
    train = train_command(
        GANConfig, name, "Train a DCGAN; rerun the same command to resume after an interruption.",
        ["", " --loss wgan-gp --epochs 20", " --no-conditional --model-dir saved_models/ugan",
         " --data npz:faces.npz --base-filters 64"],
    )

    @click.command(name, epilog=epilog("sample", name, [
        " --num 64 --seed 0 --out digits.png", " --num 1000 --out digits.npz",
        " --label 7 --out sevens.png"]))
    @model_option(name)
    @sample_options
    def sample(model_dir, num, seed, label, out):
        """Generate images from a trained GAN."""
        check_output_name(out)
        family, model = load_for_sampling(model_dir, "gan")
        write_images(out, *family.sample(model, num, seed, label), made_by("gan", model_dir))

    export = export_command(
        "gan", name, "Export a GAN: SavedModel signature `generate` (+ model.tflite) + metadata.json.",
        [" --tflite", " --tflite --batch 16 --out export/gan16", " --tflite --quantize int8 --out export/gan_int8"],
        [batch_option("images")],
    )
    return {"train": train, "sample": sample, "export": export}
