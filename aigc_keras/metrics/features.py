"""Feature networks for the image metrics: the evaluation classifier, or InceptionV3 pooled features.

Which one fits depends on the data: FID/KID numbers are only comparable in one feature space,
and ImageNet features say little about 28x28 digits. `feature_net` chooses, and says so.
"""

from __future__ import annotations

import importlib.resources

import keras
import numpy as np
import tensorflow as tf

from ..classifier.model import FEATURE_LAYER
from ..errors import AigcError
from ..progress import task

SHIPPED = {"mnist": "mnist-classifier.keras"}  # data spec -> classifier in metrics/weights/
BATCH = 500


class FeatureNet:
    """uint8 images [N, H, W, C] -> (features float64 [N, D], class probabilities [N, K] or None)."""

    def __init__(self, name: str, fn, has_probs: bool, image_shape=None):
        self.name = name
        self._fn = tf.function(fn)
        self.has_probs = has_probs
        self.image_shape = None if image_shape is None else tuple(image_shape)

    def check(self, image_shape) -> None:
        """Refuse images of `image_shape` that this network cannot take (before any are drawn)."""
        if self.image_shape is not None and tuple(image_shape) != self.image_shape:
            raise AigcError(f"{self.name} takes images {'x'.join(map(str, self.image_shape))}, "
                            f"got {'x'.join(map(str, image_shape))}")

    def __call__(self, images: np.ndarray):
        images = np.asarray(images)
        self.check(images.shape[1:])
        features, probs = [], []
        with task(f"features of {len(images)}", len(images), " images") as bar:
            for start in range(0, len(images), BATCH):
                f, p = self._fn(tf.constant(images[start:start + BATCH]))
                features.append(f.numpy())
                probs.append(p.numpy())
                bar.advance(len(f))
        features = np.concatenate(features).astype(np.float64)
        return features, (np.concatenate(probs).astype(np.float64) if self.has_probs else None)


def classifier_features(model: keras.Model, name: str) -> FeatureNet:
    """The `features` layer and softmax of an evaluation classifier (`train classifier`)."""
    head = keras.Model(model.inputs, [model.get_layer(FEATURE_LAYER).output, model.outputs[0]])

    def fn(images):
        features, logits = head(tf.cast(images, tf.float32) / 127.5 - 1.0, training=False)
        return features, tf.nn.softmax(logits)

    return FeatureNet(name, fn, True, model.inputs[0].shape[1:])


def inception_features() -> FeatureNet:
    """InceptionV3's 2048-d average-pooled features (ImageNet weights), any image size or channels;
    None where its weights cannot be loaded (offline, say)."""
    try:
        net = keras.applications.InceptionV3(include_top=False, pooling="avg", weights="imagenet",
                                             input_shape=(299, 299, 3))
    except Exception:  # a failed download raises whatever its transport raises
        return None

    def fn(images):
        x = tf.image.resize(tf.cast(images, tf.float32), (299, 299))
        if x.shape[-1] == 1:
            x = tf.repeat(x, 3, axis=-1)
        return net(x / 127.5 - 1.0, training=False), tf.zeros([tf.shape(x)[0], 0])

    return FeatureNet("InceptionV3 pool (ImageNet)", fn, False)


PIXEL_SIDE = 16


def pixel_features(why: str) -> FeatureNet:
    """Raw pixels, area-averaged to at most 16x16 per channel: the fallback when no feature network fits
    the data (`why` says which was missing). FID in pixels tells near from far, but its numbers compare
    only with other pixel FIDs."""
    def fn(images):
        x = tf.cast(images, tf.float32) / 255.0
        side = (min(x.shape[1], PIXEL_SIDE), min(x.shape[2], PIXEL_SIDE))
        x = tf.image.resize(x, side, method="area")
        return tf.reshape(x, [tf.shape(x)[0], -1]), tf.zeros([tf.shape(x)[0], 0])

    return FeatureNet(f"raw pixels, averaged to {PIXEL_SIDE}x{PIXEL_SIDE} ({why}; compare only with other pixel "
                      "FIDs)", fn, False)


def shipped_classifier(spec: str) -> keras.Model:
    """The classifier the package ships for data spec `spec`."""
    root = importlib.resources.files("aigc_keras.metrics") / "weights" / SHIPPED[spec]
    with importlib.resources.as_file(root) as path:
        return keras.models.load_model(path, compile=False)


def feature_net(data_spec: str, classifier_dir: str | None = None) -> FeatureNet:
    """The feature space for data `data_spec`: `classifier_dir` if given, else the shipped classifier
    for that data, else InceptionV3 (ImageNet), else raw pixels (named as such)."""
    if classifier_dir:
        from ..model_dir import ModelDir

        return classifier_features(ModelDir(classifier_dir).load_model("classifier"),
                                   f"classifier {classifier_dir}")
    if data_spec in SHIPPED:
        return classifier_features(shipped_classifier(data_spec), f"shipped {data_spec} classifier")
    return inception_features() or pixel_features(
        "InceptionV3's ImageNet weights are not here, and no --classifier was given: "
        "`aigc-keras train classifier --data SPEC` makes one from labelled data")
