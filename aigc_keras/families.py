"""The model families, by name: the one registry that the CLI, the runner, exports and Keras's loading
iterate. A family is a package with

    config.py   its config dataclass (every option a user can set), TensorFlow-free
    family.py   its `training.family.Family`: data, model, sampling, evaluation, export
    cli.py      `commands(name)`, its click commands, and `EVALUATE_OPTIONS`, TensorFlow-free

and one line below. `ALIASES` gives other names for a family (every command takes them).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.abc
import importlib.util
import sys

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
ALIASES = {"lstm": "text"}  # `aigc-keras train lstm`, and models saved with the family name "lstm"

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


def register_with_keras() -> None:
    """Make every family's Keras classes known to Keras (`keras.models.load_model` of a `.keras` file then
    needs no `custom_objects`): at once if Keras is imported, else as soon as it is. (Keras finds a custom
    class only once the module that defines it has run; importing them with the package would import
    TensorFlow with it, and the command line's `--help` would wait for it.)

    When Keras is first imported by a module of this package, the families are registered once that
    module (and every module of the package it is importing) has finished running: registering in the
    middle would import it again, half made.
    """
    keras = sys.modules.get("keras")
    if keras is not None and hasattr(keras, "saving"):
        _register()
    elif not any(getattr(finder, "registers_aigc_keras", False) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Registrar())


def _register() -> None:
    for name in NAMES:  # a family's implementation imports (and so registers) its Keras classes
        get_family(name)


class _Registrar(importlib.abc.MetaPathFinder):
    """An import finder that finds nothing itself: it wraps how `keras` and this package's modules run,
    to register the families after Keras has loaded and no module of the package is still running."""

    registers_aigc_keras = True  # (a package imported anew keeps its first registrar)

    def __init__(self):
        self.running = 0  # modules of this package being executed right now
        self.due = False  # Keras has loaded: register when `running` is back to 0

    def find_spec(self, name, path=None, target=None):
        if name != "keras" and not name.startswith(f"{__package__}."):
            return None
        spec = self._spec_from_the_others(name, path, target)
        if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
            spec.loader.exec_module = self._watched(name, spec.loader.exec_module)
        return spec

    def _spec_from_the_others(self, name, path, target):
        for finder in sys.meta_path:
            if not getattr(finder, "registers_aigc_keras", False) and hasattr(finder, "find_spec"):
                spec = finder.find_spec(name, path, target)
                if spec is not None:
                    return spec
        return None

    def _watched(self, name, run):
        def exec_module(module):
            if name == "keras":
                run(module)
                self.due = True
            else:
                self.running += 1
                try:
                    run(module)
                finally:
                    self.running -= 1
            if self.due and not self.running:
                self.due = False
                sys.meta_path.remove(self)
                _register()

        return exec_module
