"""Samplers: one reverse step x_t -> x_{t_prev} from the network's prediction, like diffusers' schedulers.

A sampler knows its time grid and nothing of the network or of how it was trained: the
pipeline hands it the quantity it names in `prediction` ("eps", the predicted noise of a DDPM
schedule, or "velocity", dx/dt of a flow), evaluated at (x, t). Every sampler has

    timesteps(num_steps) -> (t, t_prev)          the network is evaluated once per row, at t
    initial_state(x)     -> tuple of tensors      what a multistep method carries between steps
    step(pred, t, t_prev, x, noise, state) -> (x_prev, state)
    noised(x0, eps, t)   -> x_t                   the forward process: where editing starts and what
                                                  inpainting keeps at each step
    renoised(x_s, s, t, eps) -> x_t               from a less noisy s to t (RePaint's way back)

The DDPM samplers (ddpm, ddim, dpm++) step on the integer grid 0..T-1 of a `NoiseSchedule`
(alpha_bar at -1 is 1: no noise); `noise` is a standard normal tensor like `x`, used only by
stochastic samplers, and the predicted x_0 is clipped to the data range [-1, 1] before it is used
(as in DDPM's reference code). The flow samplers (euler, heun) integrate dx/dt = v(x, t) on
continuous time from t = 1 (noise) to t = 0 (data).

sqrt(alpha_bar), sqrt(1 - alpha_bar) and lambda are tables computed in float64, never
`1 - alpha_bar` at run time: in a float16 LiteRT file alpha_bar near t = 0 rounds to 1 and the
difference would be 0 (NaN images).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..errors import AigcError, arg
from .config import SAMPLERS
from .schedules import NoiseSchedule


class Sampler:
    """A sampler of a DDPM-trained model: it steps on `schedule`'s integer grid from eps."""

    stochastic = False
    prediction = "eps"

    def __init__(self, schedule: NoiseSchedule):
        self.schedule = schedule
        alpha_bar = np.concatenate([[1.0], schedule.alphas_cumprod])  # index t + 1
        self._alpha_bar = tf.constant(alpha_bar, tf.float32)
        self._sqrt_alpha_bar = tf.constant(np.sqrt(alpha_bar), tf.float32)
        self._sqrt_one_minus = tf.constant(np.sqrt(1.0 - alpha_bar), tf.float32)
        with np.errstate(divide="ignore"):
            self._lambda = tf.constant(0.5 * (np.log(alpha_bar) - np.log(1.0 - alpha_bar)), tf.float32)

    def timesteps(self, num_steps: int):
        """`num_steps` steps spread evenly from T-1 down to 0 (the first step is pure noise)."""
        total = self.schedule.timesteps
        if not 1 <= num_steps <= total:
            raise AigcError(f"{arg('steps')} must be in 1..{total}, got {num_steps}")
        t = np.round(np.linspace(total - 1, 0, num_steps)).astype(np.int32)
        return t, np.append(t[1:], -1).astype(np.int32)

    def initial_state(self, x):
        return ()

    def _table(self, table, t):
        return tf.gather(table, tf.cast(t, tf.int32) + 1)

    def alpha_bar(self, t):
        return self._table(self._alpha_bar, t)

    def coefficients(self, t):
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t))."""
        return self._table(self._sqrt_alpha_bar, t), self._table(self._sqrt_one_minus, t)

    def noised(self, x0, eps, t):
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, the forward process (x_0 itself at t = -1)."""
        sqrt_ab, sqrt_one_minus = self.coefficients(t)
        return sqrt_ab * x0 + sqrt_one_minus * eps

    def renoised(self, x_s, s, t, eps):
        """x_t from x_s at a less noisy s (q(x_t | x_s)): sqrt(alpha_bar_t / alpha_bar_s) x_s + the rest as noise."""
        ratio = self.alpha_bar(t) / self.alpha_bar(s)
        return tf.sqrt(ratio) * x_s + tf.sqrt(tf.maximum(1.0 - ratio, 0.0)) * eps

    def x0_from_eps(self, eps, t, x):
        """x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clipped to [-1, 1]."""
        sqrt_ab, sqrt_one_minus = self.coefficients(t)
        return tf.clip_by_value((x - sqrt_one_minus * eps) / sqrt_ab, -1.0, 1.0)


