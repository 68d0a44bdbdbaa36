"""Text recipes at one CPU budget: each variant of the default trains for the same wall-clock minutes
on Tiny Shakespeare, with its learning-rate schedule sized to end there, and is scored by validation
bits per character with the context carried (`aigc-keras evaluate`'s measure).

The schedule is sized from a timed probe of the variant's step (a short run of its own), so that a
faster recipe gets more optimizer steps and a slower one fewer: what the budget buys is the comparison.
This CPU's step times drift by a fifth between runs, so the schedule is planned 10 % longer than the
probe says and the budget stops it: a run ends either at the budget, at most a tenth before its
schedule's end (the cosine rate then at under 3 % of its peak), or at its schedule's end, and the table
gives the minutes it trained.

    python benchmarks/text_budget.py                                  # every variant, 15 minutes
    python benchmarks/text_budget.py --variants default transformer --minutes 3

Saves results.json and table.md in --out (merging rows of earlier runs at the same budget).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import keras

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_per_minute import Budget, text_measure  # noqa: E402
from timing import machine  # noqa: E402

from aigc_keras.data.text import load_text  # noqa: E402
from aigc_keras.text.config import TextConfig  # noqa: E402
from aigc_keras.training.runner import train  # noqa: E402

MEASURE_EPOCHS = 4  # the schedule's steps are split into this many epochs (history rows)
PLAN_MARGIN = 1.1  # schedule steps over what the probe's step time fits in the budget
VARIANTS = {
    "default": {},
    "dropout 0": {"dropout": 0.0},
    "dropout 0.2": {"dropout": 0.2},
    "batch 128": {"batch_size": 128},
    "context 50": {"seq_len": 50},
    "context 200": {"seq_len": 200},
    "transformer": {"arch": "transformer", "units": 192, "layers": 2, "heads": 4, "seq_len": 128,
                    "learning_rate": 2e-3},
}


class StepTimes(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        float(next(iter(logs.values())))  # wait for the step
        self.times.append(time.perf_counter() - self._start)


def step_seconds(config: TextConfig, steps: int = 50, warmup: int = 10) -> float:
    """Median seconds of one training step of `config`, from a short run in a temporary folder."""
    clock = StepTimes()
    probe = dataclasses.replace(config, epochs=1, steps_per_epoch=warmup + steps, warmup_steps=0)
    with tempfile.TemporaryDirectory() as folder:
        train(probe, Path(folder) / "probe", callbacks=[clock], verbose=0, log=lambda _: None)
    return statistics.median(clock.times[warmup:])


def table(report: dict) -> str:
    lines = [f"Machine: {report['machine']}. Each variant of the default trains {report['minutes']:g} minutes "
             "(its schedule sized from its timed step); validation bits per character with the context carried.",
             "", "| variant | options | s a step (probe) | steps planned | minutes trained | bits/char |",
             "|---|---|---|---|---|---|"]
    for name, row in report["runs"].items():
        options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in row["options"].items()) or "(none)"
        lines.append(f"| {name} | `{options}` | {row['step_seconds']:.3f} | {row['steps']:,} | {row['minutes']:.1f} "
                     f"| {row['bpc']:.3f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=15.0, help="training minutes per variant")
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    parser.add_argument("--out", default="benchmarks/results/text_budget")
    args = parser.parse_args()

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {"machine": machine(), "minutes": args.minutes, "runs": {}}
    if (out / "results.json").exists():
        earlier = json.loads((out / "results.json").read_text())
        if earlier["minutes"] == args.minutes:
            report["runs"] = earlier["runs"]
    measure = text_measure(load_text(TextConfig.data).split(TextConfig.validation_split)[1])  # no variant sets these
    for name in args.variants:
        options = VARIANTS[name]
        config = TextConfig(**options)
        seconds = step_seconds(config)
        epoch_steps = max(int(PLAN_MARGIN * args.minutes * 60 / seconds), MEASURE_EPOCHS) // MEASURE_EPOCHS
        planned = MEASURE_EPOCHS * epoch_steps
        config = dataclasses.replace(config, epochs=MEASURE_EPOCHS, steps_per_epoch=epoch_steps)
        print(f"{name}: {seconds:.3f} s a step, {planned:,} steps", flush=True)
        budget = Budget([args.minutes * 60], measure)
        train(config, out / name.replace(" ", "-"), overwrite=True, callbacks=[budget], verbose=0,
              log=lambda _: None)
        row = budget.rows[-1]
        report["runs"][name] = {"options": options, "step_seconds": round(seconds, 4), "steps": planned,
                                "minutes": row["minutes"], "bpc": row["bpc"],
                                "run_finished": row.get("run_finished", False)}
        print(f"  {report['runs'][name]}", flush=True)
        (out / "results.json").write_text(json.dumps(report, indent=2) + "\n")
    text = table(report)
    (out / "table.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
