"""The layout of a trained model's folder, and reading it back with clear errors.

    model.keras     the trained model (reloads with keras.models.load_model, no custom code)
    config.json     family, options (the config dataclass), data description, versions
    history.json    one entry of metrics per finished epoch
    checkpoints/    full training state after the last finished epoch (resume, train on)
    logs/           TensorBoard
    samples/        a preview per epoch (PNG for image families)
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .. import fileio
from ..errors import AigcError, reason


class ModelDir:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.model = self.path / "model.keras"
        self.config_file = self.path / "config.json"
        self.history_file = self.path / "history.json"
        self.checkpoints = self.path / "checkpoints"
        self.logs = self.path / "logs"
        self.samples = self.path / "samples"

    def run(self) -> dict:
        """The contents of config.json; an `AigcError` if this is not a model folder."""
        if not self.path.is_dir():
            raise AigcError(f"model folder {self.path} does not exist (train one with `aigc-keras train`)")
        if not self.config_file.exists():
            raise AigcError(f"{self.path} is not a model folder: it has no config.json")
        try:
            run = fileio.read_json(self.config_file)
            run["family"], run["config"]
        except (ValueError, KeyError, TypeError):
            raise AigcError(f"{self.config_file} is corrupt") from None
        return run

    def config(self, family: str | None = None):
        """The saved config dataclass; checks the family when one is expected."""
        from ..families import config_class

        run = self.run()
        if family is not None and run["family"] != family:
            raise AigcError(f"{self.path} holds a {run['family']} model, not a {family} model")
        return config_class(run["family"]).from_dict(run["config"])

    def history(self) -> list[dict]:
        if not self.history_file.exists():
            return []
        try:
            return list(fileio.read_json(self.history_file))
        except ValueError:
            raise AigcError(f"{self.history_file} is corrupt") from None

    def load_model(self, family: str):
        """The trained `keras.Model` of `family`, for sampling and export (not compiled; float32
        even when it was trained with mixed precision)."""
        import keras

        from .. import models  # noqa: F401  (registers the Keras classes)

        self.config(family)
        if not self.model.exists():
            raise AigcError(
                f"{self.path} has no model.keras yet: its training has not finished "
                "(rerun the same train command to resume it)"
            )
        from .precision import float32_model

        try:
            return float32_model(keras.models.load_model(self.model, compile=False))
        except Exception as e:
            raise AigcError(f"cannot load {self.model}: {reason(e)}") from None

    def clear(self) -> None:
        """Remove everything a training run writes here (and nothing else)."""
        for path in (self.model, self.config_file, self.history_file):
            path.unlink(missing_ok=True)
        for folder in (self.checkpoints, self.logs, self.samples):
            shutil.rmtree(folder, ignore_errors=True)
