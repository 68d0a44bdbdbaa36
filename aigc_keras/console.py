"""Keeping TensorFlow's and LiteRT's C++ start-up chatter off the user's terminal."""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager


@contextmanager
def quiet_stderr():
    """Point file descriptor 2 at /dev/null for the block (C++ logs ignore Python's sys.stderr)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow and probe its devices without the lines printed before absl starts, and with
    its C++ log lines of every level off (TF_CPP_MIN_LOG_LEVEL 3, unless the user set another).

    Those first lines (and the cuInit failure on machines without a GPU) ignore TF_CPP_MIN_LOG_LEVEL.
    Error-level lines go too: grappler prints some for optimizations it merely skips ("remapper
    failed"), and a real failure also raises in Python, which the command reports in one line.
    """
    if "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with quiet_stderr():
        import tensorflow as tf

        tf.config.list_physical_devices()
