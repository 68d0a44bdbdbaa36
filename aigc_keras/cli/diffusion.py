"""`train diffusion`, `sample diffusion` and `export diffusion`."""

from __future__ import annotations

import sys

import click

from ..console import import_tensorflow_quietly
from ..diffusion.config import EXPORT_SAMPLERS, SAMPLERS, DiffusionConfig
from ..errors import AigcError
from ..imaging import check_output_name
from .common import (
    batch_option,
    export_command,
    model_option,
    sample_options,
    train_command,
)
from .options import FiniteFloat

GIF_FRAMES = 60


train_diffusion = train_command(
    DiffusionConfig,
    "Train a DDPM U-Net denoiser; rerun the same command to resume after an interruption.",
    ["", " --conditional --model-dir saved_models/cdiffusion", " --objective flow --time-sampling logit-normal",
     " --schedule cosine --objective v --loss-weighting min-snr --epochs 20"],
)


@click.command("diffusion", epilog="""\b
Examples:
  aigc-keras sample diffusion --num 64 --seed 0 --out d.png
  aigc-keras sample diffusion --sampler heun --steps 10 --out heun.png          # a flow model
  aigc-keras sample diffusion --model saved_models/ddpm --sampler ddpm --gif denoise.gif
  aigc-keras sample diffusion --model saved_models/cdiffusion --label 3 --guidance 3.0 --out threes.png""")
@model_option("diffusion")
@click.option("--sampler", type=click.Choice(SAMPLERS),
              help="DDPM models: ddpm (ancestral), ddim or dpm++ (DPM-Solver++(2M)); flow models: euler or heun "
                   "[default: ddim for DDPM, euler for flow]")
@click.option("--steps", type=click.IntRange(min=1),
              help="sampling steps [default: 50 for ddim and dpm++, T for ddpm, 25 for euler and heun]")
@click.option("--eta", type=FiniteFloat(0.0, 1.0), default=0.0, show_default=True,
              help="DDIM noise: 0 deterministic, 1 DDPM's variance")
@sample_options
@click.option("--guidance", type=FiniteFloat(), help="classifier-free guidance weight w (conditional models; 1 = none)")
@click.option("--gif", help="also write an animated GIF of the grid from x_T to x_0")
@click.option("--progress", is_flag=True, help="run step by step with a progress bar (same result)")
def sample_diffusion(model_dir, sampler, steps, eta, num, seed, label, guidance, out, gif, progress):
    """Generate images from a trained diffusion model."""
    check_output_name(out)
    if gif is not None:
        check_output_name(gif, "--gif", (".gif",))
    if eta and sampler not in (None, "ddim"):
        raise AigcError("--eta applies to --sampler ddim only")
    import_tensorflow_quietly()
    from ..diffusion.family import checked_sampler
    from ..diffusion.pipeline import evaluations
    from ..families import get_family
    from ..imaging import grid, save_gif, save_images, to_uint8
    from ..training.model_dir import ModelDir

    family = get_family("diffusion")
    model = ModelDir(model_dir).load_model("diffusion")
    chosen, sampler, steps = checked_sampler(model, sampler, steps, eta)
    rows = evaluations(chosen, steps)
    columns = model.num_classes if model.num_classes and label is None else None
    frames, bar = [], None
    keep = {round(i * (rows - 1) / (GIF_FRAMES - 1)) for i in range(GIF_FRAMES)} if gif else set()

    def on_step(i, x):
        if i in keep:
            frames.append(grid(to_uint8(x.clip(-1, 1)), columns))
        if bar is not None:
            bar.update(1)

    if progress:
        with click.progressbar(length=rows, label=f"{sampler} x{steps}", file=sys.stderr) as bar:
            images, labels, columns = family.sample(model, num, seed, label, sampler, steps, eta, guidance, on_step)
    else:
        images, labels, columns = family.sample(model, num, seed, label, sampler, steps, eta, guidance,
                                                on_step if gif else None)
    save_images(out, images, labels, columns)
    click.echo(f"wrote {num} images to {out}")
    if gif:
        save_gif(gif, frames)
        click.echo(f"wrote {len(frames)} frames to {gif}")


export_diffusion = export_command(
    "diffusion", "Export a diffusion model: signatures `generate` (the whole sampler) and `denoise_step`.",
    [" --tflite --steps 25", " --tflite --steps 10 --sampler dpm++ --quantize float16 --out export/diffusion_fp16",
     " --tflite --batch 4 --out export/diffusion4"],
    [click.option("--steps", type=click.IntRange(min=1), default=25, show_default=True,
                  help="sampling steps inside the exported generate signature"),
     click.option("--sampler", type=click.Choice(EXPORT_SAMPLERS), default="ddim", show_default=True,
                  help="sampler inside generate (deterministic: noise is the only input)"),
     batch_option("images")],
)
