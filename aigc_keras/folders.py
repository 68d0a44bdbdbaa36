"""What the tool may write, and remove: the one rule behind every folder the CLI writes.

A folder the tool writes (a model folder, an export folder) carries a marker file, `.aigc-keras`,
naming its kind. Inside such a folder the tool owns only the names its `Layout` lists, and only
when they are what the tool makes there (a regular file, or a real folder): anything else there,
a symbolic link or a device under one of those names included, belongs to the user and is never
removed, replaced or written through. A folder without the marker is written only when it is new
or empty, or when the user passes `--force` (and even then no file of theirs is replaced: a name
the tool needs that is already taken by a foreign entry is refused). Model folders written before
the marker existed are recognised by their `config.json`.

One command at a time writes a folder: `locked` holds an exclusive lock on its marker for as long
as it writes, and a second command is refused in one line. Under the lock the leftovers of a
killed run (temporary files, staging folders) are removed, because no live writer can own them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

from . import interrupts
from .errors import AigcError, arg
from .fileio import cannot_write, check_replaceable, entry_kind

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; folders are written unlocked
    fcntl = None

MARKER = ".aigc-keras"
TRASH = ".replaced"  # inside a folder being swapped: what the swap replaced, removed right after
_TEMPORARY = re.compile(r"^\..+\.[^.]+\.(tmp|old)(\..+)?$")  # fileio's temporary names (a crash's leftovers)
FOLDER = "a folder"


@dataclasses.dataclass(frozen=True)
class Layout:
    """The entries of one kind of folder that the tool writes.

    `files`: top-level file names. `folders`: sub-folder -> pattern of the file names the tool
    writes inside it (None: the whole sub-tree is the tool's, e.g. a SavedModel). `keeps`: the files
    the tool writes but another command may be writing while the folder's owner runs (so their
    temporaries are never taken for leftovers).
    """

    kind: str
    files: tuple[str, ...]
    folders: dict
    keeps: tuple[str, ...] = ()

    def expects(self, relative: str) -> str | None:
        """What the tool makes at `relative` (a path inside the folder, with '/'): "file", FOLDER,
        "any" (a temporary file or staging folder), or None when the name is not the tool's."""
        parts = relative.split("/")
        head = parts[0]
        if len(parts) == 1:
            if head == MARKER or head in self.files:
                return "file"
            if head in self.folders or head == TRASH:
                return FOLDER
            return "any" if _TEMPORARY.match(head) else None
        if head == TRASH or (head in self.folders and self.folders[head] is None):
            return "any"
        if head in self.folders and len(parts) == 2 and (re.fullmatch(self.folders[head], parts[1])
                                                           or _TEMPORARY.match(parts[1])):
            return "file"
        return None

    def owns(self, relative: str) -> bool:
        """Whether the tool writes the entry at `relative` (by name; `owned` also checks what it is)."""
        return self.expects(relative) is not None


# The names of a model folder's entries (`model_dir.ModelDir` gives their paths) and of an export's.
MODEL_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE = "model.keras", "config.json", "history.json", "metrics.json"
ADAPTER_FILE = "adapter.lora.h5"  # a LoRA run's adapter on its own (`lora.save_adapter`)
PAIRS_FILE = "teacher-pairs.npz"  # a distilled student's training data (`diffusion.reflow`)
CHECKPOINTS, LOGS, SAMPLES = "checkpoints", "logs", "samples"
CHECKPOINT = ".weights.h5"  # what a checkpoint's name ends with: samples/ holds .png and .txt
TFLITE_FILE, METADATA_FILE, SAVED_MODEL = "model.tflite", "metadata.json", "saved_model"
_EPOCH = r"epoch-(\d+)"


def epoch_file(epoch: int, suffix: str) -> str:
    """The name of what an epoch left (epoch-0003.weights.h5, epoch-0003.png)."""
    return f"epoch-{epoch:04d}{suffix}"


def epoch_of(name: str, suffix: str) -> int | None:
    """The epoch that `epoch_file` named `name`, or None."""
    match = re.fullmatch(_EPOCH + re.escape(suffix), name)
    return int(match.group(1)) if match else None


