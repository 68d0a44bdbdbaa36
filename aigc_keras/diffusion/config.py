"""Every option of the diffusion family, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Optional

from ..config import MIN_EPOCH_HELP, ImageTrainConfig, option
from ..errors import AigcError, arg

OBJECTIVES = ("eps", "v", "flow")
SCHEDULES = ("linear", "cosine")
SAMPLERS = ("ddpm", "ddim", "dpm++", "euler", "heun")
FLOW_SAMPLERS = ("euler", "heun")  # the others step on a DDPM schedule
EXPORT_SAMPLERS = ("ddim", "dpm++", "euler", "heun")  # deterministic: the exported graph needs no random op
TIME_SAMPLING = ("uniform", "logit-normal", "few-step")
LOSS_WEIGHTING = ("none", "min-snr")
# classifier-free guidance of the previews and KID estimates: the best KID of 1, 1.5 and 3 (docs/commands.md)
GUIDANCE = 1.5


DEFAULT_STEPS = {"ddim": 50, "dpm++": 50, "euler": 25, "heun": 12}  # ddpm: T. Heun calls the network twice a step
DISTILLED_STEPS = 4  # a reflowed student's default: Euler in 4 network calls
REFLOW_PAIRS = 20_000  # teacher samples a student trains on (`--distill-pairs`)


def default_sampler(objective: str, distilled: bool = False) -> str:
    """The sampler that `sample`, `evaluate` and `export` use when none is given: Euler for a reflowed
    student, whose paths are straight."""
    if distilled:
        return "euler"
    return "heun" if objective == "flow" else "ddim"


def default_patch(image_shape) -> int:
    """The space-to-depth factor for images of `image_shape`: a U-Net level then works on 16x16 or less."""
    return 2 if max(image_shape[:2]) <= 32 else 4


def default_base_filters(image_shape, patch: int) -> int:
    """32, or where a patch holds more values (patch x patch x channels, rounded up to 16) that many: the
    stem would otherwise squeeze each patch into fewer numbers than it has, and samples keep noise."""
    return max(32, -(-patch * patch * image_shape[-1] // 16) * 16)


EDIT_STRENGTH = 0.6  # image-to-image without a mask: SDEdit's middle ground between the picture and a new one


def edit_strength(strength: float | None, masked: bool) -> float:
    """`strength`, or its default: 0.6 for image-to-image, 1 for inpainting (the kept pixels guide it)."""
    return (1.0 if masked else EDIT_STRENGTH) if strength is None else float(strength)


def check_eta(sampler: str, eta: float | None) -> None:
    """A one-line error when DDIM's `eta` is given to another sampler."""
    if eta and sampler != "ddim":
        raise AigcError(f"{arg('eta')} applies to {arg('sampler')} ddim only")


def check_sampler(objective: str, sampler: str) -> None:
    """A one-line error when `sampler` cannot sample a model trained with `objective`."""
    if (sampler in FLOW_SAMPLERS) != (objective == "flow"):
        objective_ = arg("objective")
        kind = f"a flow ({objective_} flow)" if sampler in FLOW_SAMPLERS else f"a DDPM ({objective_} eps or v)"
        fits = FLOW_SAMPLERS if objective == "flow" else tuple(s for s in SAMPLERS if s not in FLOW_SAMPLERS)
        raise AigcError(f"{arg('sampler')} {sampler} needs {kind} model; this one was trained with {objective_} "
                        f"{objective}: use {' or '.join(fits)}")


