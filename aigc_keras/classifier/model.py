"""The evaluation classifier: a small CNN whose `features` layer is the feature space of FID, KID
and precision/recall for small images, trained with sparse cross-entropy in a custom `train_step`."""

from __future__ import annotations

import keras
import tensorflow as tf

from ..networks import ConfigNetwork, OneOptimizer, ReplicaDropout
from ..training.distributed import apply_gradients

FEATURE_LAYER = "features"  # the layer whose output is the feature space of FID, KID and precision/recall


@keras.saving.register_keras_serializable("aigc_keras")
class Classifier(OneOptimizer, ConfigNetwork):
    """images in [-1, 1] [N, H, W, C] -> class logits [N, K]; layer `features` is the embedding.

    Two conv blocks, the feature layer, dropout (different masks on each replica), the logits.
    `fit` logs `loss` and `accuracy` (and `val_` of both), averaged over the global batch.
    """

    config_keys = ("image_shape", "num_classes", "filters", "feature_dim", "dropout")

    def __init__(self, image_shape, num_classes, filters=32, feature_dim=128, dropout=0.3, **kwargs):
        image_shape = tuple(image_shape)
        x = inputs = keras.Input(image_shape, name="images")
        for width in (filters, 2 * filters):
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x)
            x = keras.layers.MaxPooling2D()(x)
        features = keras.layers.Dense(feature_dim, activation="relu", name=FEATURE_LAYER)(keras.layers.Flatten()(x))
        logits = keras.layers.Dense(num_classes, name="logits")(ReplicaDropout(dropout)(features))
        super().__init__(inputs=inputs, outputs=logits, **kwargs)
        self.image_shape, self.num_classes, self.filters = image_shape, num_classes, filters
        self.feature_dim, self.dropout = feature_dim, dropout
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name="accuracy")

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def _per_example(self, images, labels, training):
        logits = tf.cast(self(images, training=training), tf.float32)
        labels = tf.cast(labels, tf.int32)
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits)
        correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32), labels), tf.float32)
        return loss, correct

    def train_step(self, data):
        images, labels = data
        with tf.GradientTape() as tape:
            loss, correct = self._per_example(images, labels, training=True)
            scaled = self.optimizer.scale_loss(tf.nn.compute_average_loss(loss))
        apply_gradients(self.optimizer, tape.gradient(scaled, self.trainable_weights), self.trainable_weights)
        return self._metrics_from(loss, correct)

    def test_step(self, data):
        return self._metrics_from(*self._per_example(*data, training=False))

    def _metrics_from(self, loss, correct):
        self.loss_tracker.update_state(loss)
        self.accuracy_tracker.update_state(correct)
        return {"loss": self.loss_tracker.result(), "accuracy": self.accuracy_tracker.result()}
