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


@keras.saving.register_keras_serializable("aigc_keras")
class CountingLossScaleOptimizer(keras.optimizers.LossScaleOptimizer):
    """A dynamic loss-scale optimizer that also counts every step it is given, `steps_taken`:
    `iterations` counts only the applied ones, and a skipped step (gradients not finite) must not
    repeat the noise or the EMA step of the step before it."""

    def build(self, var_list):
        self.steps_taken = self.add_variable(shape=(), dtype="int64", initializer="zeros",
                                             aggregation="only_first_replica", name="steps_taken")
        super().build(var_list)

    def apply(self, grads, trainable_variables=None):
        super().apply(grads, trainable_variables)
        self.steps_taken.assign_add(1)


def loss_scaled(optimizer, precision: str):
    """`optimizer`, wrapped in a dynamic loss-scale optimizer for mixed_float16 (float16 gradients
    underflow without it). Custom train_steps take gradients of `optimizer.scale_loss(loss)`;
    `apply` unscales them and skips steps whose gradients are not finite (see
    `training.distributed.apply_gradients` for the same decision on every replica)."""
    if precision == "mixed_float16":
        return CountingLossScaleOptimizer(optimizer)
    return optimizer


def training_step(optimizer):
    """The number of train steps run so far: `steps_taken` of a loss-scaled optimizer, else `iterations`."""
    counter = getattr(optimizer, "steps_taken", None)
    return optimizer.iterations if counter is None else counter


def _layers(layer):
    """`layer` and every layer inside it, through the public `layers` of models."""
    yield layer
    for inner in getattr(layer, "layers", []):
        yield from _layers(inner)


def float32_model(model: keras.Model) -> keras.Model:
    """`model` itself if it computes in float32, else a float32 copy with the same weights."""
    if not any(layer.dtype_policy.name.startswith("mixed") for layer in _layers(model)):
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
