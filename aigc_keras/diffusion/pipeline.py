"""The sampling pipeline: a trained denoiser + a sampler -> images.

`resolve` turns what a user asks for (a sampler's name, its steps, eta, guidance) into a checked
`Sampling`, once. `generate_fn` builds the whole N-step loop as one graph (a `tf.while_loop`), which
is what `DiffusionModel.generate` runs (through `compiled_generate`, traced once per model and
sampling) and what the LiteRT export embeds; `edit_fn` is the same loop started from a given image
(image-to-image, inpainting), `DiffusionModel.edit`'s graph and the export's `edit`.
`generate_steps` runs the same step function once per step from Python, for a progress bar and for
GIF frames.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np
import tensorflow as tf

from ..errors import AigcError, arg
from ..limits import check_fits
from .config import DEFAULT_STEPS, DISTILLED_STEPS, GUIDANCE, check_eta, check_sampler, default_sampler
from .samplers import Sampler, make_sampler

STEP_BYTES = 64  # the time grid's tables per sampler step (several float64 and float32 copies)


@dataclasses.dataclass(frozen=True)
class Sampling:
    """A checked choice of sampler for one model: `method` steps on its grid of `steps` steps."""

    name: str
    method: Sampler
    steps: int
    eta: float
    guidance: float | None

    @property
    def evaluations(self) -> int:
        """Network evaluations of the whole loop (rows of the grid): twice the steps for Heun."""
        return evaluations(self.method, self.steps)


def resolve(model, sampler: str | None = None, steps: int | None = None, eta: float | None = None,
            guidance: float | None = None) -> Sampling:
    """The `Sampling` of `model` for a sampler's name (default: its objective's, Euler for a distilled
    student), its steps (default: the sampler's, at most T; a student's `DISTILLED_STEPS`), DDIM's `eta`
    and the guidance weight (default: none; a conditional student's `GUIDANCE`, with which it scores best),
    each checked in one line."""
    if guidance is not None and not model.num_classes:
        raise AigcError(f"{arg('guidance')} needs a conditional model (train with {arg('conditional')})")
    if guidance is None and model.distilled and model.num_classes:
        guidance = GUIDANCE
    name = sampler or default_sampler(model.objective, model.distilled)
    check_eta(name, eta)
    check_sampler(model.objective, name)
    if name == "ddpm":
        steps = steps or model.schedule.timesteps
    elif not steps and model.distilled and name == "euler":
        steps = DISTILLED_STEPS
    elif not steps:
        steps = DEFAULT_STEPS[name] if model.objective == "flow" else min(DEFAULT_STEPS[name], model.schedule.timesteps)
    check_fits(arg("steps"), steps, STEP_BYTES, "for the sampler's time grid")
    method = make_sampler(name, model.schedule, eta or 0.0)
    method.timesteps(steps)  # refuses steps outside the grid
    return Sampling(name, method, steps, float(eta or 0.0), guidance)


def step_fn(model, sampler: Sampler):
    """One row of the sampler's grid: (x_t, t, t_prev, noise, state, labels, guidance) -> (x_prev, state).
    The model gives the quantity the sampler asks for (`sampler.prediction`)."""

    def step(x, t, t_prev, noise, state, labels=None, guidance=None):
        prediction = model.model_output(sampler.prediction, x, t, labels, guidance)
        return sampler.step(prediction, t, t_prev, x, noise, state)

    return step


def evaluations(sampler: Sampler, num_steps: int) -> int:
    """Network evaluations (rows of the grid) of `num_steps` sampler steps: twice the steps for Heun."""
    return len(sampler.timesteps(num_steps)[0])


def _step_noise(x, seed, i):
    """Fresh noise for step i of a stochastic sampler, reproducible from the seed."""
    return tf.random.stateless_normal(tf.shape(x), seed=tf.stack([tf.cast(seed, tf.int32), i]))


def generate_fn(model, sampler: Sampler, num_steps: int) -> Callable:
    """fn(noise, labels=None, guidance=None, seed=0) -> x_0, all `num_steps` steps in one graph.

    Deterministic samplers use no random op (so the graph converts to LiteRT builtins); the
    stochastic ones draw each step's noise from `seed`.
    """
    ts, t_prevs = (tf.constant(a) for a in sampler.timesteps(num_steps))
    rows = int(ts.shape[0])
    step = step_fn(model, sampler)

    def generate(noise, labels=None, guidance=None, seed=0):
        def body(i, x, state):
            fresh = _step_noise(x, seed, i) if sampler.stochastic else None
            # tf.gather, not ts[i]: LiteRT's CompiledModel API cannot run a slice at a loop index.
            x, state = step(x, tf.gather(ts, i), tf.gather(t_prevs, i), fresh, state, labels, guidance)
            return i + 1, x, state

        state = sampler.initial_state(noise)
        _, x, _ = tf.while_loop(lambda i, x, state: i < rows, body, (tf.constant(0), noise, state),
                                maximum_iterations=rows)
        return x

    return generate


def edit_fn(model, sampler: Sampler, num_steps: int, resample: int = 1) -> Callable:
    """fn(image, mask, noise, strength, labels=None, guidance=None, seed=0) -> x_0: image-to-image
    (SDEdit, Meng et al. 2022) and inpainting (the replacement method) in one graph.

    `image` is in [-1, 1]; `mask` is 1 where to generate and 0 where to keep (it broadcasts over the
    channels). `strength` in [0, 1] runs the last round(strength * num_steps) steps of `generate_fn`'s
    grid, from `image` noised to where they start: at 1 from pure `noise`, exactly as `generate_fn`,
    and at 0 nothing runs and `image` comes back. After every row the kept region is set to `image`
    noised (with the same `noise`) to the time the row reached, and at the end to `image` itself.
    A fixed number of rows runs, the skipped ones as no-ops, so the loop has one size for every strength.

    With `resample` > 1 (RePaint, Lugmayr et al. 2022) every step runs `resample` times: after a pass,
    its result is noised back to the step's start with fresh noise drawn from `seed` (the sampler's
    state as it was there) and denoised again, so that the generated part fits the kept one. That
    draws random numbers in the graph, so the export's `edit` has `resample` 1.
    """
    ts, t_prevs = sampler.timesteps(num_steps)
    rows = len(ts)
    per_step = rows // num_steps  # network calls per step: 2 for Heun
    starts = np.append(ts[::per_step], min(ts.min(), t_prevs.min())).astype(ts.dtype)  # each step's time, the end
    arrivals = np.repeat(starts[1:], per_step)  # where x is after each row
    passes = np.arange(rows * resample, dtype=np.int32)  # step k's rows, `resample` times, then k + 1's
    pass_of = passes // per_step % resample
    row_of = passes // (per_step * resample) * per_step + passes % per_step
    again = (pass_of > 0) & (passes % per_step == 0)  # the first row of a repeated pass: noise back first
    step_of = row_of // per_step
    ts, t_prevs, starts, arrivals, row_of, again, step_of = (
        tf.constant(a) for a in (ts, t_prevs, starts, arrivals, row_of, again, step_of))
    step = step_fn(model, sampler)

    def edit(image, mask, noise, strength, labels=None, guidance=None, seed=0):
        runs = tf.cast(tf.round(tf.clip_by_value(strength, 0.0, 1.0) * num_steps), tf.int32)
        first = (num_steps - runs) * per_step * resample  # the rows before it are skipped
        start = sampler.noised(image, noise, tf.gather(starts, num_steps - runs))
        x = tf.where(runs == num_steps, noise, start)

        def body(j, x, state, kept):
            i = tf.gather(row_of, j)
            running = j >= first
            if resample > 1:
                k = tf.gather(step_of, j)
                back = tf.gather(again, j) & running
                noised_back = sampler.renoised(x, tf.gather(starts, k + 1), tf.gather(starts, k),
                                               _step_noise(x, seed, rows * resample + j))
                x = tf.where(back, noised_back, x)
                state = tf.nest.map_structure(lambda then, now: tf.where(back, then, now), kept, state)
                opens = tf.equal(j % (per_step * resample), 0)  # the step's first pass begins: keep its state
                kept = tf.nest.map_structure(lambda now, then: tf.where(opens, now, then), state, kept)
            fresh = _step_noise(x, seed, i) if sampler.stochastic else None
            x_next, state_next = step(x, tf.gather(ts, i), tf.gather(t_prevs, i), fresh, state, labels, guidance)
            x_next = mask * x_next + (1.0 - mask) * sampler.noised(image, noise, tf.gather(arrivals, i))
            state = tf.nest.map_structure(lambda new, old: tf.where(running, new, old), state_next, state)
            return j + 1, tf.where(running, x_next, x), state, kept

        initial = sampler.initial_state(noise)
        _, x, _, _ = tf.while_loop(lambda j, *_: j < rows * resample, body, (tf.constant(0), x, initial, initial),
                                   maximum_iterations=rows * resample)
        return mask * x + (1.0 - mask) * image

    return edit


def compiled_generate(model, sampling: Sampling) -> Callable:
    """`generate_fn` as one `tf.function`, kept with the model for its sampler, steps and eta, so that
    sampling again (each epoch's preview, `evaluate`'s chunks) reuses the traced graph. Call it with
    tensors only: a Python number would trace the graph again for each value."""
    return _compiled(model, sampling, generate_fn)


def compiled_edit(model, sampling: Sampling, resample: int = 1) -> Callable:
    """`edit_fn` as one `tf.function`, kept with the model as `compiled_generate` keeps its loop."""
    return _compiled(model, sampling, edit_fn, resample)


def _compiled(model, sampling: Sampling, loop_fn, *options) -> Callable:
    cache = model.__dict__.setdefault("_compiled_loops", {})  # plain attribute: not a Keras-tracked one
    key = (loop_fn.__name__, sampling.name, sampling.steps, sampling.eta, *options)
    if key not in cache:
        cache[key] = tf.function(loop_fn(model, sampling.method, sampling.steps, *options), reduce_retracing=True)
    return cache[key]


def generate_steps(model, sampler: Sampler, num_steps: int, noise, labels=None,
                   guidance=None, seed: int = 0, on_step: Callable[[int, np.ndarray], None] | None = None):
    """The same computation as `generate_fn`, one compiled step per Python iteration.

    `on_step(i, x)` sees x after step i (x_{t_prev}), for progress bars and animation frames.
    """
    ts, t_prevs = sampler.timesteps(num_steps)
    compiled = tf.function(step_fn(model, sampler))
    x = tf.convert_to_tensor(noise)
    state = sampler.initial_state(x)
    for i in range(len(ts)):
        fresh = _step_noise(x, seed, tf.constant(i)) if sampler.stochastic else None
        x, state = compiled(x, tf.constant(ts[i]), tf.constant(t_prevs[i]), fresh, state, labels, guidance)
        if on_step is not None:
            on_step(i, x.numpy())
    return x
