"""The `aigc-keras` command line: train, sample, export and info.

Errors are printed as one line (`error: ...`) with a non-zero exit status, never a traceback or an
exception's own text (set AIGC_KERAS_DEBUG=1 to see one). TensorFlow is imported only by commands
that need it. What takes more than a moment shows its progress on stderr (`progress`). Ctrl-C and
SIGTERM stop a command the same way, with a line that says how to go on; after the last line,
nothing more reaches the terminal (LiteRT's C++ logs as it shuts down).
"""

from __future__ import annotations

import atexit
import os
import signal
import sys
import threading

import click

from .. import interrupts, progress
from ..errors import AigcError, naming_flags

__all__ = ["main"]

OUT_OF_MEMORY = ("this machine ran out of memory: use smaller sizes (--batch-size, --num, --batch, the network's "
                 "widths)")


def main(args=None) -> None:
    """Console-script entry point. (The command tree is imported here, not with the package, so that
    a family's command module can use `commands` without building the tree first.)"""
    from .app import cli

    atexit.register(_quiet_after_the_last_line)
    if threading.current_thread() is threading.main_thread():
        _catch_stop_signals()
    try:
        with naming_flags(), progress.shown(), \
                cli.make_context("aigc-keras", list(sys.argv[1:] if args is None else args)) as ctx:
            code = cli.invoke(ctx)
    except click.exceptions.Exit as e:  # --help, --version
        code = e.exit_code
    except AigcError as e:
        _fail(str(e), e.exit_code)
    except click.UsageError as e:
        hint = f" (see '{e.ctx.command_path} --help')" if e.ctx else ""
        _fail(e.format_message() + hint, e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message(), e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Exception as e:
        if os.environ.get("AIGC_KERAS_DEBUG"):
            raise
        _fail(_unexpected(e), 1)
    sys.exit(code if isinstance(code, int) else 0)


def _catch_stop_signals() -> None:
    """Ctrl-C (SIGINT) and SIGTERM (`kill`, a job scheduler) stop a command cleanly, as KeyboardInterrupt.

    SIGINT is caught even when this process inherited it ignored (a parent that ignores it, such as a
    shell's background job or a test runner, passes SIG_IGN on, and Python then leaves it ignored):
    a stop that the user asks for is never lost. One that lands in a finalizer (TensorFlow releases its
    functions in `__del__`) is not printed as an ignored exception: `interrupts` raises it again.
    """
    signal.signal(signal.SIGINT, interrupts.request)
    signal.signal(signal.SIGTERM, interrupts.request)
    default = sys.unraisablehook

    def unraisable(problem):  # a stop raised inside a finalizer is recorded, and raised again at the next check
        if not isinstance(problem.exc_value, KeyboardInterrupt):
            default(problem)

    sys.unraisablehook = unraisable


def _unexpected(error: Exception) -> str:
    """The one line for an error the tool did not foresee: what kind of failure, never its raw text."""
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return OUT_OF_MEMORY
    if isinstance(error, OSError):
        where = f" ({error.filename})" if getattr(error, "filename", None) else ""
        return f"{error.strerror or 'a system call failed'}{where}"
    return "unexpected failure inside aigc-keras (please report it; AIGC_KERAS_DEBUG=1 shows the traceback)"


def _fail(message: str, code: int) -> None:
    sys.stdout.flush()
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _quiet_after_the_last_line() -> None:
    """Point stderr at /dev/null as the process ends: LiteRT's accelerators log as they are destroyed."""
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
    except (OSError, ValueError):
        pass
