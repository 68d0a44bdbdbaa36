"""Config dataclasses: the one home of every option a user can set.

Each family declares one dataclass that extends `TrainConfig`. The CLI builds its flags from
the fields, TensorBoard logs them as hparams and the trained model keeps them as
`config.json`, so an option is declared exactly once. This module does not import TensorFlow.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, Optional

from .errors import AigcError, arg
from .limits import MAX_SEED

STRATEGIES = ("auto", "default", "mirrored", "multiworker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
LR_SCHEDULES = ("constant", "cosine")
IMAGE_SPECS = "mnist, tfds:NAME[:SPLIT], idx:PATH, folder:DIR or npz:FILE"
LR_SCHEDULE_HELP = "learning rate: constant, or cosine: linear warm-up, then cosine decay to 0 at the last epoch"
WARMUP_HELP = "optimizer steps of linear learning-rate warm-up (--lr-schedule cosine)"
SMALL_DATA = 10_000  # images: below this, the defaults turn on the augmentations of small data
MIN_EPOCH_HELP = ("an epoch takes at least this many optimizer steps: on smaller data it is several passes, so that "
                  "a small data set trains enough (0: one pass)")
MAX_LORA_RANK = 256
TEXT_SPECS = "shakespeare, text:PATH[,PATH...] (UTF-8 files or folders) or tfds:NAME[:SPLIT]"


def option(default, help, *, choices=None, min=None, max=None, resumable=False):
    """A config field with its CLI help and bounds.

    `resumable` fields may differ between an interrupted run and the run that resumes it
    (more epochs, another strategy); every other field must match.
    """
    meta = {"help": help, "choices": choices, "min": min, "max": max, "resumable": resumable}
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass
class TrainConfig:
    """Options that training shares across families."""

    family: ClassVar[str] = ""
    # `--quick` (and `quick()`): the options of a run of about a minute on 2 CPU cores, to see the family work
    QUICK: ClassVar[dict] = {}
    # the options that shape the networks or say what they compute: a run `--init-from` a model takes its
    NETWORK: ClassVar[tuple[str, ...]] = ()

    data: str = option("mnist", f"dataset spec: {IMAGE_SPECS}")
    epochs: int = option(10, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(128, "global batch size, split across replicas", min=1)
    steps_per_epoch: Optional[int] = option(
        None, "optimizer steps per epoch [default: one pass over the data, or --min-epoch-steps if that is more]",
        min=1
    )
    min_epoch_steps: int = option(0, MIN_EPOCH_HELP, min=0)
    seed: int = option(0, "seed for weights, data order and training noise", min=0, max=MAX_SEED)
    strategy: str = option(
        "auto",
        "tf.distribute strategy: auto (multiworker when TF_CONFIG names >1 worker, else mirrored when "
        ">1 GPU), default, mirrored, multiworker",
        choices=STRATEGIES,
        resumable=True,
    )
    precision: str = option(
        "float32", "Keras mixed precision for training (sampling and exports are always float32)",
        choices=PRECISIONS,
    )
    lr_schedule: str = option("constant", LR_SCHEDULE_HELP, choices=LR_SCHEDULES)
    warmup_steps: int = option(0, WARMUP_HELP, min=0)
    init_from: Optional[str] = option(
        None, "a trained model folder of this family to start from: its networks and weights (never written), "
              "on this run's data, with a fresh optimizer")
    lora_rank: int = option(0, "with --init-from: freeze the base and train only Keras' LoRA adapters of this rank "
                               "on its dense, embedding and convolution layers (0: fine-tune every weight)",
                            min=0, max=MAX_LORA_RANK)
    lora_alpha: Optional[float] = option(None, "LoRA scale: a layer adds alpha / rank * A B to its kernel "
                                               "[default: the rank]", min=0.0)

    def __post_init__(self):
        self.validate()
        if self.lora_rank and not self.init_from:
            raise AigcError(f"{arg('lora_rank')} adapts a trained model: add {arg('init_from')} MODEL_DIR")
        if self.lora_alpha is not None and not self.lora_rank:
            raise AigcError(f"{arg('lora_alpha')} applies to {arg('lora_rank')} R")
        if self.lora_rank and self.lora_alpha is None:
            self.lora_alpha = float(self.lora_rank)

    @property
    def start_option(self) -> str:
        """The option that names the trained model this run starts from (`init_from`)."""
        return "init_from"

    @classmethod
    def quick(cls, **options) -> "TrainConfig":
        """The quick run's config (`QUICK`, then `options`): a short run whose samples are rough, to see
        the family work end to end before a full run."""
        return cls(**{**cls.QUICK, **options})

    @classmethod
    def field_specs(cls) -> list[tuple[dataclasses.Field, Any]]:
        """(field, resolved type) for every option, in declaration order."""
        hints = typing.get_type_hints(cls)
        return [(f, hints[f.name]) for f in dataclasses.fields(cls)]

    def validate(self, source: str | None = None) -> None:
        """Check types, choices and bounds; raise `AigcError` naming the flag (or, for values read
        from a file, the file and the option's name)."""
        for f, hint in self.field_specs():
            value = getattr(self, f.name)
            flag = f"{source}: option {f.name!r}" if source else arg(f.name)
            if value is None:
                if typing.get_origin(hint) is typing.Union:
                    continue
                raise AigcError(f"{flag} must be set")
            base = _base_type(hint)
            if base is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
                setattr(self, f.name, value)
            if not isinstance(value, base) or (base is int and isinstance(value, bool)):
                raise AigcError(f"{flag} must be {base.__name__}, got {value!r}")
            if base is float and not math.isfinite(value):
                raise AigcError(f"{flag} must be a finite number, got {value!r}")
            meta = f.metadata
            if meta.get("choices") and value not in meta["choices"]:
                raise AigcError(f"{flag} must be one of {', '.join(meta['choices'])}, got {value!r}")
            if meta.get("min") is not None and value < meta["min"]:
                raise AigcError(f"{flag} must be >= {meta['min']}, got {value!r}")
            if meta.get("max") is not None and value > meta["max"]:
                raise AigcError(f"{flag} must be <= {meta['max']}, got {value!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, source: str | None = None) -> "TrainConfig":
        """The config from saved values; errors name `source` (a file) rather than a flag. Runs saved
        before `min_epoch_steps` had one-pass epochs, and keep them."""
        values = {"min_epoch_steps": 0, **values}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        where = f"{source}: " if source else ""
        if unknown:
            raise AigcError(f"{where}unknown {cls.family} option(s): {', '.join(unknown)}")
        probe = cls.__new__(cls)  # each value checked on its own first, so that errors name the file
        for f in dataclasses.fields(cls):
            setattr(probe, f.name, values.get(f.name, f.default))
        probe.validate(source)
        try:
            return cls(**values)
        except AigcError as e:
            raise AigcError(f"{where}{e}") from None

    def epoch_steps(self, one_pass: int) -> int:
        """Optimizer steps in one epoch when a pass over the data takes `one_pass` steps."""
        return self.steps_per_epoch or max(one_pass, self.min_epoch_steps)

    def hparams(self) -> dict:
        """The options as TensorBoard hparams (bool, int, float or str values only)."""
        return {k: ("none" if v is None else v) for k, v in self.to_dict().items()}

    def inherit(self, base: "TrainConfig") -> list[str]:
        """Take the `network` options from `base`, the config of the model a run starts from; return
        them as flags. An option set here to a value other than its default and the base's is refused."""
        taken = []
        for f, _ in self.field_specs():
            if f.name not in self.NETWORK:
                continue
            mine, theirs = getattr(self, f.name), getattr(base, f.name)
            if mine not in (f.default, theirs):
                raise AigcError(f"{arg(f.name)} {mine!r}: the model of {arg(self.start_option)} has {theirs!r}, and "
                                f"a run from a trained model keeps its networks (leave it out)")
            setattr(self, f.name, theirs)
            if theirs is not None:
                taken.append(f"{arg(f.name)} {theirs}")
        return taken

    def resume_conflicts(self, previous: "TrainConfig") -> list[str]:
        """Options that differ from `previous` and may not change when resuming."""
        return [
            f"{arg(f.name)} {getattr(previous, f.name)!r} -> {getattr(self, f.name)!r}"
            for f, _ in self.field_specs()
            if not f.metadata.get("resumable") and getattr(self, f.name) != getattr(previous, f.name)
        ]


@dataclasses.dataclass
class ImageTrainConfig(TrainConfig):
    """Options the image generators share: the quality curve during training."""

    eval_every: int = option(
        0, "every N epochs, log the KID of --eval-samples samples against the training data (0: off)",
        min=0, resumable=True,
    )
    eval_samples: int = option(256, "samples (and real images) per KID estimate during training", min=4,
                               resumable=True)
    flip: Optional[bool] = option(
        None, f"train on images mirrored at random too (wrong for digits and text, which mirroring changes) "
              f"[default: on for colour data of fewer than {SMALL_DATA:,} images]")
    eval_classifier: Optional[str] = option(
        None, "feature classifier folder for that KID [default: the shipped one for mnist, else InceptionV3]",
        resumable=True,
    )


def _base_type(hint) -> type:
    if typing.get_origin(hint) is typing.Union:
        (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
    return hint
