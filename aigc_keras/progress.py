"""Progress on stderr for work that takes more than a moment: a bar that redraws itself on a terminal,
and one line per step when stderr is piped (a log file, CI).

The library says how far it is with `task(...)` and `Bar.advance`/`Bar.reach`; nothing shows unless a
command turned reporting on with `shown()`, so that notebooks and scripts stay quiet. A task opened
inside another one is the same bar (evaluate's "1000 samples" counts the chunks and steps that its
sampling reports). The time left is estimated from the steps after the first one, whose time is
mostly tracing and compiling.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import time

WIDTH = 24
REDRAW_SECONDS = 0.1  # on a terminal, at most this often


class Bar:
    """`done` of `total` units of one task, drawn on `stream`."""

    def __init__(self, label: str, total: float, stream, unit: str = ""):
        self.label, self.total, self.stream, self.unit = label, max(float(total), 1e-9), stream, unit
        self.done = 0.0
        self.suffix = ""
        self.start = time.monotonic()
        self._first = None  # (time, done) at the first step's end
        self._drawn = 0.0
        self._tty = hasattr(stream, "isatty") and stream.isatty()

    def advance(self, units: float = 1, suffix: str | None = None) -> None:
        self.reach(self.done + units, suffix)

    def reach(self, done: float, suffix: str | None = None) -> None:
        """Move on to `done` units (never back)."""
        if suffix is not None:
            self.suffix = suffix
        if done <= self.done:
            return
        self.done = min(done, self.total)
        now = time.monotonic()
        if self._first is None:
            self._first = (now, self.done)
        if not self._tty or now - self._drawn >= REDRAW_SECONDS or self.done >= self.total:
            self._drawn = now
            self._draw(now)

    def eta(self, now: float | None = None) -> float | None:
        """Seconds left at the rate since the first step (None until a second step has ended)."""
        now = time.monotonic() if now is None else now
        if self._first is None or self.done <= self._first[1]:
            return None
        rate = (self.done - self._first[1]) / max(now - self._first[0], 1e-9)
        return (self.total - self.done) / rate

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        share = self.done / self.total
        count = f"{_number(self.done)}/{_number(self.total)}{self.unit}"
        if self.done >= self.total:
            timing = f"{_clock(now - self.start)}"
        else:
            left = self.eta(now)
            timing = f"{_clock(now - self.start)} elapsed, " + ("measuring" if left is None else f"{_clock(left)} left")
        suffix = f" - {self.suffix}" if self.suffix else ""
        if self._tty:
            filled = int(WIDTH * share)
            return f"{self.label} [{'#' * filled}{'.' * (WIDTH - filled)}] {count} {timing}{suffix}"
        return f"{self.label}: {share:.0%} ({count}, {timing}){suffix}"

    def _draw(self, now: float) -> None:
        if self._tty:
            self.stream.write("\r\x1b[K" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()

    def finish(self, suffix: str | None = None) -> None:
        """Draw the last line (all done, with `suffix`) and end it."""
        if suffix is not None:
            self.suffix = suffix
        self.done = self.total
        self._drawn = time.monotonic()
        self._draw(self._drawn)
        self.close()

    def close(self) -> None:
        if self._tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()
            self._drawn = 0.0


class _Quiet:
    """The bar of a task when reporting is off: counts nothing, shows nothing."""

    done = 0.0

    def advance(self, units: float = 1, suffix: str | None = None) -> None:
        pass

    def reach(self, done: float, suffix: str | None = None) -> None:
        pass


_QUIET = _Quiet()
_state: contextvars.ContextVar = contextvars.ContextVar("aigc_keras_progress", default=None)


class _Reporting:
    def __init__(self, stream):
        self.stream = stream
        self.open: Bar | None = None


@contextlib.contextmanager
def shown(stream=None):
    """Report every `task` that the block runs, on `stream` (default: stderr)."""
    token = _state.set(_Reporting(stream or sys.stderr))
    try:
        yield
    finally:
        _state.reset(token)


@contextlib.contextmanager
def quiet():
    """Report nothing in the block (training draws its own bar; its previews are not a task of the user's)."""
    token = _state.set(None)
    try:
        yield
    finally:
        _state.reset(token)


def reporting() -> bool:
    """Whether a command asked for progress (library code may then run step by step to report it)."""
    return _state.get() is not None


@contextlib.contextmanager
def task(label: str, total: float, unit: str = ""):
    """A bar for `total` units of work; inside another task, that task's bar (the units must be its)."""
    state = _state.get()
    if state is None:
        yield _QUIET
        return
    if state.open is not None:
        yield state.open
        return
    bar = Bar(label, total, state.stream, unit)
    state.open = bar
    try:
        yield bar
    finally:
        state.open = None
        bar.close()


def _number(value: float) -> str:
    return f"{int(value + 1e-6):,}"  # whole units done (a step of a diffusion sampler is a part of its images)


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"
