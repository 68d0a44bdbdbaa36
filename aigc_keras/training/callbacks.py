"""Callbacks every family trains with: per-epoch checkpoints, history and TensorBoard."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from .. import fileio, interrupts, lora
from ..errors import AigcError, arg
from ..folders import CHECKPOINT, epoch_file, epoch_of
from ..imaging import encode_png
from ..progress import Bar


def scalar(value) -> float:
    """A logged metric as a float (multi-worker steps return them with shape [1])."""
    return float(np.asarray(value).reshape(-1)[0])


class EpochCheckpoint(keras.callbacks.Callback):
    """After each epoch, save the whole training state (weights and every optimizer; LoRA layers as they
    are, see `lora`) atomically.

    The file is named by the number of finished epochs, so the state and its epoch can never
    disagree; older files are removed once the new one is in place.
    """

    def __init__(self, directory: str | Path, model: keras.Model):
        super().__init__()
        self.directory = Path(directory)
        self.target = model  # the trained model itself, whatever `fit` runs on (`distributed.PackedBatches`)

    def on_epoch_end(self, epoch, logs=None):
        path = self.directory / epoch_file(epoch + 1, CHECKPOINT)
        with fileio.atomic_path(path, suffix=CHECKPOINT) as tmp:
            self.target.save_weights(tmp)
            lora.save_raw(self.target, tmp)
        for old, _ in self.saved(self.directory):
            if old != path:
                old.unlink(missing_ok=True)

    @staticmethod
    def saved(directory: str | Path) -> list[tuple[Path, int]]:
        """(path, finished epochs) of the checkpoints in `directory`, newest last."""
        directory = Path(directory)
        if not directory.is_dir():
            return []
        found = [(p, epoch) for p in directory.iterdir()
                 if (epoch := epoch_of(p.name, CHECKPOINT)) is not None and fileio.entry_kind(p) == "file"]
        return sorted(found, key=lambda item: item[1])

    @classmethod
    def restore(cls, model: keras.Model, directory: str | Path) -> int:
        """Load the newest checkpoint into `model`; return its finished epochs (0 if none)."""
        saved = cls.saved(directory)
        if not saved:
            return 0
        path, epochs = saved[-1]
        try:
            model.load_weights(path)
            lora.restore_raw(model, path)
        except Exception:  # its text names Keras internals (variables, optimizer objects), not options
            import h5py

            why = "it does not fit the model that config.json describes" if h5py.is_hdf5(path) else \
                "it is damaged (not a whole HDF5 file)"
            raise AigcError(f"checkpoint {path} cannot be restored: {why}; it was kept: train into another "
                            f"{arg('model_dir')}, or pass {arg('overwrite')} to discard that run") from None
        return epochs


class Diverged(AigcError):
    """Training produced a non-finite (or exploding) loss or weights."""


class StopWhenAsked(keras.callbacks.Callback):
    """End `fit` after the step in which a stop was asked for, even if TensorFlow dropped the
    KeyboardInterrupt (see `interrupts`)."""

    def on_train_batch_end(self, batch, logs=None):
        interrupts.check()


class DivergenceGuard(keras.callbacks.Callback):
    """Stop training at the first loss or metric that is not finite (or a loss beyond `LOSS_LIMIT`),
    and before an epoch whose weights are not finite is saved.

    It raises `Diverged`, so `fit` ends at once: that epoch is neither logged in history.json nor
    checkpointed, and the runner writes no model.keras. Put it before those callbacks.
    """

    LOSS_LIMIT = 1e6  # no loss of these families gets near this in a healthy run

    def __init__(self, kept: int, cause: str):
        super().__init__()
        self.kept, self.cause = kept, cause

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"at step {batch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, "at the end of the epoch")
        if not all(np.all(np.isfinite(w)) for w in self.model.get_weights()):
            self._fail("the weights are not finite")
        self.kept = epoch + 1

    def _check(self, logs, where: str):
        for name, value in (logs or {}).items():
            value = scalar(value)
            if not np.isfinite(value) or ("loss" in name and abs(value) > self.LOSS_LIMIT):
                self._fail(f"{name} is {value:.3g} {where}")

    def _fail(self, what: str):
        kept = f"the checkpoint of epoch {self.kept} is kept" if self.kept else "no epoch had finished"
        raise Diverged(f"training diverged in epoch {self.epoch} ({what}); {kept} and no model.keras was "
                       f"written. Likely cause: {self.cause}")


class TrainingBar(keras.callbacks.Callback):
    """A terminal's bar for each epoch of `fit`, its last line the epoch's metrics. (Keras's own bar
    counts the first step's tracing in the time left when it reports after several steps.)"""

    def __init__(self, epochs: int, steps: int, stream):
        super().__init__()
        self.epochs, self.steps, self.stream = epochs, steps, stream

    def on_epoch_begin(self, epoch, logs=None):
        self.bar = Bar(f"epoch {epoch + 1}/{self.epochs}", self.steps, self.stream, " steps")

    def on_train_batch_end(self, batch, logs=None):
        if batch + 1 < self.steps:  # the last step's line is the epoch's, with its validation metrics
            self.bar.reach(batch + 1, _metrics(logs))

    def on_epoch_end(self, epoch, logs=None):
        per_step = (time.monotonic() - self.bar.start) / self.steps
        self.bar.finish(f"{per_step * 1000:.0f}ms/step - {_metrics(logs)}")


def _metrics(logs) -> str:
    return " - ".join(f"{k}: {scalar(v):.4f}" for k, v in (logs or {}).items())


class HistoryLog(keras.callbacks.Callback):
    """Append each finished epoch's metrics and wall time to history.json."""

    def __init__(self, path: str | Path, history: list[dict]):
        super().__init__()
        self.path = Path(path)
        self.history = history

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        entry = {"epoch": epoch + 1, "seconds": round(time.time() - self._start, 2)}
        entry.update({k: scalar(v) for k, v in (logs or {}).items()})
        self.history.append(entry)
        fileio.write_json(self.path, self.history)


class TensorBoardMonitor(keras.callbacks.Callback):
    """Scalars every `log_every` steps and per epoch, hparams once, and a preview per epoch.

    `preview()` returns a uint8 image [H, W, C] (logged with `tf.summary.image`, saved as
    samples/epoch-NNNN.png with `provenance` and its epoch), a text (`tf.summary.text`,
    samples/epoch-NNNN.txt) or None.
    """

    def __init__(self, log_dir, samples_dir, hparams: dict, preview, provenance: dict, log_every: int = 50):
        super().__init__()
        self.provenance = provenance
        self.log_dir = str(log_dir)
        self.samples_dir = Path(samples_dir)
        self.hparams = hparams
        self.preview = preview
        self.log_every = log_every

    def on_train_begin(self, logs=None):
        from tensorboard.plugins.hparams import api as hp

        self.writer = tf.summary.create_file_writer(self.log_dir)
        with self.writer.as_default():
            hp.hparams(self.hparams)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start_step = epoch * (self.params.get("steps") or 0)

    def on_train_batch_end(self, batch, logs=None):
        step = self._epoch_start_step + batch + 1
        if step % self.log_every == 0 and logs:
            with self.writer.as_default(step=step):
                for name, value in logs.items():
                    tf.summary.scalar(f"batch/{name}", scalar(value))

    def on_epoch_end(self, epoch, logs=None):
        preview = self.preview()
        with self.writer.as_default(step=epoch + 1):
            for name, value in (logs or {}).items():
                tf.summary.scalar(f"epoch/{name}", scalar(value))
            if isinstance(preview, str):
                tf.summary.text("samples", preview)
            elif preview is not None:
                tf.summary.image("samples", np.asarray(preview)[None], max_outputs=1)
        self.writer.flush()
        if isinstance(preview, str):
            fileio.write_bytes(self.samples_dir / epoch_file(epoch + 1, ".txt"), preview.encode())
        elif preview is not None:
            fileio.write_bytes(self.samples_dir / epoch_file(epoch + 1, ".png"),
                               encode_png(np.asarray(preview), {**self.provenance, "epoch": epoch + 1}))

    def on_train_end(self, logs=None):
        self.writer.close()


class KIDMonitor(keras.callbacks.Callback):
    """Every `every` epochs, the KID of `num` fresh samples against `num` real images, put into the
    epoch's logs (so TensorBoard and history.json show a curve of quality against time)."""

    def __init__(self, every: int, num: int, sample, net, real_images: np.ndarray, seed: int):
        super().__init__()
        self.every, self.num, self.sample, self.net, self.seed = every, num, sample, net, seed
        self.real_features, _ = net(real_images)

    def on_epoch_end(self, epoch, logs=None):
        if (epoch + 1) % self.every or logs is None:
            return
        from ..metrics.image import kid

        features, _ = self.net(self.sample(self.num, self.seed + 1))
        logs["kid"], logs["kid_std"] = kid(features, self.real_features, seed=self.seed)