@dataclasses.dataclass
class DiffusionConfig(ImageTrainConfig):
    """Diffusion training options; the defaults train a class-conditional rectified flow on 2x2 patches,
    the best measured per CPU minute on MNIST (docs/commands.md shows the measurements behind each default)."""

    family: ClassVar[str] = "diffusion"
    QUICK: ClassVar[dict] = {"epochs": 3, "steps_per_epoch": 300, "base_filters": 16}
    NETWORK: ClassVar[tuple[str, ...]] = ("objective", "schedule", "timesteps", "patch", "base_filters", "levels",
                                          "res_blocks", "attention", "conditional", "ema")

    epochs: int = option(6, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(64, "global batch size, split across replicas", min=1)
    min_epoch_steps: int = option(400, MIN_EPOCH_HELP, min=0)  # small data's budget, measured in docs/data.md
    objective: str = option(
        "flow", "eps or v: DDPM, the network predicts the noise or v; flow: rectified flow, it predicts the "
        "velocity eps - x_0 on continuous t in [0, 1]", choices=OBJECTIVES)
    schedule: str = option("linear", "DDPM noise schedule: linear or cosine", choices=SCHEDULES)
    timesteps: int = option(1000, "DDPM steps T of the forward process", min=2)
    time_sampling: Optional[str] = option(
        None, "flow: how training draws t (logit-normal: SD3's, more t near 0.5; few-step: only 1, 3/4, 1/2 and 1/4, "
              "the times Euler in 1, 2 and 4 steps evaluates) [default: few-step with --distill-from, else "
              "logit-normal]", choices=TIME_SAMPLING)
    loss_weighting: str = option("none", "DDPM: min-snr weighs each t by min(SNR, gamma) (Hang et al. 2023)",
                                 choices=LOSS_WEIGHTING)
    min_snr_gamma: float = option(5.0, "gamma of --loss-weighting min-snr", min=0.0)
    patch: Optional[int] = option(
        None, "space-to-depth factor: 2 turns 28x28x1 into 14x14x4, so no level runs at full resolution [default: "
              "2 for images up to 32x32, 4 for larger ones]", min=1, max=8)
    base_filters: Optional[int] = option(
        None, "U-Net channels at its first resolution (twice that below) [default: 32, or a patch's values (patch x "
              "patch x channels) where they are more: 48 at 64x64 colour]", min=8)
    levels: int = option(2, "U-Net resolutions (14 -> 7 with 2 and --patch 2)", min=1, max=6)
    res_blocks: int = option(1, "residual blocks per resolution", min=1)
    attention: bool = option(True, "self-attention at the lowest resolution")
    conditional: Optional[bool] = option(None, "class-conditional model for classifier-free guidance [default: on "
                                               "when the data has labels]")
    label_dropout: float = option(0.1, "probability of training on the null class (with --conditional)",
                                  min=0.0, max=1.0)
    ema: bool = option(True, "keep an EMA copy of the network for sampling and export")
    ema_momentum: float = option(0.999, "decay of the network EMA (with --ema)", min=0.0, max=0.99999)
    learning_rate: float = option(2e-3, "Adam learning rate (the peak, with --lr-schedule cosine)", min=0.0,
                                  resumable=True)
    distill_from: Optional[str] = option(
        None, "a trained flow model folder (the teacher, never written) to distil by reflow into a few-step "
              "model: the run starts from its networks and weights and trains on --distill-pairs (noise, "
              "sample) pairs of its default sampler, so that Euler in 1-4 steps samples it")
    distill_pairs: int = option(REFLOW_PAIRS, "teacher samples drawn once for --distill-from (its training data)",
                                min=1)

    @property
    def start_option(self) -> str:
        return "distill_from" if self.distill_from else "init_from"

    def __post_init__(self):
        if self.distill_from is not None:
            if self.init_from not in (None, self.distill_from):
                raise AigcError(f"{arg('distill_from')} starts from its teacher: leave out {arg('init_from')}")
            self.init_from = self.distill_from
            if self.distill_pairs < self.batch_size:
                raise AigcError(f"{arg('distill_pairs')} {self.distill_pairs} is fewer than one step needs "
                                f"({arg('batch_size')} {self.batch_size}); raise it or lower {arg('batch_size')}")
        elif self.distill_pairs != REFLOW_PAIRS:
            raise AigcError(f"{arg('distill_pairs')} applies to {arg('distill_from')} TEACHER")
        if self.time_sampling is None:
            self.time_sampling = "few-step" if self.distill_from else "logit-normal"
        super().__post_init__()

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> "DiffusionConfig":
        if "prediction" in values:  # models trained before --objective called it --prediction
            values = {**{k: v for k, v in values.items() if k != "prediction"}, "objective": values["prediction"]}
        return super().from_dict(values, source)
