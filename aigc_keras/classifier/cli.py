"""`train classifier`: the feature network of the image metrics (TensorFlow is imported only when it runs)."""

from __future__ import annotations

from ..commands import train_command
from .config import ClassifierConfig

EVALUATE_OPTIONS: dict = {}  # a classifier is not a generator: `evaluate` refuses it


def commands(name: str = "classifier") -> dict:
    train = train_command(
        ClassifierConfig, name,
        "Train the small CNN whose features FID/KID use for small images (e.g. --data idx:fashion/).",
        [" --data mnist --model-dir saved_models/classifier",
         " --data idx:data/fashion_mnist --model-dir saved_models/fashion-classifier"],
    )
    return {"train": train}
