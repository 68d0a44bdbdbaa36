"""What every family's networks share."""

from __future__ import annotations

import keras


class ConfigNetwork(keras.Model):
    """A functional network whose config is its constructor arguments, kept as attributes."""

    config_keys: tuple[str, ...] = ()

    def get_config(self):
        return {"name": self.name, **{key: getattr(self, key) for key in self.config_keys}}


def ema_copy(network: keras.Model, name: str) -> keras.Model:
    """A fresh network of the same architecture holding `network`'s current weights."""
    copy = type(network).from_config({**network.get_config(), "name": name})
    copy.set_weights(network.get_weights())
    return copy


class OneOptimizerModel(keras.Model):
    """A model compiled with one optimizer that its `.keras` file saves and restores."""

    def get_compile_config(self):
        if not self.compiled:
            return None
        return {"optimizer": keras.optimizers.serialize(self.optimizer)}

    def compile_from_config(self, config):
        self.compile(optimizer=keras.optimizers.deserialize(config["optimizer"]))