MODEL = Layout("model", (MODEL_FILE, CONFIG_FILE, HISTORY_FILE, METRICS_FILE, ADAPTER_FILE, PAIRS_FILE), {
    CHECKPOINTS: _EPOCH + re.escape(CHECKPOINT),
    LOGS: r"events\.out\.tfevents\..+",
    SAMPLES: _EPOCH + r"\.(png|txt)",
}, keeps=(METRICS_FILE,))
EXPORT = Layout("export", (TFLITE_FILE, METADATA_FILE, METRICS_FILE), {SAVED_MODEL: None}, keeps=(METRICS_FILE,))
LAYOUTS = (MODEL, EXPORT)


def owned(path: Path, relative: str, layout: Layout) -> bool:
    """Whether the entry at `path` (`relative` inside its folder) is one the tool wrote: its name is
    the tool's and it is what the tool makes there (never a link, a device or a FIFO)."""
    wanted, kind = layout.expects(relative), entry_kind(path)
    if wanted is None or kind is None:
        return False
    return kind in ("file", FOLDER) if wanted == "any" else kind == wanted


def marked_kind(path: Path) -> str | None:
    """The kind of tool-written folder `path` is ("model", "export"), or None."""
    marker = path / MARKER
    if entry_kind(marker) == "file":
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
    if entry_kind(path / "config.json") != "file":
        return False
    try:
        record = json.loads((path / "config.json").read_text())
        return isinstance(record, dict) and {"family", "config", "versions"} <= set(record) and \
            "aigc_keras" in record["versions"]
    except (OSError, ValueError, TypeError):
        return False


def _shown(path: Path, relative: str) -> str:
    kind = entry_kind(path)
    return relative + ("/" if kind == FOLDER else "" if kind == "file" else f" ({kind})")


def foreign_entries(path: Path, layout: Layout) -> list[str]:
    """Entries of `path` that the tool did not write (relative paths, sorted; folders end in '/', and
    a link or a special file says what it is)."""
    found = []
    for entry in sorted(path.iterdir()):
        name = entry.name
        if not owned(entry, name, layout):
            found.append(_shown(entry, name))
        elif entry_kind(entry) == FOLDER and layout.folders.get(name) is not None:
            found += [_shown(inner, f"{name}/{inner.name}") for inner in sorted(entry.iterdir())
                      if not owned(inner, f"{name}/{inner.name}", layout)]
    return found


def _describe(entries: list[str]) -> str:
    shown = ", ".join(entries[:3])
    return shown + (f" and {len(entries) - 3} more" if len(entries) > 3 else "")


def _blocked(path: Path, layout: Layout) -> list[str]:
    """Names the tool writes in `path` that something else holds: a link, a device, a folder where
    it writes a file (or the reverse). Writing would follow the link or replace the user's entry."""
    names = [MARKER, *layout.files, *layout.folders]
    inner = [f"{name}/{entry.name}" for name, pattern in layout.folders.items() if pattern is not None
             and entry_kind(path / name) == FOLDER for entry in (path / name).iterdir()
             if re.fullmatch(pattern, entry.name)]
    return [name for name in (*names, *inner) if entry_kind(path / name) is not None and
            not owned(path / name, name, layout)]


def check_folder(path: str | Path, layout: Layout, force: bool = False, clearing: bool = False) -> None:
    """Refuse, with one line, to write `path` as a `layout` folder unless that is safe.

    Safe: `path` does not exist, is empty, or carries the marker of this kind (a model folder from
    before the marker counts). `clearing` (--overwrite) also needs it to hold nothing foreign. With
    `force` a folder holding foreign files is written too, but never a file of theirs replaced, and
    never a name of the tool's that a link or a special file holds.
    """
    path = Path(path)
    flag = arg("model_dir") if layout is MODEL else arg("out_dir", "--out")
    kind = entry_kind(path)
    if kind is None and not path.exists():
        return
    if not path.is_dir():
        raise AigcError(f"{flag} {path} is {'a file' if kind in ('file', None) else kind}, not a folder")
    marked = marked_kind(path)
    if marked is not None and marked != layout.kind:
        raise AigcError(f"{path} is an aigc-keras {marked} folder, not a {layout.kind} folder; choose another {flag}")
    foreign = foreign_entries(path, layout)
    if marked is None and foreign and not force:
        raise AigcError(f"{path} holds files aigc-keras did not write ({_describe(foreign)}); choose another "
                        f"{flag}, or pass {arg('force')} to write into it (its files are kept)")
    blocked = _blocked(path, layout)
    if blocked:
        raise AigcError(f"{_shown(path / blocked[0], str(path / blocked[0]))} is not a file aigc-keras wrote, and "
                        f"aigc-keras never writes through a link or over the user's entries: move it, or choose "
                        f"another {flag}")
    if marked is not None and clearing and foreign and not force:
        raise AigcError(f"{path} also holds files aigc-keras did not write ({_describe(foreign)}); "
                        f"{arg('overwrite')} removes only what aigc-keras wrote: move them, or add "
                        f"{arg('force')} to keep them there")
    if marked is None:
        taken = [name for name in (*layout.files, *layout.folders) if entry_kind(path / name) is not None]
        if taken:
            raise AigcError(f"{path / taken[0]} was not written by aigc-keras and would be replaced; "
                            f"move it, or choose another {flag}")


