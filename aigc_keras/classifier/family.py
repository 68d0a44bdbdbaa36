"""The evaluation classifier family: `aigc-keras train classifier`.

Its `features` layer is the feature space of FID, KID and precision/recall for data where
InceptionV3 (ImageNet, 299x299 colour) does not fit, such as 28x28 digits, and its class
probabilities give mode coverage. The package ships one trained on the embedded MNIST.
"""

from __future__ import annotations

import keras

from ..errors import AigcError
from ..training.family import Family, data_epochs
from .config import ClassifierConfig
from .model import Classifier


class ClassifierFamily(Family):
    name = "classifier"

    def load_data(self, config: ClassifierConfig):
        from ..data import load_images

        data = load_images(config.data)
        if not data.num_classes:
            raise AigcError(f"{config.data} has no labels: a classifier needs labelled data")
        return data

    def next_command(self, model_dir: str) -> str:
        return f"aigc-keras evaluate MODEL --classifier {model_dir}  (FID/KID of MODEL in this classifier's features)"

    def pass_steps(self, config: ClassifierConfig, data_info: dict) -> int:
        return max(int(data_info["num_examples"] * (1 - config.validation_split)) // config.batch_size, 1)

    def dataset(self, config: ClassifierConfig, data, global_batch_size: int, start_epoch: int = 0):
        train, _ = data.split(config.validation_split)
        return data_epochs(config, train, global_batch_size, start_epoch)

    def validation_data(self, config: ClassifierConfig, data):
        _, validation = data.split(config.validation_split)
        return validation.eval_batches(256)

    def build(self, config: ClassifierConfig, data_info: dict) -> keras.Model:
        model = Classifier(data_info["image_shape"], len(data_info["class_names"]), config.filters,
                           config.feature_dim, config.dropout, name="classifier")
        optimizer = self.adam(config, data_info, config.learning_rate)
        model.compile(optimizer=optimizer)
        return model
