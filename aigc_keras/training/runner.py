"""Training any family: strategy, data, model, resume, TensorBoard, `fit`, atomic save."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from .. import __version__, fileio
from ..errors import AigcError
from ..families import get_family
from .callbacks import EpochCheckpoint, HistoryLog, TensorBoardMonitor
from .distributed import single_tensor_fit
from .model_dir import ModelDir
from .precision import dtype_policy, float32_model
from .strategy import (
    check_global_batch,
    is_chief,
    is_multi_worker,
    resolve_strategy,
    worker_index,
)


def train(config, model_dir: str | Path, overwrite: bool = False, callbacks=(),
          verbose: int | str = "auto", log: Callable[[str], None] = print) -> keras.Model:
    """Train `config`'s family into `model_dir` and return the model.

    Running the same call again resumes after the last finished epoch with every optimizer's
    state; with a larger `config.epochs` it trains on. `overwrite` starts from scratch.

    Under multi-worker training every worker runs this with the same `model_dir` (a shared
    file system): all of them resume from its checkpoints, only the chief writes there, and the
    other workers write to a temporary folder of their own that is removed at the end.
    """
    family = get_family(config.family)
    shared = ModelDir(model_dir)
    strategy = resolve_strategy(config.strategy)
    chief = is_chief(strategy)
    if overwrite and chief:
        shared.clear()
    if chief or not overwrite:
        _check_resumable(shared, config)
    check_global_batch(strategy, config.batch_size)
    with _own_dir(shared, strategy) as md:
        keras.utils.set_random_seed(config.seed)
        data = family.load_data(config)
        data_info = family.data_info(config, data)
        with strategy.scope(), dtype_policy(config.precision):
            model = family.build(config, data_info)
        done = 0 if overwrite and not chief else EpochCheckpoint.restore(model, shared.checkpoints)
        dataset, steps = family.dataset(config, data, config.batch_size, start_epoch=done)
        validation = family.validation_data(config, data)
        history = [entry for entry in shared.history() if entry["epoch"] <= done]
        fileio.write_json(md.config_file, {
            "family": family.name,
            "config": config.to_dict(),
            "data": data_info,
            "versions": {"aigc_keras": __version__, "tensorflow": tf.__version__, "keras": keras.__version__},
        })
        if done >= config.epochs:
            if not md.model.exists():
                fileio.save_keras(model, md.model)
            log(f"{shared.path} is already trained for {done} epochs: pass a larger --epochs to train on, "
                "or --overwrite to start again")
            return model
        if done:
            log(f"resuming {shared.path} after epoch {done} of {config.epochs}")
        if chief:
            log(f"TensorBoard: tensorboard --logdir {md.logs}")
        if is_multi_worker(strategy):
            dataset, validation = single_tensor_fit(model, dataset, validation)
        monitor = TensorBoardMonitor(md.logs, md.samples, config.hparams(),
                                     lambda: family.preview(float32_model(model), config, data_info))
        model.fit(
            dataset,
            epochs=config.epochs,
            initial_epoch=done,
            steps_per_epoch=steps,
            validation_data=validation,
            # Family callbacks first (they add metrics to the logs), then history before checkpoint:
            # a crash between the two then costs a history line, not an epoch.
            callbacks=[*family.callbacks(model, config, data), HistoryLog(md.history_file, history), monitor,
                       EpochCheckpoint(md.checkpoints), *callbacks],
            verbose=verbose,
            shuffle=False,
        )
        fileio.save_keras(model, md.model)
        if chief:
            log(f"saved {md.model}")
        if is_multi_worker(strategy):
            log(f"worker {worker_index(strategy)}: weights fingerprint {weights_fingerprint(model)}")
        return model


def weights_fingerprint(model: keras.Model) -> str:
    """A short hash of every weight's bytes: equal on all workers when they trained in sync."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _own_dir(shared: ModelDir, strategy):
    """The folder this process writes: `shared` for the chief, else a temporary one (removed after)."""
    if is_chief(strategy):
        yield shared
        return
    scratch = Path(tempfile.mkdtemp(prefix=f"aigc-keras-worker{worker_index(strategy)}-"))
    try:
        yield ModelDir(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_resumable(md: ModelDir, config) -> None:
    """Refuse to mix a new run with a different one already in `md` (that would lose it)."""
    has_state = bool(EpochCheckpoint.saved(md.checkpoints)) or md.model.exists()
    if not has_state:
        return
    hint = "use another --model-dir, or pass --overwrite to replace it"
    if not md.config_file.exists():
        raise AigcError(f"{md.path} holds a model without config.json; {hint}")
    run = md.run()
    if run["family"] != config.family:
        raise AigcError(f"{md.path} holds a {run['family']} model; {hint}")
    if not EpochCheckpoint.saved(md.checkpoints):
        raise AigcError(f"{md.path} holds a trained model without checkpoints to train on; {hint}")
    conflicts = config.resume_conflicts(md.config(config.family))
    if conflicts:
        raise AigcError(
            f"{md.path} holds a run with other options ({'; '.join(conflicts)}); rerun it with "
            f"the same options, {hint}"
        )
