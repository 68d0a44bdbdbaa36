"""Schedules and samplers against NumPy reference formulas (no network)."""

import numpy as np
import pytest
import tensorflow as tf

from aigc_keras.diffusion.samplers import (
    DDIMSampler,
    DDPMSampler,
    DPMSolverPP2MSampler,
    make_sampler,
)
from aigc_keras.diffusion.schedules import NoiseSchedule


def alpha_bar(schedule, t):
    """alpha_bar at integer steps t of `schedule`, with t = -1 meaning no noise (1)."""
    return np.concatenate([[1.0], schedule.alphas_cumprod])[np.asarray(t) + 1]


@pytest.mark.parametrize("name", ["linear", "cosine"])
def test_alpha_bar_is_monotone_with_known_endpoints(name):
    s = NoiseSchedule(name, 1000)
    ab = s.alphas_cumprod
    assert ab.shape == (1000,) and np.all(np.diff(ab) < 0) and np.all(ab > 0)
    np.testing.assert_allclose(ab, np.cumprod(1 - s.betas))
    if name == "linear":
        np.testing.assert_allclose(s.betas[[0, -1]], [1e-4, 0.02])
        np.testing.assert_allclose(ab[0], 0.9999)
        np.testing.assert_allclose(ab[-1], 4.0358e-5, rtol=1e-3)
    else:
        f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
        np.testing.assert_allclose(ab[[0, 499]], [f(1) / f(0), f(500) / f(0)], rtol=1e-9)
        assert ab[-1] < 1e-6 and s.betas.max() <= 0.999


def test_timesteps_run_from_T_minus_1_to_the_clean_end():
    s = NoiseSchedule("linear", 1000)
    t, t_prev = DDIMSampler(s).timesteps(50)
    assert t[0] == 999 and t[-1] == 0 and t_prev[-1] == -1 and len(t) == 50
    assert np.all(np.diff(t) < 0) and np.array_equal(t_prev[:-1], t[1:])
    t, _ = DDPMSampler(s).timesteps()
    assert np.array_equal(t, np.arange(999, -1, -1))
    with pytest.raises(ValueError, match="1..1000"):
        DDIMSampler(s).timesteps(1001)


def _posterior(s, x0, x_t, t, t_prev):
    """DDPM posterior q(x_{t_prev} | x_t, x_0): mean and variance (Ho et al. eq. 7)."""
    ab, ab_prev = alpha_bar(s, t), alpha_bar(s, t_prev)
    beta = 1 - ab / ab_prev
    mean = np.sqrt(ab_prev) * beta / (1 - ab) * x0 + np.sqrt(ab / ab_prev) * (1 - ab_prev) / (1 - ab) * x_t
    return mean, beta * (1 - ab_prev) / (1 - ab)


