"""The `aigc-keras` command line: train, sample, export and info.

Errors are printed as one line (`error: ...`) with a non-zero exit status, never a traceback
(set AIGC_KERAS_DEBUG=1 to see one). TensorFlow is imported only by commands that need it.
"""

from __future__ import annotations

import os
import sys

import click

from ..errors import AigcError, reason

__all__ = ["main"]


def main(args=None) -> None:
    """Console-script entry point. (The command tree is imported here, not with the package, so that
    a family's command module can use `cli.common` without building the tree first.)"""
    from .app import cli

    try:
        code = cli.main(args=args, prog_name="aigc-keras", standalone_mode=False)
    except AigcError as e:
        _fail(str(e), e.exit_code)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        _fail(e.format_message() + hint, e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except click.Abort:
        _fail("interrupted", 130)
    except OSError as e:
        if os.environ.get("AIGC_KERAS_DEBUG"):
            raise
        where = f": {e.filename}" if e.filename else ""
        _fail(f"{e.strerror or reason(e)}{where}", 1)
    except Exception as e:
        if os.environ.get("AIGC_KERAS_DEBUG"):
            raise
        _fail(f"unexpected failure: {reason(e)} (set AIGC_KERAS_DEBUG=1 for the traceback)", 1)
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)
