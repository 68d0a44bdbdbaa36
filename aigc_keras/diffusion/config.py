"""Every option of the diffusion family, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..config import ImageTrainConfig, option
from ..errors import AigcError
from .schedules import SCHEDULES

OBJECTIVES = ("eps", "v", "flow")
SAMPLERS = ("ddpm", "ddim", "dpm++", "euler", "heun")
FLOW_SAMPLERS = ("euler", "heun")  # the others step on a DDPM schedule
EXPORT_SAMPLERS = ("ddim", "dpm++", "euler", "heun")  # deterministic: the exported graph needs no random op
TIME_SAMPLING = ("uniform", "logit-normal")
LOSS_WEIGHTING = ("none", "min-snr")
GUIDANCE = 3.0  # classifier-free guidance of the previews and KID estimates of a conditional model


def default_sampler(objective: str) -> tuple[str, int]:
    """(sampler, steps) that `sample`, `evaluate` and `export` use when none is given."""
    return ("euler", 25) if objective == "flow" else ("ddim", 50)


def check_sampler(objective: str, sampler: str) -> None:
    """A one-line error when `sampler` cannot sample a model trained with `objective`."""
    if (sampler in FLOW_SAMPLERS) != (objective == "flow"):
        kind = "a flow (--objective flow)" if sampler in FLOW_SAMPLERS else "a DDPM (--objective eps or v)"
        fits = FLOW_SAMPLERS if objective == "flow" else tuple(s for s in SAMPLERS if s not in FLOW_SAMPLERS)
        raise AigcError(f"--sampler {sampler} needs {kind} model; this one was trained with --objective "
                        f"{objective}: use {' or '.join(fits)}")


@dataclasses.dataclass
class DiffusionConfig(ImageTrainConfig):
    """DDPM training options; defaults train recognisable MNIST digits in under 30 CPU minutes."""

    family: ClassVar[str] = "diffusion"

    epochs: int = option(3, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(64, "global batch size, split across replicas", min=1)
    objective: str = option(
        "eps", "eps or v: DDPM, the network predicts the noise or v; flow: rectified flow, it predicts the "
        "velocity eps - x_0 on continuous t in [0, 1]", choices=OBJECTIVES)
    schedule: str = option("linear", "DDPM noise schedule: linear or cosine", choices=SCHEDULES)
    timesteps: int = option(1000, "DDPM steps T of the forward process", min=2)
    time_sampling: str = option("uniform", "flow: how training draws t (logit-normal: SD3's, more t near 0.5)",
                                choices=TIME_SAMPLING)
    loss_weighting: str = option("none", "DDPM: min-snr weighs each t by min(SNR, gamma) (Hang et al. 2023)",
                                 choices=LOSS_WEIGHTING)
    min_snr_gamma: float = option(5.0, "gamma of --loss-weighting min-snr", min=0.0)
    patch: int = option(1, "space-to-depth factor: 2 turns 28x28x1 into 14x14x4, so no level runs at full "
                           "resolution", min=1, max=4)
    base_filters: int = option(16, "U-Net channels at its first resolution (twice that below)", min=8)
    levels: int = option(3, "U-Net resolutions (28 -> 14 -> 7 with 3)", min=1, max=6)
    res_blocks: int = option(1, "residual blocks per resolution", min=1)
    attention: bool = option(True, "self-attention at the lowest resolution")
    conditional: bool = option(False, "class-conditional model for classifier-free guidance (needs labels)")
    label_dropout: float = option(0.1, "probability of training on the null class (with --conditional)",
                                  min=0.0, max=1.0)
    ema: bool = option(True, "keep an EMA copy of the network for sampling and export")
    ema_momentum: float = option(0.999, "decay of the network EMA (with --ema)", min=0.0, max=0.99999)
    learning_rate: float = option(1e-3, "Adam learning rate (the peak, with --lr-schedule cosine)", min=0.0,
                                  resumable=True)

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> "DiffusionConfig":
        if "prediction" in values:  # models trained before --objective called it --prediction
            values = {**{k: v for k, v in values.items() if k != "prediction"}, "objective": values["prediction"]}
        return super().from_dict(values, source)
