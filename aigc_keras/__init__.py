"""aigc-keras: generative models (GAN, autoregressive, diffusion, VAE) as trainable, exportable Keras 3 models.

    import aigc_keras as ak
    model = ak.DiffusionModel.from_config(ak.DiffusionConfig())   # the model `aigc-keras train diffusion` builds
    model.fit(images, labels, epochs=2)                            # uint8 or float arrays, or a tf.data.Dataset
    pictures = model.generate(16, seed=0, labels=7)                # uint8 [16, 28, 28, 1]
    lm = ak.load("saved_models/text")                              # any model folder or .keras file
    print(lm.generate("ROMEO:", length=200, temperature=0.8, top_k=40, seed=1))
    ak.train(ak.GANConfig(epochs=1), "runs/gan")                   # the CLI's training: resume, TensorBoard

Importing the package is cheap: TensorFlow is imported when a name that needs it is first used (or
when Keras is imported: then every family's classes are registered, so `keras.models.load_model`
reloads a saved `.keras` file with no `custom_objects`).
"""

import importlib

from . import families
from .version import __version__

_PUBLIC = {
    "GAN": "aigc_keras.gan.model",
    "DiffusionModel": "aigc_keras.diffusion.model",
    "VAE": "aigc_keras.vae.model",
    "LanguageModel": "aigc_keras.text.models",
    "LSTMLanguageModel": "aigc_keras.text.models",
    "TransformerLanguageModel": "aigc_keras.text.models",
    "GANConfig": "aigc_keras.gan.config",
    "DiffusionConfig": "aigc_keras.diffusion.config",
    "VAEConfig": "aigc_keras.vae.config",
    "TextConfig": "aigc_keras.text.config",
    "ClassifierConfig": "aigc_keras.classifier.config",
    "load": "aigc_keras.api",
    "load_data": "aigc_keras.api",
    "export_model": "aigc_keras.api",
    "train": "aigc_keras.api",
    "AigcError": "aigc_keras.errors",
}
__all__ = ["__version__", *_PUBLIC]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'aigc_keras' has no attribute {name!r}")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))


families.register_with_keras()
