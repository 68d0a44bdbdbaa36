"""The Python API's functions: `train` a model as the command line does, `load` it, `export_model` it, and
`load_data` of a spec as arrays or a text.

The model classes themselves (`GAN`, `DiffusionModel`, `VAE`, `LanguageModel` and its two
architectures) and their config dataclasses are the package's other public names (see `aigc_keras`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import keras

from .errors import AigcError
from .fileio import entry_kind
from .model_dir import ModelDir


def load_data(spec: str):
    """The data of a spec, in memory, as `fit` takes it: images (uint8 [N, H, W, C]) and labels (int32
    [N], or None without labels) for an image spec such as "mnist" (the digits shipped with the package),
    "npz:FILE" or "folder:DIR"; the text (a str) for a text spec such as "shakespeare" or "text:FILE"."""
    from .data import load_images, load_text
    from .data.text import TEXT_KINDS

    if spec.partition(":")[0] in TEXT_KINDS:
        return load_text(spec).text
    data = load_images(spec)
    images, labels = data.arrays()
    return images, labels if data.num_classes else None


def load(path: str | Path, compile: bool = False) -> keras.Model:
    """The trained model in `path`: a model folder (what `aigc-keras train` or `train` wrote) or a `.keras`
    file, ready to `generate` and to export. It computes in float32 (even if it trained in mixed
    precision). With `compile`, it comes back as it was saved, with its optimizer's state, to `fit` or
    `evaluate` on. A damaged file or weights that are not finite raise `ValueError`."""
    path = Path(path)
    if entry_kind(path) != "file" or path.suffix != ".keras":
        md = ModelDir(path)
        return md.load_model(md.record()["family"], compile)
    from .precision import float32_model

    try:
        model = keras.models.load_model(path, compile=compile)
    except (OSError, ValueError, TypeError):  # their text names Keras internals
        raise AigcError(f"cannot load {path}: it is not a whole .keras file of a model this version of "
                        "aigc-keras can read") from None
    return model if compile else float32_model(model)


def export_model(model_dir: str | Path, out_dir: str | Path, tflite: bool = True, quantize: str = "none",
                 force: bool = False, **options) -> dict:
    """Export the trained model in `model_dir` to `out_dir` as `aigc-keras export` does: a SavedModel and
    (with `tflite`) a `.tflite` whose every signature runs the same in both LiteRT APIs and in
    TensorFlow (nothing is written otherwise), and metadata.json, which is returned. `quantize` is none,
    float16, dynamic or int8; `options` are the family's (the diffusion `sampler` and `steps`, the image
    `batch`, the text `length` and `prompt_length`)."""
    from .export import export_trained

    return export_trained(ModelDir(model_dir).record()["family"], model_dir, out_dir, tflite=tflite,
                          quantize=quantize, force=force, **options)


def train(config, model_dir: str | Path, overwrite: bool = False, force: bool = False, callbacks=(),
          verbose: int | str = "auto", log: Callable[[str], None] = print) -> keras.Model:
    """Train `config` (`GANConfig(...)`, `TextConfig(...)`, ...) into the folder `model_dir`, as
    `aigc-keras train` does: checkpoints after every epoch, TensorBoard logs and previews, config.json and
    history.json, and the same call again resumes after the last finished epoch. Returns the model.
    `overwrite` starts again; `force` writes beside files that aigc-keras did not write (see
    `training.runner.train`)."""
    from .training.runner import train as run

    return run(config, model_dir, overwrite=overwrite, force=force, callbacks=callbacks, verbose=verbose, log=log)
