"""What the tool may write, and remove: the one rule behind every folder the CLI writes.

A folder the tool writes (a model folder, an export folder) carries a marker file, `.aigc-keras`,
naming its kind. Inside such a folder the tool owns only the names its `Layout` lists; anything
else there belongs to the user and is never removed or replaced. A folder without the marker is
written only when it is new or empty, or when the user passes `--force` (and even then no file of
theirs is replaced: a name the tool needs that is already taken by a foreign file is refused).
Model folders written before the marker existed are recognised by their `config.json`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path

from .errors import AigcError
from .fileio import cannot_write, write_json

MARKER = ".aigc-keras"
_TEMPORARY = re.compile(r"^\..+\.[^.]+\.(tmp|old)(\..+)?$")  # fileio's temporary names (a crash's leftovers)


@dataclasses.dataclass(frozen=True)
class Layout:
    """The entries of one kind of folder that the tool writes.

    `files`: top-level file names. `folders`: sub-folder -> pattern of the file names the tool
    writes inside it (None: the whole sub-tree is the tool's, e.g. a SavedModel).
    """

    kind: str
    files: tuple[str, ...]
    folders: dict

    def owns(self, relative: str) -> bool:
        """Whether the tool writes the entry at `relative` (a path inside the folder, with '/')."""
        parts = relative.split("/")
        if parts[0] == MARKER or (len(parts) == 1 and (parts[0] in self.files or _TEMPORARY.match(parts[0]))):
            return True
        if parts[0] not in self.folders:
            return False
        pattern = self.folders[parts[0]]
        if len(parts) == 1 or pattern is None:
            return True
        return len(parts) == 2 and bool(re.fullmatch(pattern, parts[1]) or _TEMPORARY.match(parts[1]))


MODEL = Layout("model", ("model.keras", "config.json", "history.json", "metrics.json"), {
    "checkpoints": r"epoch-\d+\.weights\.h5",
    "logs": r"events\.out\.tfevents\..+",
    "samples": r"epoch-\d+\.(png|txt)",
})
EXPORT = Layout("export", ("model.tflite", "metadata.json", "metrics.json"), {"saved_model": None})
LAYOUTS = (MODEL, EXPORT)


def marked_kind(path: Path) -> str | None:
    """The kind of tool-written folder `path` is ("model", "export"), or None."""
    marker = path / MARKER
    if marker.is_file():
        try:
            kind = json.loads(marker.read_text()).get("kind")
        except (ValueError, AttributeError, OSError):
            kind = None
        return kind if kind in {layout.kind for layout in LAYOUTS} else None
    if _is_legacy_model(path):
        return MODEL.kind
    return None


def _is_legacy_model(path: Path) -> bool:
    """A model folder from before the marker: its config.json is one the tool wrote."""
    try:
        run = json.loads((path / "config.json").read_text())
        return isinstance(run, dict) and {"family", "config", "versions"} <= set(run) and \
            "aigc_keras" in run["versions"]
    except (OSError, ValueError, TypeError):
        return False


def foreign_entries(path: Path, layout: Layout) -> list[str]:
    """Entries of `path` that the tool did not write (relative paths, sorted; folders end in '/')."""
    found = []
    for entry in sorted(path.iterdir()):
        name = entry.name
        if not layout.owns(name):
            found.append(name + ("/" if entry.is_dir() else ""))
        elif entry.is_dir() and name in layout.folders and layout.folders[name] is not None:
            found += [f"{name}/{inner.name}" for inner in sorted(entry.iterdir())
                      if inner.is_dir() or not layout.owns(f"{name}/{inner.name}")]
        elif entry.is_file() and name in layout.folders:
            found.append(name)  # a file where the tool keeps a folder
    return found


def _describe(entries: list[str]) -> str:
    shown = ", ".join(entries[:3])
    return shown + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")


def check_folder(path: str | Path, layout: Layout, force: bool = False, clearing: bool = False) -> None:
    """Refuse, with one line, to write `path` as a `layout` folder unless that is safe.

    Safe: `path` does not exist, is empty, or carries the marker of this kind (a model folder from
    before the marker counts). `clearing` (--overwrite) also needs it to hold nothing foreign. With
    `force` a folder holding foreign files is written too, but never a file of theirs replaced.
    """
    path = Path(path)
    flag = "--model-dir" if layout is MODEL else "--out"
    if not path.exists():
        return
    if not path.is_dir():
        raise AigcError(f"{flag} {path} is a file, not a folder")
    kind = marked_kind(path)
    if kind is not None and kind != layout.kind:
        raise AigcError(f"{path} is an aigc-keras {kind} folder, not a {layout.kind} folder; choose another {flag}")
    foreign = foreign_entries(path, layout)
    if kind is None and foreign and not force:
        raise AigcError(f"{path} holds files aigc-keras did not write ({_describe(foreign)}); choose another "
                        f"{flag}, or pass --force to write into it (its files are kept)")
    if kind is not None and clearing and foreign and not force:
        raise AigcError(f"{path} also holds files aigc-keras did not write ({_describe(foreign)}); --overwrite "
                        "removes only what aigc-keras wrote: move them, or add --force to keep them there")
    if kind is None:
        taken = [name for name in (*layout.files, *layout.folders) if (path / name).exists()]
        if taken:
            raise AigcError(f"{path / taken[0]} was not written by aigc-keras and would be replaced; "
                            f"move it, or choose another {flag}")


def claim(path: str | Path, layout: Layout) -> None:
    """Create `path` if needed and mark it as a `layout` folder (after `check_folder` passed)."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    if not (path / MARKER).is_file():
        write_json(path / MARKER, {"kind": layout.kind, "written_by": "aigc-keras"})


def clear(path: str | Path, layout: Layout) -> None:
    """Remove what the tool wrote in `path` (keeping the marker); leave every other file."""
    path = Path(path)
    if not path.is_dir():
        return
    for entry in sorted(path.iterdir()):
        name = entry.name
        if name == MARKER or not layout.owns(name):
            continue
        if entry.is_dir() and name in layout.folders:
            if layout.folders[name] is None:
                shutil.rmtree(entry)
                continue
            for inner in entry.iterdir():
                if inner.is_file() and layout.owns(f"{name}/{inner.name}"):
                    inner.unlink()
            with contextlib.suppress(OSError):  # still holds the user's files
                entry.rmdir()
        elif entry.is_file():
            entry.unlink()


def owner_of(path: str | Path) -> tuple[Path, Layout] | None:
    """(tool-written folder, its layout) when `path` names an entry the tool owns in such a folder."""
    path = Path(path).resolve()
    for folder in list(path.parents)[:3]:
        kind = marked_kind(folder)
        if kind is None:
            continue
        layout = next(layout for layout in LAYOUTS if layout.kind == kind)
        if layout.owns(path.relative_to(folder).as_posix()):
            return folder, layout
        return None
    return None


def check_output_file(path: str | Path, flag: str = "--out") -> None:
    """Refuse an output file name that is a folder, or an entry of a model or export folder."""
    path = Path(path)
    if path.is_dir():
        raise AigcError(f"{flag} {path} is a folder; give a file name")
    owner = owner_of(path)
    if owner is not None:
        folder, layout = owner
        raise AigcError(f"{flag} {path} is part of the {layout.kind} folder {folder}; choose another file name")


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
