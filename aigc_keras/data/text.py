"""Text corpora for the autoregressive family, named by one spec string.

Specs:
  shakespeare          Tiny Shakespeare (1.1M characters) shipped inside the package (no network)
  text:PATH[,PATH...]  UTF-8 text files, or folders of them (every file inside, sorted by name)
  tfds:NAME[:SPLIT]    a TFDS text dataset such as tiny_shakespeare (downloads where online)

A corpus is one string. Training and validation split it by position: the last 10 % validates.
`TokenWindows` turns token ids into the training pipeline: windows of seq_len + 1 ids, shuffled
per epoch and batched by the global batch size, as one int32 tensor [B, seq_len + 1].
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..config import TEXT_SPECS
from ..errors import AigcError, arg
from ..fileio import entry_kind
from .pipeline import shuffled_epochs, single_threaded
from .tfds_source import load_tfds

TEXT_KINDS = ("shakespeare", "text")  # the specs that only text takes (tfds: serves images and text)


@dataclasses.dataclass
class TextData:
    spec: str
    text: str
    tokenized: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)  # family's cache

    def split(self, validation_fraction: float = 0.1) -> tuple[str, str]:
        """(training text, validation text): the last `validation_fraction` validates."""
        cut = len(self.text) - int(round(len(self.text) * validation_fraction))
        return self.text[:cut], self.text[cut:]

    def fingerprint(self) -> str:
        """A hash of the whole corpus (see `images.ImageData.fingerprint`)."""
        return hashlib.sha256(self.text.encode("utf-8", "surrogatepass")).hexdigest()[:32]

    def info(self) -> dict:
        return {"spec": self.spec, "num_characters": len(self.text), "fingerprint": self.fingerprint()}


@dataclasses.dataclass
class TokenWindows:
    """Windows of `seq_len + 1` token ids, stride `seq_len`: each id is a target exactly once."""

    spec: str
    windows: np.ndarray  # int32 [N, seq_len + 1]

    @property
    def seq_len(self) -> int:
        return self.windows.shape[1] - 1

    @classmethod
    def from_ids(cls, spec: str, ids: np.ndarray, seq_len: int) -> "TokenWindows":
        count = (len(ids) - 1) // seq_len
        starts = np.arange(count)[:, None] * seq_len + np.arange(seq_len + 1)[None, :]
        return cls(spec, np.asarray(ids, np.int32)[starts] if count else np.zeros((0, seq_len + 1), np.int32))

    def steps_per_epoch(self, global_batch_size: int, per_step: int | None = None) -> int:
        """Whole batches in one pass (at least one, else a one-line error)."""
        steps = len(self.windows) // global_batch_size
        if steps < 1:
            raise AigcError(f"{self.spec}: {len(self.windows)} training windows of {arg('seq_len')} {self.seq_len} "
                            f"+ 1 tokens are fewer than one batch ({global_batch_size}); lower "
                            f"{arg('batch_size')} or {arg('seq_len')}, or use more text")
        return steps

    def batches(self, global_batch_size: int, seed: int, num_epochs: int, start_epoch: int = 0,
                per_step: int | None = None) -> tf.data.Dataset:
        """The training pipeline (see `pipeline.shuffled_epochs`): int32 [B, seq_len + 1] batches."""
        self.steps_per_epoch(global_batch_size)
        ds = shuffled_epochs(tf.data.Dataset.from_tensor_slices(self.windows), len(self.windows),
                             global_batch_size, seed, num_epochs, start_epoch)
        return single_threaded(ds.prefetch(2))

    def eval_batches(self, batch_size: int) -> tf.data.Dataset:
        """Every window once, in order (the last batch may be smaller)."""
        return tf.data.Dataset.from_tensor_slices(self.windows).batch(batch_size).prefetch(2)


def load_text(spec: str, fingerprint: str | None = None) -> TextData:
    """Resolve a text spec into `TextData`; raise `AigcError` naming the spec on bad input (and, with
    `fingerprint`, when its contents are not what a model recorded: `images.check_fingerprint`)."""
    from .images import check_fingerprint

    data = _load_text(spec)
    check_fingerprint(data, fingerprint)
    return data


def _load_text(spec: str) -> TextData:
    kind, _, arg = spec.partition(":")
    if kind == "shakespeare" and not arg:
        return TextData(spec, _embedded_shakespeare())
    loaders = {"text": _load_files, "tfds": _load_tfds}
    if kind not in loaders:
        raise AigcError(f"unknown text spec {spec!r}: use {TEXT_SPECS}")
    if not arg:
        raise AigcError(f"text spec {spec!r} needs a value after '{kind}:'")
    text = loaders[kind](spec, arg)
    if not text:
        raise AigcError(f"{spec}: the corpus is empty")
    if len(text) < 2:
        raise AigcError(f"{spec}: the corpus holds 1 character; a language model needs text to learn from")
    return TextData(spec, text)


def _embedded_shakespeare() -> str:
    import importlib.resources

    with importlib.resources.as_file(
        importlib.resources.files("aigc_keras.data") / "shakespeare" / "input.txt.gz"
    ) as path:
        return gzip.decompress(path.read_bytes()).decode("utf-8")


def _load_files(spec: str, arg: str) -> str:
    """The files of `arg`: one path (even one with a comma in its name), or paths separated by commas."""
    files = []
    names = [arg] if os.path.lexists(arg) else arg.split(",")
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
            if not found:
                raise AigcError(f"{spec}: folder {path} has no files")
            files += found
        elif path.is_file():
            files.append(path)
        elif os.path.lexists(path):
            raise AigcError(f"{spec}: {path} is {entry_kind(path)}, not a text file or a folder")
        else:
            raise AigcError(f"{spec}: {path} does not exist")
    texts = []
    for path in files:
        try:
            texts.append(path.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as e:
            raise AigcError(f"{spec}: {path} is not UTF-8 text (byte {e.start})") from None
    return "\n".join(texts)


def _load_tfds(spec: str, arg: str) -> str:
    import tensorflow_datasets as tfds

    ds, _, key, _ = load_tfds(spec, arg, tfds.features.Text, "text")
    return "\n".join(example[key].decode("utf-8") for example in tfds.as_numpy(ds))
