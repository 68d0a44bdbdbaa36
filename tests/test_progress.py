"""Progress lines (`aigc_keras.progress`): one line per step when piped, a bar redrawn in place on a
terminal, a time left that leaves the first step (tracing) out, and nothing at all unless a command
asked for it."""

import io

import pytest

from aigc_keras import progress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def clock(monkeypatch):
    fake = Clock()
    monkeypatch.setattr(progress.time, "monotonic", fake)
    return fake


def test_the_time_left_leaves_the_first_step_out(clock):
    bar = progress.Bar("epoch 1/1", 10, io.StringIO(), " steps")
    clock.now = 10.0  # the first step: 10 s of tracing
    bar.advance()
    assert bar.eta() is None and "measuring" in bar.line()
    clock.now, _ = 11.0, bar.advance()
    clock.now, _ = 12.0, bar.advance()
    # 1 s per step after the first, 7 steps to go; counting the first would say (12 / 3) * 7 = 28 s
    assert bar.eta() == pytest.approx(7.0)
    assert bar.line().endswith("3/10 steps, 0:12 elapsed, 0:07 left)")


def test_piped_each_step_is_one_line_and_nothing_shows_unless_asked(clock):
    with progress.task("quiet", 3) as bar:  # no command asked: the library stays silent
        bar.advance()
    stream = io.StringIO()
    with progress.shown(stream):
        with progress.task("generating", 4, " images") as bar:
            with progress.task("inner", 99) as inner:  # a task inside a task counts in the outer bar
                assert inner is bar
                for _ in range(4):
                    clock.now += 1
                    inner.advance()
            bar.reach(2)  # never back
        with progress.quiet(), progress.task("preview", 1) as hidden:
            hidden.advance()
    lines = stream.getvalue().splitlines()
    assert [line.split(" (")[0] for line in lines] == ["generating: 25%", "generating: 50%", "generating: 75%",
                                                       "generating: 100%"]
    assert lines[-1] == "generating: 100% (4/4 images, 0:04)"


def test_on_a_terminal_the_bar_redraws_one_line(clock):
    stream = Terminal()
    with progress.shown(stream), progress.task("ddim x5", 4, " images") as bar:
        for _ in range(5):
            clock.now += 1
            bar.advance(0.8)  # a sampler step is a fifth of each image
    text = stream.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n") and text.count("\r") == 5
    last = text.rsplit("\r\x1b[K", 1)[1]
    assert last == "ddim x5 [########################] 4/4 images 0:05\n"
