"""The exceptions a user is meant to read, and how their messages name the user's options.

The library raises `AigcError`, a `ValueError` whose message speaks of the Python arguments
(`num must be >= 1`); the CLI prints the same message as one line that names its flags instead
(`error: --num must be >= 1`): a message names an option through `arg`, which says `num` in
Python and `--num` while a command runs (`naming_flags`).
"""

from __future__ import annotations

import contextlib

_FLAGS = [False]


class AigcError(ValueError):
    """A user-facing error (bad input, missing file, wrong shape) with a readable message."""

    exit_code = 1


class Interrupted(AigcError):
    """The user stopped the command (Ctrl-C); the message says how to go on."""

    exit_code = 130


def arg(name: str, flag: str | None = None) -> str:
    """How a message names the option `name` (a Python argument or config field): the argument itself,
    or, while a command runs, its flag (`flag`, or `--` and the name with dashes)."""
    return (flag or "--" + name.replace("_", "-")) if _FLAGS[0] else name


@contextlib.contextmanager
def naming_flags():
    """For the block, messages name command-line flags (what the CLI runs its commands in)."""
    before = _FLAGS[0]
    _FLAGS[0] = True
    try:
        yield
    finally:
        _FLAGS[0] = before


def reason(error: BaseException) -> str:
    """The first line of an exception's message (or its type): what a one-line error can quote."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
