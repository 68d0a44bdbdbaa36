"""The package's version, and the versions a saved model or an export records (TensorFlow-free to import)."""

__version__ = "0.1.0"


def versions() -> dict:
    """{"aigc_keras", "tensorflow", "keras"}: what wrote a config.json or a metadata.json."""
    import keras
    import tensorflow as tf

    return {"aigc_keras": __version__, "tensorflow": tf.__version__, "keras": keras.__version__}
