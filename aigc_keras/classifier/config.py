"""Every option of the evaluation classifier, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..config import TrainConfig, option


@dataclasses.dataclass
class ClassifierConfig(TrainConfig):
    """A small CNN whose penultimate layer is the feature space of FID/KID for small images."""

    family: ClassVar[str] = "classifier"
    QUICK: ClassVar[dict] = {"epochs": 1, "steps_per_epoch": 200}
    NETWORK: ClassVar[tuple[str, ...]] = ("filters", "feature_dim")

    epochs: int = option(3, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(128, "global batch size, split across replicas", min=1)
    filters: int = option(32, "channels of the first conv block; doubled in the second", min=1)
    feature_dim: int = option(128, "size of the feature layer that FID/KID/precision/recall use", min=2)
    dropout: float = option(0.3, "dropout before the class logits", min=0.0, max=0.9)
    validation_split: float = option(0.1, "last share of the data held out for validation accuracy",
                                     min=0.01, max=0.5)
    learning_rate: float = option(1e-3, "Adam learning rate", min=0.0, resumable=True)
