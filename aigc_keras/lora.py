"""LoRA (Hu et al. 2021) through Keras' own `enable_lora`: which layers take it, freezing the rest, the
weights an ordinary model takes once merged, and the adapter on its own.

Keras gives LoRA to `Dense`, `EinsumDense` (attention's projections), `Embedding` and the convolutions,
not to the transposed convolutions nor the LSTM: those layers of a model get adapters, every other
weight is frozen, and batch normalisation runs on its moving statistics. A LoRA layer saved by Keras
writes its merged kernel, and one loaded zeroes its adapter (keras `Dense.save_own_variables`): a
checkpoint therefore also carries the adapted layers' raw values (`save_raw`, `restore_raw`).
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import keras
import numpy as np

ADAPTER_NAMES = ("lora_kernel_a", "lora_kernel_b", "lora_embeddings_a", "lora_embeddings_b")
BASE_NAMES = ("kernel", "embeddings")  # the variable an adapter adds to
RAW_GROUP = "aigc_keras_lora_raw"  # inside a checkpoint: the adapted layers' variables as they are


def layers_of(model) -> list:
    """Every layer inside `model` once, depth first: through the public `layers` of models and the
    projections of attention."""
    found, seen = [], set()

    def visit(layer):
        if id(layer) in seen:
            return
        seen.add(id(layer))
        found.append(layer)
        for inner in getattr(layer, "layers", []):
            visit(inner)
        if isinstance(layer, keras.layers.MultiHeadAttention):
            for inner in (layer.query_dense, layer.key_dense, layer.value_dense, layer.output_dense):
                visit(inner)

    visit(model)
    return found


def adaptable(model, whole=()) -> list:
    """The layers of `model` that Keras gives LoRA to, except those in `whole` (trained in full)."""
    skip = {id(layer) for layer in whole}
    return [layer for layer in layers_of(model)
            if hasattr(layer, "enable_lora") and layer.built and layer.weights and id(layer) not in skip]


def adapted(model) -> list:
    """The layers of `model` whose LoRA is enabled, in a fixed order."""
    return [layer for layer in layers_of(model) if getattr(layer, "lora_enabled", False)]


def enable(model, rank: int, alpha: float | None = None, whole=()) -> list:
    """Add adapters of `rank` to every adaptable layer of `model` and freeze every other weight (the
    layers in `whole`, a new label embedding say, train in full); return the adapted layers. Call it
    inside the strategy scope the model was built in, then compile again (the optimizer takes the
    adapters)."""
    layers = adaptable(model, whole)
    for layer in layers:
        layer.enable_lora(rank, lora_alpha=alpha)
    free = {id(v) for layer in whole for v in layer.weights}
    for variable in model.weights:
        if variable.name not in ADAPTER_NAMES and id(variable) not in free:
            variable.trainable = False
    for layer in layers_of(model):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False  # its moving statistics are base weights too
    return layers


def merged_weights(model) -> list[np.ndarray]:
    """`model`'s weights as the same model without LoRA holds them (`set_weights` of a plain copy):
    each adapted kernel merged with its adapter."""
    merged = {}
    for layer in adapted(model):
        (base,) = [v for v in layer.weights if v.name in BASE_NAMES]
        value = layer.embeddings if base.name == "embeddings" else layer.kernel
        merged[id(base)] = keras.ops.convert_to_numpy(value)
    return [merged.get(id(v), keras.ops.convert_to_numpy(v)) for v in model.weights if v.name not in ADAPTER_NAMES]


def save_raw(model, path: str | Path) -> None:
    """Add the adapted layers' variables, as they are, to the Keras weights file `path`."""
    layers = adapted(model)
    if layers:
        with h5py.File(path, "a") as f:
            _write(f.create_group(RAW_GROUP), [layer.weights for layer in layers])


def restore_raw(model, path: str | Path) -> None:
    """After `model.load_weights(path)`: the adapted layers' variables as `save_raw` wrote them."""
    layers = adapted(model)
    if layers:
        with h5py.File(path, "r") as f:
            _assign(_read(f[RAW_GROUP]), [layer.weights for layer in layers], "checkpoint's LoRA layers")


def save_adapter(path: str | Path, model, whole=(), **attrs) -> None:
    """Write the adapter of `model` on its own: every adapted layer's A and B, the weights of the layers
    in `whole`, and `attrs` (JSON values: its rank, alpha, base, ...)."""
    with h5py.File(path, "w") as f:
        for name, variables in _adapter_variables(model, whole).items():
            _write(f.create_group(name), variables)
        f.attrs["aigc_keras"] = json.dumps(attrs)


def read_adapter(path: str | Path) -> tuple[dict, dict[str, list[list[np.ndarray]]]]:
    """(attrs, {"adapters": [[A, B] per adapted layer], "whole": [weights per whole layer]}) of an adapter
    file; raises OSError, KeyError or ValueError when it is not one."""
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["aigc_keras"]), {name: _read(f[name]) for name in ("adapters", "whole")}


def load_adapter_weights(arrays: dict, model, whole=()) -> None:
    """Assign what `read_adapter` read to `model` (adapted like the model that saved it); a ValueError
    when the layers or shapes differ."""
    for name, variables in _adapter_variables(model, whole).items():
        _assign(arrays[name], variables, f"adapter's {name}")


def _adapter_variables(model, whole) -> dict[str, list[list]]:
    return {"adapters": [[v for v in layer.weights if v.name in ADAPTER_NAMES] for layer in adapted(model)],
            "whole": [list(layer.weights) for layer in whole]}


def _write(group, variables: list[list]) -> None:
    """Each layer's variables as datasets "i/j" of `group`."""
    for i, layer_variables in enumerate(variables):
        for j, variable in enumerate(layer_variables):
            group[f"{i}/{j}"] = keras.ops.convert_to_numpy(variable)


def _read(group) -> list[list[np.ndarray]]:
    """What `_write` wrote in `group`."""
    return [[group[str(i)][str(j)][()] for j in range(len(group[str(i)]))] for i in range(len(group))]


def _assign(values: list[list[np.ndarray]], variables: list[list], what: str) -> None:
    """Assign `values` (as `_read` gives them) to `variables`; a ValueError when they do not fit."""
    fits = len(values) == len(variables) and all(
        len(v) == len(w) and all(a.shape == tuple(b.shape) for a, b in zip(v, w)) for v, w in zip(values, variables))
    if not fits:
        raise ValueError(f"the {what} do not fit this model")
    for layer_values, layer_variables in zip(values, variables):
        for value, variable in zip(layer_values, layer_variables):
            variable.assign(value)
