"""Distributed correctness the families rely on: strategy resolution, loss-scaled steps under
MirroredStrategy, counting skipped steps, and replica-distinct dropout (on two logical CPUs)."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from aigc_keras.networks import ReplicaDropout
from aigc_keras.precision import CountingLossScaleOptimizer, training_step
from aigc_keras.training import strategy as strategies
from aigc_keras.training.distributed import apply_gradients


@pytest.mark.parametrize("tf_config, expected", [
    (None, "default"),  # no GPUs here, no cluster
    ({"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 0}}, "default"),
    ({"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}, "multiworker"),
])
def test_auto_strategy_with_and_without_a_cluster(monkeypatch, tf_config, expected):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    assert strategies.strategy_name("auto") == expected
    assert strategies.strategy_name("mirrored") == "mirrored"
    if expected == "default":
        assert strategies.resolve_strategy("auto") is tf.distribute.get_strategy()


def test_auto_picks_mirrored_on_several_gpus(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    monkeypatch.setattr(tf.config, "list_logical_devices",
                        lambda kind=None: ["gpu0", "gpu1"] if kind == "GPU" else ["cpu"])
    assert strategies.strategy_name("auto") == "mirrored"


def _fp16_step(strategy, bad_replica):
    """One loss-scaled step of y = w x on two replicas, where replica `bad_replica` sees an inf input.
    Returns (weights per replica, steps_taken, dynamic scale) afterwards."""
    with strategy.scope():
        w = keras.Variable(np.ones(3, np.float32))
        optimizer = CountingLossScaleOptimizer(keras.optimizers.SGD(0.1))
        optimizer.build([w])

    def step(x):
        with tf.GradientTape() as tape:
            loss = optimizer.scale_loss(tf.nn.compute_average_loss(tf.reduce_sum(w * x, axis=1)))
        apply_gradients(optimizer, tape.gradient(loss, [w]), [w])

    inputs = np.ones((2, 3), np.float32)
    inputs[bad_replica, 0] = np.inf
    per_replica = strategy.experimental_distribute_values_from_function(
        lambda ctx: tf.constant(inputs[ctx.replica_id_in_sync_group:ctx.replica_id_in_sync_group + 1]))
    strategy.run(tf.function(step), args=(per_replica,))
    return ([v.numpy() for v in strategy.experimental_local_results(w)], int(optimizer.steps_taken.numpy()),
            float(optimizer.dynamic_scale.numpy()), int(optimizer.iterations.numpy()))


@pytest.mark.parametrize("bad_replica", [0, 1])
def test_an_inf_on_any_replica_skips_the_loss_scaled_step_on_every_replica(two_cpus, bad_replica):
    weights, steps_taken, scale, applied = _fp16_step(two_cpus, bad_replica)
    for w in weights:
        np.testing.assert_array_equal(w, np.ones(3))  # skipped on both replicas, not applied on one
    assert applied == 0 and steps_taken == 1  # the skipped step still counts for noise and EMA
    assert scale == 32768.0 / 2  # and the loss scale halved


def test_training_step_counts_skipped_steps_only_for_loss_scaled_optimizers():
    plain = keras.optimizers.Adam()
    plain.build([keras.Variable(np.zeros(2, np.float32))])
    assert training_step(plain) is plain.iterations
    scaled = CountingLossScaleOptimizer(keras.optimizers.Adam())
    scaled.build([keras.Variable(np.zeros(2, np.float32))])
    assert training_step(scaled) is scaled.steps_taken


def test_replica_dropout_draws_different_masks_on_each_replica(two_cpus):
    with two_cpus.scope():
        layer = ReplicaDropout(0.5, seed=1)
    ones = tf.ones([1, 256])

    @tf.function
    def masks():
        return two_cpus.run(lambda: layer(ones, training=True))

    first, second = (t.numpy() for t in two_cpus.experimental_local_results(masks()))
    assert set(np.unique(first)) <= {0.0, 2.0} and 0.3 < (first > 0).mean() < 0.7
    assert not np.array_equal(first, second)  # keras.layers.Dropout gives both replicas the same mask
    again = two_cpus.experimental_local_results(masks())[0].numpy()
    assert not np.array_equal(first, again)  # and a new mask each call
    np.testing.assert_array_equal(layer(ones, training=False), ones)
