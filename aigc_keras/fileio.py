"""Atomic writes: a file or folder appears whole under its final name, or not at all.

A failure to write (a read-only folder, a full disk) is reported as one line naming the file the
user asked for, never the temporary name.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AigcError
from .folders import MARKER, Layout, claim, foreign_entries, marked_kind


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


@contextmanager
def staged_folder(final: str | Path, layout: Layout):
    """Yield an empty folder; if the block succeeds, its entries become `final`'s `layout` entries.

    When `final` is new, or holds only what the tool wrote, the whole folder is swapped in at once.
    When it also holds the user's files (`--force`), or is the current folder, each entry is swapped
    in on its own (metadata last) and the tool's stale entries are removed; the user's files stay.
    """
    final = Path(final).resolve()
    whole = not final.exists() or (
        marked_kind(final) == layout.kind and not foreign_entries(final, layout)
        and final != Path.cwd() and final not in Path.cwd().parents
    )
    stage = None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent if whole else final))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        yield stage
        claim(stage, layout)
        if whole:
            _swap_whole(stage, final)
        else:
            _swap_entries(stage, final, layout)
    except OSError as e:
        raise cannot_write(final, e) from None
    finally:
        if stage is not None and stage.exists():
            shutil.rmtree(stage)


def _swap_whole(stage: Path, final: Path) -> None:
    old = None
    if final.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
        os.replace(final, old / final.name)
    os.replace(stage, final)
    if old is not None:
        shutil.rmtree(old)


def _swap_entries(stage: Path, final: Path, layout: Layout) -> None:
    trash = stage / ".replaced"
    trash.mkdir()
    new = sorted((p for p in stage.iterdir() if p != trash), key=lambda p: (p.name == "metadata.json", p.name))
    names = {p.name for p in new}
    for entry in final.iterdir():  # the tool's entries that this write does not produce again
        if entry != stage and entry.name != MARKER and entry.name not in names and layout.owns(entry.name):
            os.replace(entry, trash / entry.name)
    for entry in new:
        target = final / entry.name
        if target.is_dir():
            os.replace(target, trash / entry.name)
        os.replace(entry, target)