def claim(path: str | Path, layout: Layout) -> None:
    """Create `path` if needed and mark it as a `layout` folder (after `check_folder` passed).

    The marker appears whole and only once: two commands claiming one new folder share one marker
    (so `locked` can refuse the second), and a marker already there is kept.
    """
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        if entry_kind(path / MARKER) is not None:
            return
        fd, tmp = tempfile.mkstemp(prefix=f"{MARKER}.", suffix=".tmp", dir=path)
        try:
            with os.fdopen(fd, "w") as f:
                json.dump({"kind": layout.kind, "written_by": "aigc-keras"}, f)
            os.link(tmp, path / MARKER)  # never replaces: fails if another command made the marker first
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    except OSError as e:
        raise cannot_write(path, e) from None


def _lock(marker: Path) -> int | None:
    """An open descriptor holding an exclusive lock on `marker`, or None when another process holds it
    (or the file system has no locks: then the descriptor is returned unlocked)."""
    fd = os.open(marker, os.O_RDONLY)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    except OSError:  # e.g. a network file system without flock: go on unlocked
        pass
    return fd


def _unused(marker: Path) -> bool:
    """Whether no live process holds `marker`'s lock (what a killed run leaves behind)."""
    if entry_kind(marker) != "file":
        return False
    fd = _lock(marker)
    if fd is not None:
        os.close(fd)
    return fd is not None


@contextmanager
def locked(path: str | Path, layout: Layout):
    """Claim `path` and hold its lock for the block; refuse in one line when another command holds
    it. Leftovers of killed runs are removed first. If the block fails in a folder it created and
    left with nothing but the marker, the folder goes too."""
    path = Path(path)
    created = [p for p in (path, *path.parents) if not p.exists()]
    claim(path, layout)
    fd = _lock(path / MARKER)
    if fd is None:
        flag = arg("model_dir") if layout is MODEL else arg("out_dir", "--out")
        raise AigcError(f"{path} is in use by another aigc-keras command right now; wait for it to finish, "
                        f"or choose another {flag}")
    try:
        remove_leftovers(path, layout)
        yield
    except BaseException:
        if created and [p.name for p in path.iterdir()] == [MARKER]:
            (path / MARKER).unlink()
            for folder in created:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    finally:
        os.close(fd)


def remove_leftovers(path: Path, layout: Layout) -> None:
    """Remove what killed runs left in `path` (whose lock the caller holds): temporary files of the
    tool's names, and staging folders whose writer is gone. Never a link, never the user's files."""
    def stale(entry: Path, relative: str) -> bool:
        name = entry.name
        if not _TEMPORARY.match(name) or any(name.startswith(f".{keep}.") for keep in layout.keeps):
            return False
        if entry_kind(entry) == "file":
            return owned(entry, relative, layout)
        return entry_kind(entry) == FOLDER and _unused(entry / MARKER)

    for entry in list(path.iterdir()):
        if stale(entry, entry.name):
            _remove(entry)
        elif entry.name == TRASH and entry_kind(entry) == FOLDER:
            shutil.rmtree(entry)
        elif layout.folders.get(entry.name) is not None and entry_kind(entry) == FOLDER:
            for inner in list(entry.iterdir()):
                if stale(inner, f"{entry.name}/{inner.name}"):
                    _remove(inner)


