"""Click options generated from a config dataclass, so each option is declared once."""

from __future__ import annotations

import math
import typing

import click

from ..limits import MAX_LABEL, MAX_SEED


class FiniteFloat(click.FloatRange):
    """A bounded float option that refuses nan and inf (click's FloatRange lets nan through every bound)."""

    def convert(self, value, param, ctx):
        return _finite(super().convert(value, param, ctx), value, self, param, ctx)


class _AnyFiniteFloat(click.ParamType):
    name = "float"

    def convert(self, value, param, ctx):
        return _finite(click.FLOAT.convert(value, param, ctx), value, self, param, ctx)


FINITE = _AnyFiniteFloat()  # an unbounded float option that refuses nan and inf
SEED = click.IntRange(0, MAX_SEED)  # every --seed: what the seeded generators take
LABEL = click.IntRange(0, MAX_LABEL)


def _finite(number, value, kind, param, ctx):
    if not math.isfinite(number):
        kind.fail(f"{value!r} is not a finite number.", param, ctx)
    return number


def config_options(config_class):
    """Decorator adding one `--flag` per field of `config_class` (bools as --x/--no-x)."""

    def decorate(command):
        for field, hint in reversed(config_class.field_specs()):
            command = _option(field, hint)(command)
        return command

    return decorate


def _option(field, hint):
    meta = field.metadata
    name = field.name.replace("_", "-")
    optional = typing.get_origin(hint) is typing.Union
    base = next(a for a in typing.get_args(hint) if a is not type(None)) if optional else hint
    kwargs = {"default": field.default, "help": meta["help"], "show_default": field.default is not None}
    if base is bool:
        return click.option(f"--{name}/--no-{name}", field.name, **kwargs)
    if meta.get("choices"):
        kind = click.Choice(meta["choices"])
    elif base is int:
        kind = click.IntRange(min=meta.get("min"), max=meta.get("max"))
    elif base is float:
        bounded = meta.get("min") is not None or meta.get("max") is not None
        kind = FiniteFloat(min=meta.get("min"), max=meta.get("max")) if bounded else FINITE
    else:
        kind = str
    return click.option(f"--{name}", field.name, type=kind, **kwargs)


def config_argv(config) -> list[str]:
    """The flags that reproduce `config` (the inverse of `config_options`)."""
    argv = []
    for field, _ in config.field_specs():
        value, name = getattr(config, field.name), field.name.replace("_", "-")
        if isinstance(value, bool):
            argv.append(f"--{name}" if value else f"--no-{name}")
        elif value is not None:
            argv += [f"--{name}", str(value)]
    return argv
