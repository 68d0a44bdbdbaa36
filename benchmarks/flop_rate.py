"""Training against the machine's limit: each family's default training step, its floating-point
operations (counted) divided by its measured time, against this CPU's peak (a large float32 matmul in
the same process), and what `steps_per_execution` and the batch size change in it.

The count is TensorFlow's cost registry (the profiler's) over the ops of the traced `train_step` that its
outputs need (every Conv2D, its gradients, MatMul, BatchMatMul and the elementwise ops that register a
cost; a gradient no update reads is left out, as TensorFlow prunes it), plus, for LSTM layers, whose loop body the
profiler does not see, 3 x 2 x 4 x units x (inputs + units) a token and a layer (forward, and a backward
pass of twice that). The time is that of `fit` over --steps steps less that of a fit of --steps / 2, so
that neither tracing nor `fit`'s setup counts, the median of --repeats such timings.

    python benchmarks/flop_rate.py                                 # every family's default
    python benchmarks/flop_rate.py --families diffusion --steps 40

Prints a table and saves results.json and table.md in --out.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_data import save_rows  # noqa: E402
from timing import machine, median_ms  # noqa: E402

from aigc_keras.families import config_class, get_family  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FAMILIES = ("gan", "diffusion", "vae", "text")
VARIANTS = {"default": {}, "steps_per_execution 8": {"steps_per_execution": 8}, "batch x2": {"batch": 2}}


def peak_gflops() -> float:
    """The best float32 matmul rate of n x n by n x n, n in 1024, 2048, 4096, in GFLOP/s."""
    best = 0.0
    for n in (1024, 2048, 4096):
        a = tf.random.normal([n, n])
        matmul = tf.function(lambda: tf.linalg.matmul(a, a))
        best = max(best, 2 * n**3 / (median_ms(lambda: matmul().numpy(), repeats=5) / 1000) / 1e9)
    return best


def build(name: str, batch_factor: int):
    """(model, dataset) of family `name`'s default run, at `batch_factor` times its batch."""
    config_type = config_class(name)
    config = config_type(strategy="default", batch_size=config_type().batch_size * batch_factor)
    family = get_family(name)
    keras.utils.set_random_seed(0)
    data = family.load_data(config)
    model = family.build(config, family.data_info(config, data))
    return model, family.dataset(config, data, config.batch_size)[0]


def step_flops(model, dataset) -> float:
    """Floating-point operations of one `train_step` on a batch of `dataset` (see the module)."""
    batch = next(iter(dataset))
    spec = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), batch)
    graph = tf.function(model.train_step).get_concrete_function(spec).graph
    counted = sum(_op_flops(graph, op) for op in _run_ops(graph))
    tokens = int(tf.size(tf.nest.flatten(batch)[0]))  # windows x positions of a text batch
    lstm = sum(3 * 2 * 4 * layer.units * (layer.cell.kernel.shape[0] + layer.units) * tokens
               for layer in _layers(model) if isinstance(layer, keras.layers.LSTM))
    return float(counted + lstm)


def _run_ops(graph):
    """The ops of `graph` that its outputs and side effects need: what TensorFlow runs once its graph
    optimizer has pruned the rest (e.g. a gradient's second half that no one reads: the filter gradients
    of a GAN's discriminator in the generator's update)."""
    pending = [t.op for t in graph.outputs] + list(graph.control_outputs)
    seen = {op.name: op for op in pending}
    while pending:
        op = pending.pop()
        for inner in [t.op for t in op.inputs] + list(op.control_inputs):
            if inner.name not in seen:
                seen[inner.name] = inner
                pending.append(inner)
    return seen.values()


def _op_flops(graph, op) -> int:
    """The floating-point operations TensorFlow's cost registry gives `op` (the profiler's count), 0 where
    none is registered; a batch matmul's counted here (2 x outputs x the inner dimension)."""
    from tensorflow.python.framework import ops as tf_ops  # the registry the profiler reads; no public name

    if op.type.startswith("BatchMatMul"):
        # TensorFlow's cost function (tensorflow/tensorflow#30575) reads the inner dimension from an attribute
        # BatchMatMul does not have (transpose_a; its own is adj_x), so it is wrong for every adjoint product:
        # a GAN's discriminator gradient [32, 1, 3136]^T [32, 1, 1] counted 629 MFLOP instead of 0.2.
        a, out = op.inputs[0].shape, op.outputs[0].shape
        return 2 * out.num_elements() * int(a[-2] if op.get_attr("adj_x") else a[-1])
    try:
        return tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value or 0
    except ValueError:  # a shape the cost function needs is unknown
        return 0


def _layers(layer):
    """`layer` and every layer inside it (a model's networks, and theirs)."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from _layers(inner)


def seconds_per_step(model, dataset, steps: int, per_execution: int, repeats: int) -> float:
    model.steps_per_execution = per_execution  # read when `fit` builds its train function
    model.train_function = None

    def run(n):
        start = time.perf_counter()
        model.fit(dataset, epochs=1, steps_per_epoch=n, verbose=0, shuffle=False)
        return time.perf_counter() - start

    run(per_execution)  # trace
    half = max(steps // 2 // per_execution * per_execution, per_execution)
    full = max(steps // per_execution * per_execution, 2 * half)
    return statistics.median((run(full) - run(half)) / (full - half) for _ in range(repeats))


def table(rows: list[dict]) -> str:
    lines = ["| family | variant | batch | GFLOP a step | s a step | GFLOP/s | of peak |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['variant']} | {r['batch']} | {r['gflop_per_step']:.2f} | "
                     f"{r['seconds_per_step']:.3f} | {r['gflops']:.1f} | {r['of_peak']:.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=60, help="timed steps a variant (less the first half)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings a variant, of which the median counts (one varied by half on this CPU)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "flop_rate")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    peak = peak_gflops()
    print(f"peak: {peak:.1f} GFLOP/s (float32 matmul) on {machine()}", flush=True)
    rows = []
    for name in args.families:
        for variant in args.variants:
            options = VARIANTS[variant]
            model, dataset = build(name, options.get("batch", 1))
            model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)  # builds every optimizer
            flops = step_flops(model, dataset)
            seconds = seconds_per_step(model, dataset, args.steps, options.get("steps_per_execution", 1),
                                       args.repeats)
            batch = int(tf.nest.flatten(next(iter(dataset)))[0].shape[0])
            rows.append({"family": name, "variant": variant, "batch": batch,
                         "gflop_per_step": flops / 1e9, "seconds_per_step": seconds, "gflops": flops / seconds / 1e9,
                         "of_peak": flops / seconds / 1e9 / peak, "peak_gflops": peak, "machine": machine()})
            save_rows(args.out, rows, table)
    (args.out / "peak.json").write_text(json.dumps({"peak_gflops": peak, "machine": machine()}) + "\n")


if __name__ == "__main__":
    main()
