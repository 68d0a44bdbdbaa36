"""A stop that the user asked for (Ctrl-C, SIGTERM), kept until the command has ended.

Python raises KeyboardInterrupt at whatever line runs when the signal arrives, and when that line is
inside a finalizer (`__del__`: TensorFlow releases its functions there) the exception is printed and
dropped, and the command would go on as if nothing had happened. So the CLI's handler also records
the request, and the points where work becomes final (a file renamed into place, an export swapped
in, each training step) call `check`, which raises it again.
"""

from __future__ import annotations

import threading

_requested = threading.Event()


def request(signum=None, frame=None) -> None:
    """The CLI's handler for SIGINT and SIGTERM: record the stop, and raise it here too."""
    _requested.set()
    raise KeyboardInterrupt


def check() -> None:
    """Raise KeyboardInterrupt if a stop was asked for (and perhaps dropped on the way)."""
    if _requested.is_set():
        raise KeyboardInterrupt
