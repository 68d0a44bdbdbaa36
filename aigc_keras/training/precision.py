"""Keras mixed precision for training; sampling and exports always run in float32."""

from __future__ import annotations

import contextlib

import keras


@contextlib.contextmanager
def dtype_policy(name: str):
    """Build models under the global dtype policy `name` (float32, mixed_float16, mixed_bfloat16)."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def loss_scaled(optimizer, precision: str):
    """`optimizer`, wrapped in a dynamic `LossScaleOptimizer` for mixed_float16 (float16 gradients
    underflow without it). Custom train_steps take gradients of `optimizer.scale_loss(loss)`;
    `apply` unscales them and skips steps whose gradients are not finite."""
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def float32_model(model: keras.Model) -> keras.Model:
    """`model` itself if it computes in float32, else a float32 copy with the same weights."""
    if not any(layer.dtype_policy.name.startswith("mixed") for layer in model._flatten_layers()):
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    with dtype_policy("float32"):
        copy = keras.saving.deserialize_keras_object(config)
    copy.set_weights(model.get_weights())
    return copy


def _float32_config(config):
    if isinstance(config, dict):
        name = str(config.get("config", {}).get("name", ""))
        if config.get("class_name") == "DTypePolicy" and name.startswith("mixed"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float32_config(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_config(value) for value in config]
    return config
