"""The model families, by name: their config classes (cheap) and their implementations (TF).

A family plugs into training, sampling and export by subclassing `training.family.Family` and
adding one line here.
"""

from __future__ import annotations

import importlib

from .errors import AigcError

_FAMILIES = {
    "gan": ("aigc_keras.gan.config:GANConfig", "aigc_keras.gan.family:GANFamily"),
    "diffusion": ("aigc_keras.diffusion.config:DiffusionConfig", "aigc_keras.diffusion.family:DiffusionFamily"),
    "lstm": ("aigc_keras.text.config:TextConfig", "aigc_keras.text.family:TextFamily"),
    "classifier": ("aigc_keras.metrics.config:ClassifierConfig", "aigc_keras.metrics.classifier:ClassifierFamily"),
}

NAMES = tuple(_FAMILIES)


def _load(path: str):
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry(name: str):
    if name not in _FAMILIES:
        raise AigcError(f"unknown model family {name!r}: use one of {', '.join(NAMES)}")
    return _FAMILIES[name]


def config_class(name: str):
    """The family's config dataclass, without importing TensorFlow."""
    return _load(_entry(name)[0])


def get_family(name: str):
    """The family's implementation (imports TensorFlow)."""
    return _load(_entry(name)[1])()
