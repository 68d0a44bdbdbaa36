"""Data layer shared by every family: dataset specs in, `tf.data` pipelines out."""

from .images import ImageData, load_images
from .text import TextData, TokenWindows, load_text

__all__ = ["ImageData", "load_images", "TextData", "TokenWindows", "load_text"]
