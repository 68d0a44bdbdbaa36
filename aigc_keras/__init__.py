"""aigc-keras: generative models (GAN, autoregressive, diffusion) as trainable, exportable Keras 3 models.

Importing the package is cheap: TensorFlow is only imported by the modules that need it.
"""

__version__ = "0.1.0"
