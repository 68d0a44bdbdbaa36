"""The model families, by name: the one registry that the CLI, the runner, exports and
`import aigc_keras.models` iterate. A family is a package with

    config.py   its config dataclass (every option a user can set), TensorFlow-free
    family.py   its `training.family.Family`: data, model, sampling, evaluation, export
    cli.py      `commands(name)`, its click commands, and `EVALUATE_OPTIONS`, TensorFlow-free

and one line below. `ALIASES` gives other names for a family (every command takes them).
"""

from __future__ import annotations

import dataclasses
import importlib

from .errors import AigcError


@dataclasses.dataclass(frozen=True)
class Entry:
    config: str  # "module:ConfigClass"
    family: str  # "module:FamilyClass"
    cli: str  # "module"


_FAMILIES = {
    "gan": Entry("aigc_keras.gan.config:GANConfig", "aigc_keras.gan.family:GANFamily", "aigc_keras.gan.cli"),
    "diffusion": Entry("aigc_keras.diffusion.config:DiffusionConfig", "aigc_keras.diffusion.family:DiffusionFamily",
                       "aigc_keras.diffusion.cli"),
    "text": Entry("aigc_keras.text.config:TextConfig", "aigc_keras.text.family:TextFamily", "aigc_keras.text.cli"),
    "vae": Entry("aigc_keras.vae.config:VAEConfig", "aigc_keras.vae.family:VAEFamily", "aigc_keras.vae.cli"),
    "classifier": Entry("aigc_keras.classifier.config:ClassifierConfig",
                        "aigc_keras.classifier.family:ClassifierFamily", "aigc_keras.classifier.cli"),
}
ALIASES = {"lstm": "text"}  # `aigc-keras train lstm` and models saved as "lstm" before the Transformer joined

NAMES = tuple(_FAMILIES)


def canonical(name: str) -> str:
    """The family's registered name for `name` (itself, or what an alias stands for)."""
    name = ALIASES.get(name, name)
    if name not in _FAMILIES:
        raise AigcError(f"unknown model family {name!r}: use one of {', '.join(NAMES)}")
    return name


def _load(path: str):
    module, _, attr = path.partition(":")
    module = importlib.import_module(module)
    return getattr(module, attr) if attr else module


def config_class(name: str):
    """The family's config dataclass, without importing TensorFlow."""
    return _load(_FAMILIES[canonical(name)].config)


def cli(name: str):
    """The family's command module (`commands(name)`, `EVALUATE_OPTIONS`), without importing TensorFlow."""
    return _load(_FAMILIES[canonical(name)].cli)


def get_family(name: str):
    """The family's implementation (imports TensorFlow)."""
    return _load(_FAMILIES[canonical(name)].family)()
