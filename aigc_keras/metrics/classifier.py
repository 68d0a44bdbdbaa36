"""The evaluation classifier: a small CNN trained with `aigc-keras train classifier`.

Its `features` layer is the feature space of FID, KID and precision/recall for data where
InceptionV3 (ImageNet, 299x299 colour) does not fit, such as 28x28 digits, and its class
probabilities give mode coverage. The package ships one trained on the embedded MNIST.
"""

from __future__ import annotations

import keras

from ..errors import AigcError
from ..training.family import Family, data_epochs
from ..training.precision import loss_scaled
from .config import ClassifierConfig

FEATURE_LAYER = "features"


def build_classifier(image_shape, num_classes: int, filters: int = 32, feature_dim: int = 128,
                     dropout: float = 0.3) -> keras.Model:
    """images in [-1, 1] [N, H, W, C] -> class logits; layer `features` is the embedding."""
    x = inputs = keras.Input(tuple(image_shape), name="images")
    for width in (filters, 2 * filters):
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(feature_dim, activation="relu", name=FEATURE_LAYER)(x)
    logits = keras.layers.Dense(num_classes, name="logits")(keras.layers.Dropout(dropout)(features))
    return keras.Model(inputs, logits, name="classifier")


class ClassifierFamily(Family):
    name = "classifier"
    config_class = ClassifierConfig

    def load_data(self, config: ClassifierConfig):
        from ..data import load_images

        data = load_images(config.data)
        if not data.num_classes:
            raise AigcError(f"{config.data} has no labels: a classifier needs labelled data")
        return data

    def dataset(self, config: ClassifierConfig, data, global_batch_size: int, start_epoch: int = 0):
        train, _ = data.split(config.validation_split)
        return data_epochs(config, train, global_batch_size, start_epoch)

    def validation_data(self, config: ClassifierConfig, data):
        _, validation = data.split(config.validation_split)
        return validation.eval_batches(256)

    def build(self, config: ClassifierConfig, data_info: dict) -> keras.Model:
        model = build_classifier(data_info["image_shape"], len(data_info["class_names"]), config.filters,
                                 config.feature_dim, config.dropout)
        model.compile(
            optimizer=loss_scaled(keras.optimizers.Adam(config.learning_rate), config.precision),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        )
        return model