def test_ddpm_step_is_the_posterior_and_ddim_eta_1_has_its_variance():
    s = NoiseSchedule("linear", 1000)
    rng = np.random.default_rng(0)
    x0 = rng.uniform(-0.8, 0.8, (4, 3)).astype(np.float32)
    eps = rng.standard_normal((4, 3)).astype(np.float32)
    noise = rng.standard_normal((4, 3)).astype(np.float32)
    ddpm, ddim1 = DDPMSampler(s), DDIMSampler(s, eta=1.0)
    for t, t_prev in ((999, 998), (500, 499), (10, 9), (1, 0)):
        x_t = (np.sqrt(alpha_bar(s, t)) * x0 + np.sqrt(1 - alpha_bar(s, t)) * eps).astype(np.float32)
        mean, var = _posterior(s, x0, x_t, t, t_prev)
        got, _ = ddpm.step(tf.constant(eps), tf.constant(t), tf.constant(t_prev), tf.constant(x_t), tf.constant(noise))
        np.testing.assert_allclose(got, mean + np.sqrt(var) * noise, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(ddim1.sigma(t, t_prev).numpy() ** 2, var, rtol=1e-3)
        got, _ = ddim1.step(tf.constant(eps), tf.constant(t), tf.constant(t_prev), tf.constant(x_t), tf.constant(noise))
        np.testing.assert_allclose(got, mean + np.sqrt(var) * noise, rtol=1e-3, atol=1e-4)


def test_ddim_eta_0_is_the_deterministic_update():
    s = NoiseSchedule("cosine", 1000)
    rng = np.random.default_rng(1)
    x0 = rng.uniform(-0.8, 0.8, (2, 5)).astype(np.float32)
    eps = rng.standard_normal((2, 5)).astype(np.float32)
    t, t_prev = 700, 400
    x_t = (np.sqrt(alpha_bar(s, t)) * x0 + np.sqrt(1 - alpha_bar(s, t)) * eps).astype(np.float32)
    sampler = DDIMSampler(s)
    assert not sampler.stochastic
    got, _ = sampler.step(tf.constant(eps), tf.constant(t), tf.constant(t_prev), tf.constant(x_t))
    want = np.sqrt(alpha_bar(s, t_prev)) * x0 + np.sqrt(1 - alpha_bar(s, t_prev)) * eps
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def _gaussian_toy(s, scale):
    """Data x_0 ~ N(0, scale^2): the exact eps(x_t, t) is linear in x_t, and the probability-flow
    ODE maps x_t to x_{t'} = std(t') / std(t) x_t with std(t)^2 = alpha_bar scale^2 + 1 - alpha_bar."""
    def eps(x, t):
        ab = alpha_bar(s, int(t))
        return np.sqrt(1 - ab) / (ab * scale**2 + 1 - ab) * x

    def std(t):
        ab = alpha_bar(s, t)
        return np.sqrt(ab * scale**2 + 1 - ab)

    return eps, std


def _ode_error(name, schedule, steps, scale=0.25):
    """max |x - exact| after following the toy's ODE from t = T-1 to t = 0 with `steps` steps."""
    eps_fn, std = _gaussian_toy(schedule, scale)
    sampler = make_sampler(name, schedule)
    x_T = np.linspace(-2.5, 2.5, 8).astype(np.float32)
    ts, t_prevs = sampler.timesteps(steps)
    x, state = tf.constant(x_T), sampler.initial_state(tf.constant(x_T))
    for t, t_prev in zip(ts[:-1], t_prevs[:-1]):  # stop at t = 0, before the jump to x_0
        x, state = sampler.step(tf.constant(eps_fn(x.numpy(), t), tf.float32), tf.constant(t),
                                tf.constant(t_prev), x, None, state)
    return np.abs(x.numpy() - std(ts[-1]) / std(ts[0]) * x_T).max()


def test_dpm_solver_pp_2m_is_second_order_on_the_closed_form_ode_solution():
    """Halving the step size cuts DPM-Solver++(2M)'s error ~4x (second order), DDIM's ~2x."""
    s = NoiseSchedule("cosine", 1000)
    dpm = [_ode_error("dpm++", s, n) for n in (100, 200)]
    ddim = [_ode_error("ddim", s, n) for n in (100, 200)]
    assert 3.2 < dpm[0] / dpm[1] < 4.8, dpm
    assert 1.6 < ddim[0] / ddim[1] < 2.4, ddim
    assert dpm[1] < 0.005 and dpm[1] < ddim[1] / 3, (dpm, ddim)


def test_dpm_solver_pp_first_step_is_first_order_and_last_step_returns_x0():
    s = NoiseSchedule("linear", 1000)
    sampler = DPMSolverPP2MSampler(s)
    x = tf.constant([[0.3, -0.2]])
    eps = tf.constant([[0.1, 0.4]])
    ddim_x, _ = DDIMSampler(s).step(eps, tf.constant(999), tf.constant(500), x)
    got, state = sampler.step(eps, tf.constant(999), tf.constant(500), x, None, sampler.initial_state(x))
    np.testing.assert_allclose(got, ddim_x, rtol=1e-5, atol=1e-6)  # DPM-Solver++(1) is DDIM
    last, _ = sampler.step(eps, tf.constant(0), tf.constant(-1), x, None, state)
    np.testing.assert_allclose(last, sampler.x0_from_eps(eps, tf.constant(0), x), rtol=1e-6)


def _flow_error(name, steps, scale=0.25):
    """max |x_0 - exact| after integrating a Gaussian toy's exact flow from t = 1 to t = 0.

    With x_0 ~ N(0, scale^2) and x_t = (1 - t) x_0 + t eps, x_t has std s(t) = sqrt((1-t)^2 scale^2 + t^2),
    the exact velocity is v = (t - (1 - t) scale^2) / s(t)^2 x, and the ODE maps x_1 to s(0) / s(1) x_1."""
    def std(t):
        return np.sqrt((1 - t) ** 2 * scale**2 + t**2)

    sampler = make_sampler(name)
    x_1 = np.linspace(-2.5, 2.5, 8).astype(np.float64)
    ts, others = sampler.timesteps(steps)
    x, state = tf.constant(x_1), tuple(tf.cast(s, tf.float64) for s in sampler.initial_state(tf.constant(x_1)))
    for t, other in zip(ts, others):
        v = (t - (1 - t) * scale**2) / std(t) ** 2 * x.numpy()
        x, state = sampler.step(tf.constant(v), tf.constant(t, tf.float64), tf.constant(other, tf.float64), x, None,
                                state)
    return np.abs(x.numpy() - std(0.0) / std(1.0) * x_1).max()


def test_euler_is_first_order_and_heun_second_order_on_a_closed_form_flow():
    euler = [_flow_error("euler", n) for n in (20, 40)]
    heun = [_flow_error("heun", n) for n in (20, 40)]
    assert 1.7 < euler[0] / euler[1] < 2.3, euler
    assert 3.4 < heun[0] / heun[1] < 4.6, heun
    assert heun[1] < euler[1] / 10


def test_heun_evaluates_twice_per_step_and_ends_at_t_0():
    t, other = make_sampler("heun").timesteps(4)
    np.testing.assert_allclose(t, [1, .75, .75, .5, .5, .25, .25, 0])
    np.testing.assert_allclose(other, [.75, 1, .5, .75, .25, .5, 0, .25])
    t, t_prev = make_sampler("euler").timesteps(4)
    np.testing.assert_allclose(t, [1, .75, .5, .25]) and np.testing.assert_allclose(t_prev, [.75, .5, .25, 0])


@pytest.mark.parametrize("objective, timesteps, sampler, expected, distilled", [
    ("flow", 1000, None, ("heun", 12), False),  # 24 network calls
    ("flow", 1000, "euler", ("euler", 25), False),  # 25 calls: each sampler keeps its own default
    ("eps", 1000, None, ("ddim", 50), False),
    ("eps", 20, "dpm++", ("dpm++", 20), False),  # never more steps than T
    ("v", 30, "ddpm", ("ddpm", 30), False),
    ("flow", 1000, None, ("euler", 4), True),  # a reflowed student: straight paths, 4 calls
    ("flow", 1000, "heun", ("heun", 12), True),
])
def test_default_sampler_and_steps_follow_the_objective_and_the_sampler(objective, timesteps, sampler, expected,
                                                                         distilled):
    from types import SimpleNamespace

    from aigc_keras.diffusion.pipeline import resolve

    model = SimpleNamespace(objective=objective, schedule=NoiseSchedule("linear", timesteps), num_classes=0,
                            distilled=distilled)
    sampling = resolve(model, sampler)
    assert (sampling.name, sampling.steps) == expected


@pytest.mark.parametrize("distilled, num_classes, given, expected", [
    (True, 10, None, 1.5),  # a conditional student scores best guided (README's few-step table)
    (True, 10, 1.0, 1.0),
    (True, 0, None, None),
    (False, 10, None, None),  # a teacher samples unguided unless told
])
def test_a_conditional_students_default_guidance_is_the_previews_weight(distilled, num_classes, given, expected):
    from types import SimpleNamespace

    from aigc_keras.diffusion.pipeline import resolve

    model = SimpleNamespace(objective="flow", schedule=NoiseSchedule("linear", 1000), num_classes=num_classes,
                            distilled=distilled)
    assert resolve(model, guidance=given).guidance == expected
