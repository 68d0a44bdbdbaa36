"""`train diffusion`, `sample diffusion` and `export diffusion` (TensorFlow is imported only when a
command runs)."""

from __future__ import annotations

import math

import click

from ..commands import (
    IMAGE_EVALUATE_OPTIONS,
    FiniteFloat,
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
from ..errors import AigcError
from ..imaging import check_output_name
from ..inputs import CHUNK
from .config import (
    DEFAULT_STEPS,
    EXPORT_SAMPLERS,
    SAMPLERS,
    DiffusionConfig,
    check_eta,
    default_sampler,
    edit_strength,
)

GIF_FRAMES = 60
DEFAULT_SAMPLER = f"[default: {default_sampler('eps')} for DDPM, {default_sampler('flow')} for flow]"
DEFAULT_STEPS_HELP = "[default: " + ", ".join(f"{n} for {s}" for s, n in DEFAULT_STEPS.items()) + ", T for ddpm]"

SAMPLER_OPTIONS = {
    "sampler": click.option(
        "--sampler", type=click.Choice(SAMPLERS),
        help=f"diffusion: DDPM models: ddpm (ancestral), ddim or dpm++ (DPM-Solver++(2M)); flow models: euler "
             f"or heun {DEFAULT_SAMPLER}"),
    "steps": click.option("--steps", type=click.IntRange(min=1),
                          help=f"diffusion: sampling steps {DEFAULT_STEPS_HELP}"),
    "eta": click.option("--eta", type=FiniteFloat(0.0, 1.0), help="diffusion: DDIM noise: 0 deterministic (the "
                                                                   "default), 1 DDPM's variance"),
    "guidance": click.option("--guidance", type=FiniteFloat(0.0, 100.0),
                             help="diffusion: classifier-free guidance weight w (conditional models; 0 = "
                                  "unconditional, 1 = none) [default: none; 1.5 for a distilled student]"),
}
EVALUATE_OPTIONS = {**IMAGE_EVALUATE_OPTIONS, **SAMPLER_OPTIONS}


def draw(model_dir, sampler, steps, eta, num, seed, label, guidance, out, gif, init=None, mask=None,
         strength=None, resample=1) -> None:
    """`sample diffusion`: the picture (and the GIF of the grid from noise to image), or with `init` an
    edit of that picture (`edit_picture`)."""
    check_output_name(out)
    if sampler is not None:
        check_eta(sampler, eta)  # before the model loads
    given = [flag for flag, value in (("--mask", mask), ("--strength", strength), ("--resample", resample))
             if value not in (None, 1)]
    if init is None and given:
        raise AigcError(f"{given[0]} edits a picture: name it with --init")
    if init is not None and gif is not None:
        raise AigcError("--gif animates a generation from noise; it does not go with --init")
    if gif is not None:
        check_output_name(gif, "--gif", (".gif",))
        if num > CHUNK:
            raise AigcError(f"--gif animates one grid of at most {CHUNK} images: lower --num")
    family, model = load_for_sampling(model_dir, "diffusion")
    from ..imaging import grid, save_gif, to_uint8
    from .pipeline import resolve

    sampling = resolve(model, sampler, steps, eta, guidance)
    made = made_by("diffusion", model_dir, sampler=sampling.name, steps=sampling.steps,
                   eta=sampling.eta if sampling.name == "ddim" else None,
                   strength=None if init is None else edit_strength(strength, mask is not None))
    if init is not None:
        return edit_picture(model, sampling, init, mask, strength, resample, num, seed, label, out, made)
    rows = sampling.evaluations * math.ceil(num / CHUNK)  # network calls, over every chunk
    columns = model.num_classes if model.num_classes and label is None else None
    frames = []
    keep = {round(i * (rows - 1) / (GIF_FRAMES - 1)) for i in range(GIF_FRAMES)} if gif else set()

    def on_step(i, x):
        if i in keep:
            frames.append(grid(to_uint8(x.clip(-1, 1)), columns))

    result = family.sample(model, num, seed, label, sampler=sampling, on_step=on_step if gif else None)
    write_images(out, *result, made)
    if gif:
        save_gif(gif, frames, provenance=made)
        click.echo(f"wrote {len(frames)} frames to {gif}")


def edit_picture(model, sampling, init, mask, strength, resample, num, seed, label, out, made) -> None:
    """`sample diffusion --init`: `num` edits of one picture; a PNG grid starts with the picture and the
    mask (white: generated), then the edits."""
    import numpy as np

    from ..imaging import read_picture
    from ..inputs import class_labels

    picture = read_picture(init, "--init", model.image_shape)
    h, w, _ = model.image_shape
    drawn = None if mask is None else read_picture(mask, "--mask", (h, w, 3)).mean(axis=-1) > 127  # white
    images = np.repeat(picture[None], num, axis=0)
    edits = model.edit(images, strength, None if drawn is None else np.repeat(drawn[None], num, axis=0), seed,
                       label, sampling, resample=resample)
    labels = class_labels(num, model.num_classes, label)
    if not out.lower().endswith(".png"):
        return write_images(out, edits, labels, None, made)
    columns = max(2, model.num_classes if model.num_classes and label is None else min(num, 8))
    white = np.full_like(picture, 255) if drawn is None else np.repeat(drawn[..., None] * 255, picture.shape[-1], -1)
    head = [picture, white.astype(np.uint8)] + [np.zeros_like(picture)] * (columns - 2)
    write_images(out, np.concatenate([np.stack(head), edits]), None, columns, made)


def commands(name: str = "diffusion") -> dict:
    train = train_command(
        DiffusionConfig, name,
        "Train a diffusion model (DDPM or flow matching); rerun the same command to resume after an interruption.",
        ["", " --no-conditional --model-dir saved_models/udiffusion",
         " --objective eps --patch 1 --levels 3 --model-dir saved_models/ddpm",
         " --objective v --schedule cosine --loss-weighting min-snr --epochs 20"],
    )

    @click.command(name, epilog=epilog("sample", name, [
        " --num 64 --seed 0 --out d.png", " --sampler heun --steps 10 --out heun.png",
        " --model saved_models/ddpm --sampler ddpm --gif denoise.gif",
        " --label 3 --guidance 2 --out threes.png",
        " --init digit.png --strength 0.6 --num 8 --out edits.png",
        " --init digit.png --mask mask.png --label 8 --out completed.png"]))
    @model_option(name)
    @SAMPLER_OPTIONS["sampler"]
    @SAMPLER_OPTIONS["steps"]
    @SAMPLER_OPTIONS["eta"]
    @sample_options
    @SAMPLER_OPTIONS["guidance"]
    @click.option("--gif", help="also write an animated GIF of the grid from pure noise to the image")
    @click.option("--init", help="edit this picture (PNG, the model's size) instead of drawing from noise alone")
    @click.option("--strength", type=FiniteFloat(0.0, 1.0),
                  help="with --init: how far into the noise the picture goes (0 keeps it, 1 draws anew) [default: "
                       "0.6, or 1 with --mask]")
    @click.option("--mask", help="with --init: a PNG of the same size, white where to generate and black where to "
                                 "keep the picture (inpainting)")
    @click.option("--resample", default=1, show_default=True, type=click.IntRange(min=1),
                  help="with --init: run every step this many times (RePaint): what is generated fits the kept "
                       "picture better, for as many times the network calls")
    def sample(model_dir, sampler, steps, eta, num, seed, label, guidance, out, gif, init, strength, mask, resample):
        """Generate images from a trained diffusion model, or edit a picture with it (--init)."""
        draw(model_dir, sampler, steps, eta, num, seed, label, guidance, out, gif, init, mask, strength, resample)

    export = export_command(
        "diffusion", name,
        "Export a diffusion model: signatures `generate` (the whole sampler) and `denoise_step`.",
        [" --tflite --steps 25", " --tflite --steps 10 --sampler heun --quantize float16 --out export/diffusion_fp16",
         " --tflite --batch 4 --out export/diffusion4"],
        [click.option("--steps", type=click.IntRange(min=1),
                      help="sampling steps inside the exported generate signature [default: the sampler's, as for "
                           "sample]"),
         click.option("--sampler", type=click.Choice(EXPORT_SAMPLERS),
                      help=f"sampler inside generate (deterministic: noise is the only input) {DEFAULT_SAMPLER}"),
         batch_option("images")],
    )
    return {"train": train, "sample": sample, "export": export}
