"""Data layer shared by every family: dataset specs in, `tf.data` pipelines out."""

from .images import ImageData, load_images

__all__ = ["ImageData", "load_images"]