class DDPMSampler(Sampler):
    """Ancestral sampling from the posterior q(x_{t_prev} | x_t, x_0) (Ho et al., 2020, eq. 6-7).

    With all T steps this is DDPM; with fewer, alpha_t = alpha_bar_t / alpha_bar_prev spans the gap.
    """

    stochastic = True

    def timesteps(self, num_steps: int | None = None):
        return super().timesteps(num_steps or self.schedule.timesteps)

    def step(self, eps, t, t_prev, x, noise=None, state=()):
        alpha_bar, alpha_bar_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        alpha = alpha_bar / alpha_bar_prev
        beta = 1.0 - alpha
        x0 = self.x0_from_eps(eps, t, x)
        mean = (tf.sqrt(alpha_bar_prev) * beta / (1.0 - alpha_bar)) * x0 + \
               (tf.sqrt(alpha) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)) * x
        variance = beta * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar)
        return mean + tf.sqrt(variance) * noise, state


class DDIMSampler(Sampler):
    """DDIM (Song et al., 2021, eq. 12): deterministic with eta = 0, DDPM's variance with eta = 1."""

    def __init__(self, schedule: NoiseSchedule, eta: float = 0.0):
        super().__init__(schedule)
        self.eta = float(eta)
        self.stochastic = self.eta > 0

    def sigma(self, t, t_prev):
        alpha_bar, alpha_bar_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        return self.eta * tf.sqrt((1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * (1.0 - alpha_bar / alpha_bar_prev))

    def step(self, eps, t, t_prev, x, noise=None, state=()):
        (sqrt_ab, sqrt_one_minus), (sqrt_ab_prev, sqrt_one_minus_prev) = self.coefficients(t), self.coefficients(t_prev)
        x0 = self.x0_from_eps(eps, t, x)
        eps = (x - sqrt_ab * x0) / sqrt_one_minus  # consistent with the clipped x_0
        if not self.stochastic:
            return sqrt_ab_prev * x0 + sqrt_one_minus_prev * eps, state
        sigma = self.sigma(t, t_prev)
        direction = tf.sqrt(tf.maximum(sqrt_one_minus_prev**2 - sigma**2, 0.0))
        return sqrt_ab_prev * x0 + direction * eps + sigma * noise, state


class DPMSolverPP2MSampler(Sampler):
    """DPM-Solver++(2M) (Lu et al., 2022, Algorithm 2): a second-order multistep solver in x_0.

    With lambda = log(alpha / sigma), alpha = sqrt(alpha_bar), sigma = sqrt(1 - alpha_bar) and
    h = lambda_prev - lambda_t:
        x_prev = (sigma_prev / sigma_t) x_t - alpha_prev (e^{-h} - 1) D,
        D = (1 + 1/(2r)) x0_t - 1/(2r) x0_last,   r = h_last / h,
    first order (D = x0_t) on the first step; the last step returns x_0 itself.
    The state carries (x0_last, h_last, has_last).
    """

    def initial_state(self, x):
        return (tf.zeros_like(x), tf.zeros([], tf.float32), tf.zeros([], tf.float32))

    def lam(self, t):
        return self._table(self._lambda, t)

    def step(self, eps, t, t_prev, x, noise=None, state=()):
        x0_last, h_last, has_last = state
        x0 = self.x0_from_eps(eps, t, x)
        final = t_prev < 0
        safe_prev = tf.where(final, tf.zeros_like(t_prev), t_prev)  # avoid log(0) at the last step
        (_, sigma_t), (alpha_prev, sigma_prev) = self.coefficients(t), self.coefficients(safe_prev)
        h = self.lam(safe_prev) - self.lam(t)
        half_over_r = 0.5 / tf.where(has_last > 0, h_last / h, 1.0)
        d = has_last * ((1.0 + half_over_r) * x0 - half_over_r * x0_last) + (1.0 - has_last) * x0
        x_prev = (sigma_prev / sigma_t) * x - alpha_prev * (tf.exp(-h) - 1.0) * d
        x_prev = tf.where(final, x0, x_prev)
        return x_prev, (x0, h, tf.ones([], tf.float32))


class EulerSampler:
    """Euler's method on the flow ODE dx/dt = v(x, t) (rectified flow: x_t = (1 - t) x_0 + t eps,
    v = eps - x_0), on `num_steps` equal steps from t = 1 to t = 0: x_prev = x + (t_prev - t) v."""

    stochastic = False
    prediction = "velocity"

    def timesteps(self, num_steps: int):
        if num_steps < 1:
            raise AigcError(f"{arg('steps')} must be >= 1, got {num_steps}")
        t = np.linspace(1.0, 0.0, num_steps + 1).astype(np.float32)
        return t[:-1], t[1:]

    def initial_state(self, x):
        return ()

    def step(self, velocity, t, t_prev, x, noise=None, state=()):
        return x + (t_prev - t) * velocity, state

    @staticmethod
    def noised(x0, eps, t):
        """x_t = (1 - t) x_0 + t eps, the straight path of rectified flow (x_0 itself at t = 0)."""
        return (1.0 - t) * x0 + t * eps

    @staticmethod
    def renoised(x_s, s, t, eps):
        """x_t from x_s at an earlier s < t of the same path: a x_s + sqrt(t^2 - a^2 s^2) eps, a = (1 - t) / (1 - s)."""
        a = (1.0 - t) / (1.0 - s)
        return a * x_s + tf.sqrt(tf.maximum(t * t - (a * s) ** 2, 0.0)) * eps

    @staticmethod
    def x0(velocity, t, x):
        """The current estimate of x_0 = x_t - t v, clipped to the data range."""
        return tf.clip_by_value(x - t * velocity, -1.0, 1.0)


class HeunSampler(EulerSampler):
    """Heun's method (the trapezoid rule, Karras et al. 2022): an Euler step from t to t_prev, then a
    correction with the velocity there, x_prev = x + (t_prev - t) (v(x, t) + v(x_euler, t_prev)) / 2.
    Two network evaluations per step, second order.

    Each step is two rows of `timesteps` (the network runs once per row, like every sampler): a
    predictor row (t_i, t_{i+1}) and a corrector row (t_{i+1}, t_i). The state carries the step's
    start and first velocity, and which row comes next.
    """

    def timesteps(self, num_steps: int):
        t, t_next = super().timesteps(num_steps)
        evaluate = np.stack([t, t_next], axis=1).reshape(-1)
        other = np.stack([t_next, t], axis=1).reshape(-1)
        return evaluate, other

    def initial_state(self, x):
        return (tf.zeros_like(x), tf.zeros_like(x), tf.zeros([], tf.float32))

    def step(self, velocity, t, t_other, x, noise=None, state=()):
        x_start, v_start, correcting = state
        predicted = x + (t_other - t) * velocity  # predictor: from (x, t) to t_other = t_{i+1}
        corrected = x_start + (t - t_other) * (v_start + velocity) / 2.0  # corrector: t = t_{i+1}, t_other = t_i
        x_next = tf.where(correcting > 0, corrected, predicted)
        state = (tf.where(correcting > 0, x_start, x), tf.where(correcting > 0, v_start, velocity), 1.0 - correcting)
        return x_next, state


def make_sampler(name: str, schedule: NoiseSchedule | None = None, eta: float = 0.0):
    if name == "ddpm":
        return DDPMSampler(schedule)
    if name == "ddim":
        return DDIMSampler(schedule, eta)
    if name == "dpm++":
        return DPMSolverPP2MSampler(schedule)
    if name == "euler":
        return EulerSampler()
    if name == "heun":
        return HeunSampler()
    raise ValueError(f"unknown sampler {name!r}: use one of {', '.join(SAMPLERS)}")
