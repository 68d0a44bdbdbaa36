"""Noise schedules: the forward process q(x_t | x_0) of DDPM (Ho et al., 2020).

A schedule is a small NumPy object (float64, so the tests can check it against closed forms);
networks, samplers and exports read `alphas_cumprod` from it as constants.
"""

from __future__ import annotations

import numpy as np

from .config import SCHEDULES


class NoiseSchedule:
    """`betas` [T] and `alphas_cumprod` (alpha_bar) [T] of a T-step forward process.

    linear: betas from 1e-4 to 0.02 scaled to T (Ho et al.); cosine: alpha_bar(t) =
    cos^2((t/T + s) / (1 + s) * pi/2) normalised at t=0, betas clipped at 0.999 (Nichol &
    Dhariwal, 2021).
    """

    def __init__(self, name: str = "linear", timesteps: int = 1000):
        if name not in SCHEDULES:
            raise ValueError(f"unknown schedule {name!r}: use one of {', '.join(SCHEDULES)}")
        self.name = name
        self.timesteps = int(timesteps)
        t = self.timesteps
        if name == "linear":
            scale = 1000.0 / t
            self.betas = np.linspace(scale * 1e-4, scale * 0.02, t, dtype=np.float64)
        else:
            s = 0.008
            f = np.cos((np.arange(t + 1, dtype=np.float64) / t + s) / (1 + s) * np.pi / 2) ** 2
            self.betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, 0.999)
        self.alphas_cumprod = np.cumprod(1.0 - self.betas)
