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
