"""Every option of the autoregressive family, read by the CLI, TensorBoard hparams and the saved model."""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from ..config import LR_SCHEDULE_HELP, LR_SCHEDULES, MIN_EPOCH_HELP, TEXT_SPECS, WARMUP_HELP, TrainConfig, option

ARCHS = ("lstm", "transformer")
SAMPLE_LENGTH = 400  # tokens that `generate` and `sample` draw by default
EXPORT_LENGTH = 256  # new ids per `generate` call of an export
EXPORT_PROMPT_LENGTH = 64  # prompt ids an export's `generate` takes
TOKENIZERS = ("chars", "bytes")


@dataclasses.dataclass
class TextConfig(TrainConfig):
    """Character language model options; the defaults (64 windows of 100 characters per step, a warmed-up
    cosine learning rate) are the best measured per CPU minute on Shakespeare (docs/commands.md shows the
    measurements)."""

    family: ClassVar[str] = "text"
    QUICK: ClassVar[dict] = {"epochs": 3, "steps_per_epoch": 300, "units": 128, "warmup_steps": 40}
    NETWORK: ClassVar[tuple[str, ...]] = ("arch", "tokenizer", "min_count", "seq_len", "embedding_dim", "units",
                                          "layers", "heads")

    data: str = option("shakespeare", f"text spec: {TEXT_SPECS}")
    epochs: int = option(20, "number of epochs to train", min=1, resumable=True)
    batch_size: int = option(64, "global batch size (windows), split across replicas", min=1)
    min_epoch_steps: int = option(156, MIN_EPOCH_HELP, min=0)  # a pass over Tiny Shakespeare's windows / 64
    arch: str = option("lstm", "network: lstm (stacked LSTM) or transformer (causal decoder)", choices=ARCHS)
    tokenizer: str = option("chars", "chars (Unicode code points, id 0 = unknown) or bytes (UTF-8)",
                            choices=TOKENIZERS)
    min_count: int = option(1, "chars tokenizer: characters seen fewer times than this in the training text share "
                                  "the unknown id, which generation never draws (2 or 3 for Chinese)", min=1)
    seq_len: int = option(100, "training window; also the transformer's context (KV cache) length", min=2)
    embedding_dim: int = option(64, "token embedding size (lstm)", min=1)
    units: int = option(256, "LSTM units per layer; the transformer's model width", min=8)
    layers: int = option(2, "stacked LSTM layers or transformer blocks", min=1, max=12)
    heads: int = option(4, "attention heads (transformer; must divide --units)", min=1)
    dropout: float = option(0.1, "dropout between layers (helps on small corpora or long runs)", min=0.0, max=0.9)
    learning_rate: float = option(3e-3, "Adam learning rate (the peak, with --lr-schedule cosine)", min=0.0,
                                  resumable=True)
    lr_schedule: str = option("cosine", LR_SCHEDULE_HELP, choices=LR_SCHEDULES)
    warmup_steps: int = option(200, WARMUP_HELP, min=0)
    clipnorm: float = option(1.0, "clip the global gradient norm (over all replicas) to this (0: off)", min=0.0)
    validation_split: float = option(0.1, "last share of the corpus held out for validation", min=0.01, max=0.5)

    def __post_init__(self):
        super().__post_init__()
        if self.arch == "transformer" and self.units % self.heads:
            from ..errors import AigcError, arg

            raise AigcError(f"{arg('heads')} {self.heads} must divide {arg('units')} {self.units}")
