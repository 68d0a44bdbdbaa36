"""Every option of the VAE family, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..config import MIN_EPOCH_HELP, ImageTrainConfig, option


@dataclasses.dataclass
class VAEConfig(ImageTrainConfig):
    """Convolutional variational autoencoder options, sized for small images and CPUs."""

    family: ClassVar[str] = "vae"
    QUICK: ClassVar[dict] = {"epochs": 3, "steps_per_epoch": 600}
    NETWORK: ClassVar[tuple[str, ...]] = ("latent_dim", "base_filters")

    epochs: int = option(10, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(64, "global batch size, split across replicas", min=1)
    min_epoch_steps: int = option(937, MIN_EPOCH_HELP, min=0)  # a pass over the default data (60,000 / 64)
    latent_dim: int = option(16, "size of the latent code z", min=1)
    base_filters: int = option(32, "channels of the first convolution; doubled in the second", min=1)
    beta: float = option(1.0, "weight of the KL term (beta-VAE; 1 is the evidence lower bound)", min=0.0)
    learning_rate: float = option(1e-3, "Adam learning rate", min=0.0, resumable=True)
