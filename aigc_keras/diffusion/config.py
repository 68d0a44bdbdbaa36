"""Every option of the diffusion family, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..config import ImageTrainConfig, option
from .schedules import SCHEDULES

PREDICTIONS = ("eps", "v")
SAMPLERS = ("ddpm", "ddim", "dpm++")
EXPORT_SAMPLERS = ("ddim", "dpm++")  # deterministic: the exported graph needs no random op


@dataclasses.dataclass
class DiffusionConfig(ImageTrainConfig):
    """DDPM training options; defaults train recognisable MNIST digits in under 30 CPU minutes."""

    family: ClassVar[str] = "diffusion"

    epochs: int = option(3, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(64, "global batch size, split across replicas", min=1)
    schedule: str = option("linear", "noise schedule: linear or cosine", choices=SCHEDULES)
    timesteps: int = option(1000, "diffusion steps T of the forward process", min=2)
    prediction: str = option("eps", "what the network predicts: eps (the noise) or v", choices=PREDICTIONS)
    base_filters: int = option(16, "U-Net channels at full resolution (twice that below)", min=8)
    levels: int = option(3, "U-Net resolutions (28 -> 14 -> 7 with 3)", min=1, max=6)
    res_blocks: int = option(1, "residual blocks per resolution", min=1)
    attention: bool = option(True, "self-attention at the lowest resolution")
    conditional: bool = option(False, "class-conditional model for classifier-free guidance (needs labels)")
    label_dropout: float = option(0.1, "probability of training on the null class (with --conditional)",
                                  min=0.0, max=1.0)
    ema: bool = option(True, "keep an EMA copy of the network for sampling and export")
    ema_momentum: float = option(0.999, "decay of the network EMA (with --ema)", min=0.0, max=0.99999)
    learning_rate: float = option(1e-3, "Adam learning rate", min=0.0, resumable=True)
