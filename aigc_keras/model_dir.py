"""The layout of a trained model's folder, and reading it back with clear errors.

    model.keras     the trained model (reloads with keras.models.load_model, no custom code)
    config.json     family, options (the config dataclass), data description, versions
    history.json    one entry of metrics per finished epoch
    adapter.lora.h5 a LoRA run's adapter on its own, with its base's path and fingerprint
    teacher-pairs.npz a distilled student's training data: its teacher's samples
    checkpoints/    full training state after the last finished epoch (resume, train on)
    logs/           TensorBoard
    samples/        a preview per epoch (PNG for image families)
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from . import fileio, folders
from .errors import AigcError


class ModelDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.model = self.path / folders.MODEL_FILE
        self.adapter = self.path / folders.ADAPTER_FILE
        self.pairs = self.path / folders.PAIRS_FILE
        self.config_file = self.path / folders.CONFIG_FILE
        self.history_file = self.path / folders.HISTORY_FILE
        self.checkpoints = self.path / folders.CHECKPOINTS
        self.logs = self.path / folders.LOGS
        self.samples = self.path / folders.SAMPLES

    def record(self) -> dict:
        """The contents of config.json; an `AigcError` if this is not a model folder."""
        if self.path.exists() and not self.path.is_dir():
            raise AigcError(f"{self.path} is a file, not a model folder")
        if not self.path.is_dir():
            other = self.other_name()
            if other:
                raise AigcError(f"model folder {self.path} does not exist, but {other} holds a model (made "
                                f"under the family's other name): use {other}, or rename it to {self.path}")
            raise AigcError(f"model folder {self.path} does not exist (train one with `aigc-keras train`)")
        if not self.config_file.exists():
            raise AigcError(f"{self.path} is not a model folder: it has no config.json")
        try:
            record = fileio.read_json(self.config_file)
            if not isinstance(record["family"], str) or \
                    not all(isinstance(record[k], dict) for k in ("config", "data")):
                raise TypeError
        except (ValueError, KeyError, TypeError, OSError):
            raise AigcError(f"{self.config_file} is corrupt: it is not the config.json that training writes") \
                from None
        return record

    def other_name(self) -> Path | None:
        """The model folder beside this one named by the family's other name (`saved_models/lstm` for
        `saved_models/text`, and back), if one holds a model."""
        from .families import ALIASES

        names = {**ALIASES, **{family: alias for alias, family in ALIASES.items()}}
        if self.path.name not in names:
            return None
        other = self.path.with_name(names[self.path.name])
        return other if (other / folders.CONFIG_FILE).is_file() else None

    def config(self, family: str | None = None):
        """The saved config dataclass; checks the family when one is expected."""
        from .families import canonical, config_class

        record = self.record()
        if family is not None and canonical(record["family"]) != canonical(family):
            raise AigcError(f"{self.path} holds a {canonical(record['family'])} model, not a {canonical(family)} model")
        return config_class(record["family"]).from_dict(record["config"], source=str(self.config_file))

    def training_data(self, family: str):
        """The data the model was trained on, loaded again: refused in one line if its contents changed."""
        from .data.images import check_fingerprint
        from .families import get_family

        data = get_family(family).load_data(self.config(family))
        check_fingerprint(data, self.record()["data"].get("fingerprint"))
        return data

    def history(self) -> list[dict]:
        """The finished epochs' entries of history.json ([] before the first)."""
        if not self.history_file.exists():
            return []
        try:
            history = fileio.read_json(self.history_file)
        except (ValueError, OSError):
            history = None
        if not isinstance(history, list) or not all(
            isinstance(h, dict) and isinstance(h.get("epoch"), int) and isinstance(h.get("seconds"), (int, float))
            for h in history
        ):
            raise AigcError(f"{self.history_file} is corrupt: it must be a list of epochs, each with "
                            "'epoch' and 'seconds'")
        return history

    def model_is_whole(self) -> bool:
        """Whether model.keras exists and every member of its archive reads back (CRC-checked)."""
        try:
            with zipfile.ZipFile(self.model) as archive:
                return archive.testzip() is None
        except (OSError, zipfile.BadZipFile, EOFError):
            return False

    def load_model(self, family: str, compile: bool = False):
        """The trained `keras.Model` of `family`, for sampling and export: float32 even when it was
        trained with mixed precision, and not compiled; with `compile`, as it was saved, with its
        optimizer's state. A damaged file, or weights that are not finite (a diverged run), are
        refused with one line. A LoRA run's folder without its model.keras is rebuilt from its base and
        its adapter (`training.finetune.assemble`)."""
        import keras
        import numpy as np

        from .families import get_family

        get_family(family)  # imports, and so registers, the family's Keras classes
        self.config(family)
        if not self.model.exists() and self.adapter.exists() and "base" in self.record():
            from .training.finetune import assemble

            return assemble(self, ModelDir(self.record()["base"]["path"]), family)
        if not self.model.exists():
            raise AigcError(
                f"{self.path} has no model.keras yet: its training has not finished "
                "(rerun the same train command to resume it)"
            )
        if not self.model_is_whole():
            raise AigcError(f"{self.model} is damaged (not a whole .keras archive); rerun the same train command "
                            "to rebuild it from the last checkpoint")
        from .precision import float32_model

        try:
            model = keras.models.load_model(self.model, compile=compile)
        except Exception:  # its text names Keras internals
            raise AigcError(f"cannot load {self.model}: it is not a model this version of aigc-keras can read "
                            "(train it again, or use the version that trained it)") from None
        model = model if compile else float32_model(model)
        if not all(np.all(np.isfinite(w)) for w in model.get_weights()):
            raise AigcError(f"{self.model} holds weights that are not finite (a diverged run); retrain it with a "
                            "lower learning rate")
        return model

    def clear(self) -> None:
        """Remove what training wrote here (model, config, history, checkpoints, logs, samples), and
        nothing else."""
        folders.clear(self.path, folders.MODEL)
