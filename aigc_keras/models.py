"""Import this module to register every family's Keras classes.

After `import aigc_keras.models`, `keras.models.load_model("saved_models/gan/model.keras")`
needs no `custom_objects`. (The package itself stays light: it does not import TensorFlow.)
"""

from .diffusion.model import DiffusionModel
from .diffusion.unet import SinusoidalEmbedding, UNet
from .gan.model import GAN
from .gan.networks import Discriminator, Generator
from .text.models import LSTMLanguageModel, TransformerLanguageModel

__all__ = ["GAN", "Generator", "Discriminator", "DiffusionModel", "UNet", "SinusoidalEmbedding",
           "LSTMLanguageModel", "TransformerLanguageModel"]