def _remove(entry: Path) -> None:
    if entry_kind(entry) == FOLDER:
        shutil.rmtree(entry)
    else:
        entry.unlink()


def clear(path: str | Path, layout: Layout) -> None:
    """Remove what the tool wrote in `path` (keeping the marker); leave every other entry, and never
    follow a link."""
    path = Path(path)
    if entry_kind(path) != FOLDER and not path.is_dir():
        return
    for entry in sorted(path.iterdir()):
        name = entry.name
        if name == MARKER or not owned(entry, name, layout):
            continue
        if entry_kind(entry) == FOLDER and name in layout.folders and layout.folders[name] is not None:
            for inner in entry.iterdir():
                if owned(inner, f"{name}/{inner.name}", layout):
                    inner.unlink()
            with contextlib.suppress(OSError):  # still holds the user's files
                entry.rmdir()
        else:
            _remove(entry)


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


def check_output_file(path: str | Path, flag: str | None = None) -> None:
    """Refuse an output file name that is a folder, a link or a special file, or an entry of a model or
    export folder."""
    path, flag = Path(path), flag or arg("out")
    if path.is_dir():
        raise AigcError(f"{flag} {path} is a folder; give a file name")
    above = next((p for p in path.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():  # before any work: the file could never be written
        raise AigcError(f"cannot write {path}: {above} is a file, not a folder")
    check_replaceable(path, flag)
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
    The stage is marked and locked while it lives, so the stages of killed runs are recognised and
    removed by the next write, and a live one is never touched.
    """
    final = Path(final).resolve()
    whole = not final.exists() or (
        marked_kind(final) == layout.kind and not foreign_entries(final, layout)
        and final != Path.cwd() and final not in Path.cwd().parents
    )
    stage, fd = None, None
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_stages(final, layout)
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent if whole else final))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes it private; the result is an ordinary folder
        claim(stage, layout)
        fd = _lock(stage / MARKER)
        yield stage
        interrupts.check()
        with _signals_held():  # a Ctrl-C between the renames would leave neither the old folder nor the new
            if whole:
                _swap_whole(stage, final)
            else:
                _swap_entries(stage, final, layout)
    except OSError as e:
        raise cannot_write(final, e) from None
    finally:
        if stage is not None and entry_kind(stage) == FOLDER:
            shutil.rmtree(stage)
        if fd is not None:
            os.close(fd)


@contextmanager
def _signals_held():
    """Hold Ctrl-C and SIGTERM back for the block; they arrive right after it."""
    held = {signal.SIGINT, signal.SIGTERM}
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _remove_stale_stages(final: Path, layout: Layout) -> None:
    """The staging folders of `final` that killed runs left beside it or in it."""
    for where in (final.parent, final):
        if entry_kind(where) != FOLDER:
            continue
        for entry in where.glob(f".{_glob_escape(final.name)}.*.tmp"):
            if entry_kind(entry) == FOLDER and marked_kind(entry) == layout.kind and _unused(entry / MARKER):
                shutil.rmtree(entry)


def _glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _swap_whole(stage: Path, final: Path) -> None:
    """`stage` becomes `final`; the folder it replaces goes through the stage's trash, so that no
    leftover lies beside `final` if the process dies between the two renames."""
    if final.exists():
        trash = stage / TRASH
        trash.mkdir()
        os.replace(final, trash / final.name)
    os.replace(stage, final)
    if entry_kind(final / TRASH) == FOLDER:
        shutil.rmtree(final / TRASH)


def _swap_entries(stage: Path, final: Path, layout: Layout) -> None:
    trash = stage / TRASH
    trash.mkdir()
    new = sorted((p for p in stage.iterdir() if p not in (trash, stage / MARKER)),
                 key=lambda p: (p.name == "metadata.json", p.name))
    names = {p.name for p in new}
    for entry in final.iterdir():  # the tool's entries that this write does not produce again
        if entry.name not in (MARKER, *names) and layout.expects(entry.name) != "any" and \
                owned(entry, entry.name, layout):
            os.replace(entry, trash / entry.name)
    for entry in new:
        target = final / entry.name
        if entry_kind(target) == FOLDER:
            os.replace(target, trash / entry.name)
        os.replace(entry, target)
    if entry_kind(final / MARKER) is None:
        claim(final, layout)
