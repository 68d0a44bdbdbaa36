"""Timing helpers the benchmark scripts share: steady-state `fit` against a plain loop, latency."""

from __future__ import annotations

import os
import platform
import statistics
import time
from pathlib import Path

import keras
import tensorflow as tf


class _StepClock(keras.callbacks.Callback):
    """Times `steps` training steps inside one `fit` call, after `warmup` steps.

    `fit`'s per-call setup (iterator, callbacks) is paid once per epoch of ~1,000-2,000 steps in
    real training, so it is left out, as the plain loop's tracing is.
    """

    def __init__(self, warmup, steps):
        super().__init__()
        self.marks = {warmup - 1: None, warmup + steps - 1: None}

    def on_train_batch_end(self, batch, logs=None):
        if batch in self.marks:
            float(next(iter(logs.values())))  # wait for the step
            self.marks[batch] = time.perf_counter()


def time_fit(model, dataset, steps, warmup=5):
    clock = _StepClock(warmup, steps)
    model.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, shuffle=False, callbacks=[clock])
    start, end = clock.marks.values()
    return end - start


def time_plain(step, iterator, steps):
    """Seconds for `steps` calls of `step(batch)`, which returns a tensor, on batches from `iterator`."""
    start = time.perf_counter()
    for _ in range(steps):
        out = step(next(iterator))
    float(tf.reduce_sum(out))  # wait for the last step
    return time.perf_counter() - start


def fit_against_plain(model, dataset, step, steps, repeats):
    """(fit img/s basis: median seconds, plain median seconds, median of paired plain/fit ratios).

    Measured in pairs of alternating order, because this CPU's speed drifts.
    """
    iterator = iter(dataset)
    time_fit(model, dataset, 10)
    time_plain(step, iterator, 10)
    fit_times, plain_times = [], []
    for repeat in range(repeats):
        pair = [lambda: fit_times.append(time_fit(model, dataset, steps)),
                lambda: plain_times.append(time_plain(step, iterator, steps))]
        for measure in pair[::1 if repeat % 2 == 0 else -1]:
            measure()
    ratio = statistics.median(p / f for f, p in zip(fit_times, plain_times))
    return statistics.median(fit_times), statistics.median(plain_times), ratio


def median_ms(fn, repeats=20):
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file()) / 1e6


def machine() -> str:
    """The CPU's model (as lscpu names it), its cores, and the TensorFlow and Keras versions."""
    model = platform.processor() or platform.machine()
    try:
        model = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} CPU cores, TF {tf.__version__}, Keras {keras.__version__}"
