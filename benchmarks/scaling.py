"""Multi-worker scaling: the same training in 1 process and in N local worker processes
(MultiWorkerMirroredStrategy over loopback), per family. Prints a Markdown table.

    python benchmarks/scaling.py                    # gan, diffusion, lstm; 2 workers
    python benchmarks/scaling.py --families gan --steps 100

Each run trains 2 epochs of `--steps` steps with the family's default model on its embedded data
and the same global batch; the time per step is taken from the second epoch (no tracing). On a
machine whose cores the workers share, N processes cannot be faster than one: the difference
per step is the cost of running the step as a collective across processes (all-reduce of the
gradients over gRPC, synchronisation), i.e. the communication overhead, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from timing import machine  # noqa: E402

from aigc_keras.families import config_class  # noqa: E402
from aigc_keras.training.local_cluster import run_workers  # noqa: E402

UNITS = {"gan": "img", "diffusion": "img", "lstm": "tokens", "classifier": "img"}


def seconds_per_step(history_file: Path, steps: int) -> float:
    return json.loads(history_file.read_text())[-1]["seconds"] / steps


def run(family: str, processes: int, steps: int, root: Path) -> float:
    model_dir = root / f"{family}-{processes}"
    args = ["train", family, "--epochs", "2", "--steps-per-epoch", str(steps), "--model-dir", str(model_dir),
            "--strategy", "multiworker" if processes > 1 else "default"]
    results = run_workers(args, root, n=processes, timeout=1800) if processes > 1 else None
    if processes == 1:
        from aigc_keras.cli import main

        try:
            main(args)
        except SystemExit as e:
            if e.code:
                raise RuntimeError(f"{family}: single-process run failed") from None
    elif any(code for code, _ in results):
        raise RuntimeError(f"{family}: {processes}-worker run failed:\n{results[0][1][-2000:]}")
    return seconds_per_step(model_dir / "history.json", steps)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["gan", "diffusion", "lstm"], choices=list(UNITS))
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60, help="steps per epoch (the second epoch is timed)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for family in args.families:
            config = config_class(family)()
            per_step = config.batch_size * (getattr(config, "seq_len", 0) or 1) * (getattr(config, "n_critic", 1) or 1)
            one = run(family, 1, args.steps, Path(tmp))
            many = run(family, args.workers, args.steps, Path(tmp))
            rows.append((family, config.batch_size, one, many, per_step))
    print(f"Multi-worker scaling on {machine()}: 1 process against {args.workers} worker processes on this "
          f"one machine (loopback), same global batch, {args.steps} timed steps.\n")
    print("The workers share the same CPU cores, so this measures the communication overhead of "
          "multi-worker training, not a speed-up.\n")
    print(f"| family | global batch | 1 process: s/step | {args.workers} workers: s/step | "
          f"throughput 1 / {args.workers} | overhead per step |")
    print("|---|---|---|---|---|---|")
    for family, batch, one, many, per_step in rows:
        unit = UNITS[family]
        print(f"| {family} | {batch} | {one:.3f} | {many:.3f} | {per_step / one:,.0f} / {per_step / many:,.0f} "
              f"{unit}/s | {1000 * (many - one):+.0f} ms ({many / one:.2f}x) |")


if __name__ == "__main__":
    main()
