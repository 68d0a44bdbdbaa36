import numpy as np
import pytest
import tensorflow as tf

from aigc_keras.errors import AigcError
from aigc_keras.gan.losses import (
    d_loss_hinge,
    d_loss_ns,
    d_loss_wgan,
    g_loss_ns,
    gradient_penalty,
)
from aigc_keras.gan.networks import Discriminator, Generator, upsampling_plan


@pytest.mark.parametrize(
    "shape, plan", [((28, 28, 1), (7, 7, 2)), ((32, 32, 3), (4, 4, 3)), ((64, 48, 3), (8, 6, 3))]
)
def test_networks_follow_the_image_shape(shape, plan):
    assert upsampling_plan(shape) == plan
    g = Generator(16, shape, base_filters=8)
    d = Discriminator(shape, base_filters=8)
    images = g(np.zeros((2, 16), np.float32))
    assert images.shape == (2, *shape)
    assert d(images).shape == (2, 1)
    # DCGAN widths: the generator's first feature map has base_filters * 2^(stages - 1) channels.
    assert g.get_layer(index=2).output.shape[-1] == 8 * 2 ** (plan[2] - 1)


def test_conditional_networks_use_the_label():
    g = Generator(8, (16, 16, 1), base_filters=8, num_classes=3)
    d = Discriminator((16, 16, 1), base_filters=8, num_classes=3)
    z = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    same_z = np.repeat(z[:1], 3, axis=0)
    images = g([same_z, np.arange(3, dtype=np.int32)]).numpy()
    assert not np.allclose(images[0], images[1])
    logits = d([np.repeat(images[:1], 3, axis=0), np.arange(3, dtype=np.int32)]).numpy()
    assert not np.allclose(logits[0], logits[1])


def test_unsupported_shape():
    with pytest.raises(AigcError, match="30x30"):
        upsampling_plan((30, 30, 1))


def _softplus(x):
    return np.log1p(np.exp(x))


def test_ns_loss_is_cross_entropy_with_one_sided_smoothing():
    real, fake = np.array([2.0, -1.0, 0.3]), np.array([0.5, -3.0, 1.0])
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    for s in (0.0, 0.1):
        want = -(1 - s) * np.log(sig(real)) - s * np.log(1 - sig(real)) - np.log(1 - sig(fake))
        np.testing.assert_allclose(d_loss_ns(real, fake, s), want, rtol=1e-6)
    np.testing.assert_allclose(g_loss_ns(fake), -np.log(sig(fake)), rtol=1e-6)


def test_hinge_and_wasserstein_losses():
    real, fake = np.array([2.0, 0.5]), np.array([-2.0, 0.2])
    np.testing.assert_allclose(d_loss_hinge(real, fake), [0.0, 0.5 + 1.2])
    np.testing.assert_allclose(d_loss_wgan(real, fake), [-4.0, -0.3])


def test_gradient_penalty_of_a_linear_critic():
    w = tf.constant(np.random.default_rng(0).standard_normal((4, 4, 1)), tf.float32)
    critic = lambda x: tf.reduce_sum(x * w, axis=[1, 2, 3])  # noqa: E731 - gradient is w everywhere
    real = tf.random.normal((3, 4, 4, 1))
    fake = tf.random.normal((3, 4, 4, 1))
    gp = gradient_penalty(critic, real, fake, tf.constant([0.0, 0.5, 1.0]))
    want = (np.linalg.norm(w.numpy()) - 1.0) ** 2
    np.testing.assert_allclose(gp.numpy(), [want] * 3, rtol=1e-5)


def test_networks_and_an_uncompiled_gan_round_trip_through_keras_files(tmp_path):
    import keras

    from aigc_keras.gan.model import GAN

    g = Generator(8, (16, 16, 1), base_filters=8, num_classes=2, name="g")
    assert Generator.from_config(g.get_config()).get_config() == g.get_config()
    gan = GAN(g, Discriminator((16, 16, 1), base_filters=8, num_classes=2), loss="hinge")
    gan.save(tmp_path / "gan.keras")
    loaded = keras.models.load_model(tmp_path / "gan.keras")
    z, labels = np.ones((2, 8), np.float32), np.array([0, 1], np.int32)
    np.testing.assert_allclose(loaded.draw(z, labels), gan.draw(z, labels), atol=1e-6)
    assert loaded.objective == "hinge" and not loaded.compiled


def test_minibatch_stddev_appends_each_groups_mean_feature_spread():
    from aigc_keras.gan.networks import MinibatchStdDev

    x = np.random.default_rng(0).standard_normal((8, 3, 3, 2)).astype(np.float32)
    out = MinibatchStdDev(4)(x).numpy()
    assert out.shape == (8, 3, 3, 3)
    np.testing.assert_array_equal(out[..., :2], x)
    for group in (slice(0, 4), slice(4, 8)):  # consecutive groups: a replica's half of the batch is whole groups
        want = x[group].std(axis=0).mean()
        np.testing.assert_allclose(out[group, ..., 2], want, rtol=1e-4)
