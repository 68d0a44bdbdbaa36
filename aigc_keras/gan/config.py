"""Every option of the GAN family, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from ..config import MIN_EPOCH_HELP, SMALL_DATA, ImageTrainConfig, option
from ..errors import AigcError, arg

GAN_LOSSES = ("ns", "hinge", "wgan-gp")


@dataclasses.dataclass
class GANConfig(ImageTrainConfig):
    """DCGAN training options; the defaults are the best measured per CPU minute on MNIST (docs/commands.md)."""

    family: ClassVar[str] = "gan"
    QUICK: ClassVar[dict] = {"epochs": 4, "steps_per_epoch": 250}
    NETWORK: ClassVar[tuple[str, ...]] = ("latent_dim", "base_filters", "minibatch_std", "conditional", "ema")

    epochs: int = option(6, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(32, "global batch size, split across replicas", min=1)
    min_epoch_steps: int = option(1500, MIN_EPOCH_HELP, min=0)  # small data's budget, measured in docs/data.md
    latent_dim: int = option(100, "size of the generator's input noise z", min=1)
    base_filters: int = option(
        32, "channels of the full-resolution layers; doubled at each lower resolution", min=1
    )
    loss: str = option(
        "ns", "objective: ns (non-saturating), hinge or wgan-gp", choices=GAN_LOSSES
    )
    label_smoothing: float = option(
        0.0, "one-sided label smoothing: real targets become 1 - value (ns loss only)", min=0.0, max=0.5
    )
    gp_weight: float = option(10.0, "gradient-penalty weight (wgan-gp only)", min=0.0)
    n_critic: Optional[int] = option(
        None, "discriminator steps per generator step [default: 5 with wgan-gp, else 1]", min=1
    )
    minibatch_std: int = option(0, "discriminator sees the feature spread over groups of this many images (0: "
                                   "off); against drawing too few kinds of image", min=0)
    augment: Optional[bool] = option(
        None, "DiffAugment (colour, translation, cutout) of every image the discriminator sees, real and fake "
              f"(Zhao et al. 2020), against a discriminator that memorises small data [default: on for fewer than "
              f"{SMALL_DATA:,} images]")
    conditional: Optional[bool] = option(None, "class-conditional GAN: draws every class in turn [default: on when "
                                               "the data has labels]")
    ema: bool = option(True, "keep an EMA copy of the generator for sampling and export")
    ema_momentum: float = option(0.999, "decay of the generator EMA (with --ema)", min=0.0, max=0.99999)
    g_learning_rate: float = option(1e-3, "generator Adam learning rate", min=0.0, resumable=True)
    d_learning_rate: float = option(1e-3, "discriminator Adam learning rate", min=0.0, resumable=True)
    beta_1: float = option(0.5, "Adam beta_1 of both optimizers", min=0.0, max=1.0)
    beta_2: float = option(0.999, "Adam beta_2 of both optimizers", min=0.0, max=1.0)

    def __post_init__(self):
        if self.n_critic is None:
            self.n_critic = 5 if self.loss == "wgan-gp" else 1
        super().__post_init__()
        if self.label_smoothing and self.loss != "ns":
            raise AigcError(f"{arg('label_smoothing')} applies to {arg('loss')} ns only")
        if self.minibatch_std and self.batch_size % self.minibatch_std:
            raise AigcError(f"{arg('batch_size')} {self.batch_size} must be a multiple of {arg('minibatch_std')} "
                            f"{self.minibatch_std}")
