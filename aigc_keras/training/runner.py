"""Training any family: strategy, data, model, resume, TensorBoard, `fit`, atomic save."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Callable

import keras

from .. import fileio, folders, progress
from ..errors import AigcError, arg
from ..families import canonical, get_family
from ..model_dir import ModelDir
from ..networks import trained_share, weights_fingerprint
from ..precision import dtype_policy, float32_model
from ..provenance import record
from ..version import versions
from .callbacks import (
    DivergenceGuard,
    EpochCheckpoint,
    HistoryLog,
    StopWhenAsked,
    TensorBoardMonitor,
    TrainingBar,
)
from .distributed import packed_fit_data
from .finetune import Base, adapt, merged, save_adapter
from .strategy import (
    check_global_batch,
    is_chief,
    is_multi_worker,
    resolve_strategy,
    worker_index,
)


def train(config, model_dir: str | Path, overwrite: bool = False, force: bool = False, callbacks=(),
          verbose: int | str = "auto", log: Callable[[str], None] = print) -> keras.Model:
    """Train `config`'s family into `model_dir` and return the model.

    Running the same call again resumes after the last finished epoch with every optimizer's
    state; with a larger `config.epochs` it trains on. `overwrite` starts from scratch, removing
    only what training wrote there. `model_dir` is written as `folders` says: a folder holding files
    the tool did not write is refused unless `force`, and a folder another run is training into
    right now is refused.

    A non-finite (or exploding) loss or weights stop training with `Diverged`: the last good
    checkpoint stays, and no model.keras is written.

    Under multi-worker training every worker runs this with the same `model_dir` (a shared
    file system): all of them resume from its checkpoints, only the chief writes there (and holds
    its lock), and the other workers write to a temporary folder of their own that is removed at the end.
    """
    shared = ModelDir(model_dir)
    strategy = resolve_strategy(config.strategy)
    check_global_batch(strategy, config.batch_size)
    if not is_chief(strategy):
        with _scratch_dir(strategy) as md:
            return _train(config, shared, md, strategy, fresh=overwrite, callbacks=callbacks, verbose=verbose,
                          log=log)
    folders.check_folder(shared.path, folders.MODEL, force, clearing=overwrite)
    with folders.locked(shared.path, folders.MODEL):
        folders.check_folder(shared.path, folders.MODEL, force, clearing=overwrite)  # as it is now we hold it
        if overwrite:
            shared.clear()
        return _train(config, shared, shared, strategy, fresh=False, callbacks=callbacks, verbose=verbose, log=log)


def _train(config, shared: ModelDir, md: ModelDir, strategy, fresh: bool, callbacks, verbose, log) -> keras.Model:
    """The run itself: `md` is the folder this process writes (`shared`, or a worker's scratch folder);
    `fresh` ignores the shared state (a worker while the chief clears it)."""
    family = get_family(config.family)
    keras.utils.set_random_seed(config.seed)
    base = Base(ModelDir(config.init_from), config.family, shared.path, config.start_option) \
        if config.init_from else None
    if base:
        log(base.settle(config))  # before the data: the base's options settle what follows the data
    data = family.load_data(config)  # first: it settles options that follow the data
    data_info = family.data_info(config, data)
    notes, classes_differ = base.check(family, config, data, data_info) if base else ([], False)
    for line in notes:
        log(f"{base.says}: {line}")
    base_info = {"path": str(base.md.path.resolve()), "fingerprint": base.fingerprint(family)} if base else None
    if not fresh:
        _check_resumable(shared, config, data_info, base_info)
    fine_tuned = []
    with strategy.scope(), dtype_policy(config.precision):
        model = family.build(config, data_info)
        if base:
            fine_tuned = base.start(family, model, classes_differ)
        if config.lora_rank:
            adapt(model, config, fine_tuned)
    done = 0 if fresh else _restore(model, shared)
    dataset, steps = family.dataset(config, data, config.batch_size, start_epoch=done)  # refuses too little data
    validation = family.validation_data(config, data)
    history = [entry for entry in shared.history() if entry["epoch"] <= done]
    folders.claim(md.path, folders.MODEL)
    fileio.write_json(md.config_file, {"family": family.name, "config": config.to_dict(), "data": data_info,
                                       "versions": versions(), **({"base": base_info} if base else {})})
    trained_on = family.training_data(config, data, md, base, log) if done < config.epochs else data
    if trained_on is not data:  # made in the folder now claimed (a student's teacher pairs)
        dataset, steps = family.dataset(config, trained_on, config.batch_size, start_epoch=done)

    def save():
        """model.keras (merged, under LoRA, with the adapter on its own beside it); the model it holds."""
        if not config.lora_rank:
            fileio.save_keras(model, md.model)
            return model
        with strategy.scope(), dtype_policy(config.precision):
            plain = merged(model, family.build(config, data_info))
        save_adapter(md.adapter, model, fine_tuned, config, base_info)
        fileio.save_keras(plain, md.model)
        return plain

    if done >= config.epochs:
        if not md.model_is_whole():
            model = save()
            log(f"wrote {md.model} from the checkpoint of epoch {done}")
        log(f"{shared.path} is already trained for {done} epochs: pass a larger {arg('epochs')} to train on, "
            f"or {arg('overwrite')} to start again")
        return model
    log(family.budget(config, data_info))
    log(f"weights: {trained_share(model)}")
    if done:
        log(f"resuming {shared.path} after epoch {done} of {config.epochs}")
    if md is shared:
        log(f"TensorBoard: tensorboard --logdir {md.logs}")
    monitor = TensorBoardMonitor(md.logs, md.samples, config.hparams(),
                                 lambda: family.preview(float32_model(model), config, data_info),
                                 record(family.name, shared.path, {"seed": config.seed, "made": "training preview"}))
    trainee = model
    if is_multi_worker(strategy):
        with strategy.scope():
            trainee, dataset, validation = packed_fit_data(model, dataset, validation)
    if verbose == 1:  # a terminal: our bar, whose time left leaves out the first step's tracing
        callbacks, verbose = [*callbacks, TrainingBar(config.epochs, steps, sys.stdout)], 0
    with progress.quiet():  # the previews' and monitors' sampling is not a task of the user's
        trainee.fit(
            dataset,
            epochs=config.epochs,
            initial_epoch=done,
            steps_per_epoch=steps,
            validation_data=validation,
            # The divergence guard first (a diverged epoch is never saved), then at once the checkpoint,
            # so that an interruption in the slower work after it (the family's measurements, which add
            # metrics to the logs, and the preview) costs no finished epoch; history.json then lists only
            # checkpointed epochs.
            callbacks=[StopWhenAsked(), DivergenceGuard(done, _divergence_cause(config)),
                       EpochCheckpoint(md.checkpoints, model), *family.callbacks(model, config, data),
                       HistoryLog(md.history_file, history), monitor, *callbacks],
            verbose=verbose,
            shuffle=False,
        )
    model = save()
    if md is shared:
        log(f"saved {md.model}" + (f" (merged) and its adapter {md.adapter}" if config.lora_rank else ""))
    if is_multi_worker(strategy):
        log(f"worker {worker_index(strategy)}: weights fingerprint {weights_fingerprint(model)}")
    return model


def _restore(model: keras.Model, md: ModelDir) -> int:
    """Restore the last checkpoint (returns its finished epochs), keeping the learning rates the
    model was built with: a run may resume with a lower rate (after a divergence, say)."""
    optimizers = [v for v in vars(model).values() if isinstance(v, keras.optimizers.Optimizer) and _settable(v)]
    rates = [float(keras.ops.convert_to_numpy(opt.learning_rate)) for opt in optimizers]
    done = EpochCheckpoint.restore(model, md.checkpoints)
    for optimizer, rate in zip(optimizers, rates):
        optimizer.learning_rate = rate
    return done


def _settable(optimizer) -> bool:
    """Whether the learning rate is a number (a schedule is config, not saved state, and cannot be set)."""
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    return not isinstance(inner.get_config()["learning_rate"], dict)


def _divergence_cause(config) -> str:
    rates = ", ".join(f"{arg(f.name)} {getattr(config, f.name):g}"
                      for f, _ in config.field_specs() if "learning_rate" in f.name)
    return (f"a learning rate too high ({rates}): rerun the same command with a lower one to resume from the "
            f"last checkpoint, or add {arg('overwrite')} to start again")


@contextlib.contextmanager
def _scratch_dir(strategy):
    """A temporary folder for a worker that is not the chief to write (removed after)."""
    scratch = Path(tempfile.mkdtemp(prefix=f"aigc-keras-worker{worker_index(strategy)}-"))
    try:
        yield ModelDir(scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _check_resumable(md: ModelDir, config, data_info: dict, base_info: dict | None) -> None:
    """Refuse to mix a new run with a different one already in `md` (that would lose it). The data is
    compared before the options, since options the data settles (`flip`, ...) change with it."""
    has_state = bool(EpochCheckpoint.saved(md.checkpoints)) or md.model.exists()
    if not has_state:
        return
    hint = f"use another {arg('model_dir')}, or pass {arg('overwrite')} to replace it"
    if not md.config_file.exists():
        raise AigcError(f"{md.path} holds a model without config.json; {hint}")
    record = md.record()
    if canonical(record["family"]) != config.family:
        raise AigcError(f"{md.path} holds a {canonical(record['family'])} model; {hint}")
    if not EpochCheckpoint.saved(md.checkpoints):
        raise AigcError(f"{md.path} holds a trained model without checkpoints to train on; {hint}")
    _check_same_data(md, config, data_info)
    conflicts = config.resume_conflicts(md.config(config.family))
    if conflicts:
        raise AigcError(
            f"{md.path} holds a run with other options ({'; '.join(conflicts)}); rerun it with "
            f"the same options, {hint}"
        )
    then = record.get("base") or {}
    if base_info and then.get("fingerprint") != base_info["fingerprint"]:
        # its label layers and, under LoRA, its adapter fit only the base it started from
        raise AigcError(f"{arg('init_from')} {config.init_from} is not the model this run in {md.path} started "
                        f"from (weights fingerprint {then.get('fingerprint')} then, {base_info['fingerprint']} now); "
                        f"its checkpoints are kept: restore that base to resume, or pass {arg('overwrite')}")


def _check_same_data(md: ModelDir, config, data_info: dict) -> None:
    """Refuse to resume on data that no longer matches the run (its checkpoint would not fit it, or
    would silently train on something else); the checkpoint is kept."""
    then, now = md.record().get("data"), json.loads(json.dumps(data_info))
    then = then if isinstance(then, dict) else {}
    if "fingerprint" not in then:  # a run from before data fingerprints: compare what it recorded
        now.pop("fingerprint", None)
    changed = [k for k in sorted(set(then) | set(now)) if then.get(k) != now.get(k)]
    if not changed:
        return

    def show(value):
        text = "x".join(map(str, value)) if isinstance(value, list) and len(value) <= 4 else repr(value)
        return text if len(text) <= 40 else "..."

    sizes = [k for k in changed if k != "fingerprint"]
    detail = "; ".join(f"{k}: {show(then.get(k))} then, {show(now.get(k))} now" for k in sizes[:2]) or \
        "the same size and shape, but other contents"
    raise AigcError(f"{arg('data')} {config.data} no longer matches the run in {md.path} ({detail}); its "
                    f"checkpoints are kept: restore that data to resume, or train into another {arg('model_dir')}")
