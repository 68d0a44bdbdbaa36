"""Atomic writes: a file or folder appears whole under its final name, or not at all.

A failure to write (a read-only folder, a full disk) is reported as one line naming the file the
user asked for, never the temporary name.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AigcError


def cannot_write(path, error: OSError) -> AigcError:
    return AigcError(f"cannot write {path}: {error.strerror or error}")


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` keeps an extension that a writer insists on (Keras wants `.keras`, `.weights.h5`).
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as e:
        raise cannot_write(path, e) from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_json(path: str | Path, obj) -> None:
    """Strict JSON (non-finite floats become null: `NaN` is not JSON), written atomically."""
    write_bytes(path, (json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False) + "\n").encode())


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def read_json(path: str | Path):
    return json.loads(Path(path).read_text())


def save_keras(model, path: str | Path) -> None:
    """`model.save(path)` through a temporary file, so a crash never leaves half a model."""
    with atomic_path(path, suffix=".keras") as tmp:
        model.save(tmp)
