"""Atomic writes: a file or folder appears whole under its final name, or not at all.

Only a regular file is ever replaced: a name that is a symbolic link, a device, a FIFO or a socket
is refused before anything is written (as root, `--out /dev/null` would otherwise replace the
system's /dev/null). A failure to write (a read-only folder, a full disk) is reported as one line
naming the file the user asked for, never the temporary name.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path

from . import interrupts
from .errors import AigcError


def cannot_write(path, error: OSError) -> AigcError:
    return AigcError(f"cannot write {path}: {error.strerror or 'the system refused it'}")


_KINDS = ((stat.S_ISLNK, "a symbolic link"), (stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"))


def entry_kind(path: str | Path) -> str | None:
    """What the name `path` is, without following a link: "file" (a regular file), a phrase such as
    "a symbolic link" or "a FIFO (named pipe)", or None when nothing has that name."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):  # nothing by that name (or no folder to hold it)
        return None
    except OSError:
        return "an entry that cannot be inspected"
    if stat.S_ISREG(mode):
        return "file"
    return next((name for test, name in _KINDS if test(mode)), "a special file")


def check_readable(path: str | Path, name: str) -> None:
    """Refuse, in one line naming it as `name`, to read `path` unless it is a regular file or a link to
    one (the user named it): a FIFO or a device would make the read wait, or never end."""
    kind = entry_kind(Path(path).resolve())
    if kind is None:
        raise AigcError(f"{name} does not exist")
    if kind != "file":
        raise AigcError(f"{name} is {kind}, not a file aigc-keras can read")


def check_replaceable(path: str | Path, flag: str | None = None) -> None:
    """Refuse, in one line, to write `path` unless it is new or a regular file (see the module)."""
    kind = entry_kind(path)
    if kind not in (None, "file"):
        name = f"{flag} {path}" if flag else str(path)
        raise AigcError(f"{name} is {kind}; aigc-keras replaces only regular files: choose another file name")


@contextmanager
def atomic_path(path: str | Path, suffix: str = ""):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    `suffix` keeps an extension that a writer insists on (Keras wants `.keras`, `.weights.h5`).
    """
    path = Path(path)
    check_replaceable(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
        os.close(fd)
        os.unlink(tmp)
        yield Path(tmp)
        interrupts.check()  # a stop asked for while writing: nothing is renamed into place
        check_replaceable(path)  # not a link or a device now either (it may have appeared meanwhile)
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
