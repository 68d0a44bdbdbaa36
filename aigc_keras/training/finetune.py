"""Starting a run from a trained model (`--init-from`): every weight trains on, or with `--lora-rank`
only Keras' LoRA adapters do and the base stays bit for bit (`lora`).

The base's folder is only read. Its network options are the run's (`TrainConfig.inherit`); its data
must give images of its size and channels, and a new number of classes gets new label layers, trained
in full. A LoRA run saves its adapter on its own (`folders.ADAPTER_FILE`, beside the merged
model.keras), with the base's path and fingerprint, so that the folder can be rebuilt from them.
"""

from __future__ import annotations

from pathlib import Path

import keras

from .. import fileio, lora
from ..errors import AigcError, arg
from ..families import canonical
from ..networks import weights_fingerprint


class Base:
    """The model a run starts from: `md`, a `model_dir.ModelDir` (never written), named by the config's
    `option` (`--init-from`, or a teacher's `--distill-from`)."""

    def __init__(self, md, family: str, model_dir: str | Path | None = None, option: str = "init_from"):
        self.md, self.flag = md, f"{arg(option)} {md.path}"
        self.says = f"{option.replace('_', ' ')} {md.path}"  # what `train`'s lines about it start with
        if model_dir is not None and Path(model_dir).resolve() == md.path.resolve():
            raise AigcError(f"{self.flag} is the folder this run trains into: a base is never written, so train "
                            f"into another {arg('model_dir')}")
        try:
            self.record = md.record()
        except AigcError as e:
            raise AigcError(f"{arg(option)}: {e}") from None
        if canonical(self.record["family"]) != canonical(family):
            raise AigcError(f"{self.flag} holds a {canonical(self.record['family'])} model, not a "
                            f"{canonical(family)} model")
        self.config = md.config(family)
        self._model = None

    def settle(self, config) -> str:
        """Take the base's network options into `config`; return the line `train` says about it."""
        taken = config.inherit(self.config)
        how = (f"only LoRA adapters of rank {config.lora_rank} (alpha {config.lora_alpha:g}) "
               "train, on its frozen weights" if config.lora_rank else "every weight trains on")
        networks = ", ".join(taken) or "the default options"
        return f"{self.says}: its networks ({networks}) and weights; {how}, with a fresh optimizer"

    def check(self, family, config, data, data_info: dict) -> tuple[list[str], bool]:
        """(lines to say, whether the classes differ) of this run's data against the base's; an `AigcError`
        when the base's networks cannot take it."""
        then = self.record["data"]
        if "image_shape" in then and list(then["image_shape"]) != list(data_info["image_shape"]):
            shapes = ["x".join(map(str, d["image_shape"])) for d in (then, data_info)]
            raise AigcError(f"{self.flag} draws {shapes[0]} images and {config.data} holds {shapes[1]} ones: a "
                            "run from a trained model keeps its image size and channels")
        lines = family.fine_tune_notes(config, data, data_info, then)
        classes = [len(d.get("class_names") or []) for d in (then, data_info)]
        differ = bool(getattr(config, "conditional", True)) and classes[0] != classes[1]
        if differ:
            lines.append(f"{classes[1]} classes here, {classes[0]} in the base: new label layers, trained in full")
        return lines, differ

    def model(self, family):
        """The base's trained model (loaded once)."""
        if self._model is None:
            self._model = self.md.load_model(family.name)
        return self._model

    def fingerprint(self, family) -> str:
        return weights_fingerprint(self.model(family))

    def start(self, family, model, classes_differ: bool) -> list:
        """Copy the base's weights into `model` (built for this run, without LoRA); return the layers
        whose shapes differ (only when `classes_differ`: the label layers), left to their new
        initialisation to train in full."""
        base = self.model(family)
        mine, theirs = model.weights, base.weights
        owner = {}
        for layer in lora.layers_of(model):  # depth first: the innermost layer of a weight wins
            for variable in layer.weights:
                owner[id(variable)] = layer
        fresh = {}
        for variable, value in zip(mine, theirs):
            if tuple(variable.shape) != tuple(value.shape):
                fresh[id(owner[id(variable)])] = owner[id(variable)]
        if len(mine) != len(theirs) or (fresh and not classes_differ):
            raise AigcError(f"{self.flag}: its networks differ from this run's ({len(theirs)} weights there, "
                            f"{len(mine)} here): it was not trained by this version of aigc-keras")
        free = {id(v) for layer in fresh.values() for v in layer.weights}
        for variable, value in zip(mine, theirs):
            if id(variable) not in free:
                variable.assign(keras.ops.convert_to_numpy(value))
        return list(fresh.values())


def adapt(model, config, fresh) -> None:
    """LoRA on `model` as `config` says, then compile again so that its optimizers take the adapters;
    inside the strategy scope the model was built in."""
    lora.enable(model, config.lora_rank, config.lora_alpha, whole=fresh)
    model.compile_from_config(model.get_compile_config())


def merged(model, plain):
    """`plain` (the same model without LoRA, built fresh) holding `model`'s merged weights."""
    plain.set_weights(lora.merged_weights(model))
    return plain


def save_adapter(path: Path, model, fresh, config, base: dict) -> None:
    """The adapter of `model` in `path`, atomically, with the base it adapts (`base`: its path and
    fingerprint)."""
    with fileio.atomic_path(path, suffix=".h5") as tmp:
        lora.save_adapter(tmp, model, fresh, family=config.family, rank=config.lora_rank,
                          alpha=config.lora_alpha, base=base)


def assemble(md, base_md, family_name: str):
    """The model of LoRA folder `md` (a `model_dir.ModelDir`) rebuilt from its base in `base_md` and its
    adapter file: what its merged model.keras holds. A base other than the one the adapter was trained
    on is refused in one line."""
    from ..families import get_family
    from ..precision import dtype_policy

    try:
        attrs, arrays = lora.read_adapter(md.adapter)
        expected = attrs["base"]["fingerprint"]
    except (OSError, KeyError, ValueError, TypeError):
        raise AigcError(f"{md.adapter} is damaged (not an adapter that aigc-keras wrote)") from None
    family, record, config = get_family(family_name), md.record(), md.config(family_name)
    base = Base(base_md, family_name)
    found = base.fingerprint(family)
    if found != expected:
        raise AigcError(f"{md.adapter} adapts the model of weights fingerprint {expected}, and {base_md.path} now "
                        f"holds {found}: restore that base, or train the adapter again on this one")
    with dtype_policy("float32"):
        model = family.build(config, record["data"])
        fresh = base.start(family, model, classes_differ=True)
        lora.enable(model, config.lora_rank, config.lora_alpha, whole=fresh)
        try:
            lora.load_adapter_weights(arrays, model, whole=fresh)
        except ValueError:
            raise AigcError(f"{md.adapter} does not fit the networks of {base_md.path}: restore the base it was "
                            "trained on") from None
        return merged(model, family.build(config, record["data"]))
