import functools
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from conftest import build_model

from aigc_keras.gan.family import GANFamily
from aigc_keras.training.strategy import resolve_strategy

FAMILY = GANFamily()
build = functools.partial(build_model, FAMILY)


def first_batch(config):
    data = FAMILY.load_data(config)
    return next(iter(FAMILY.dataset(config, data, config.batch_size)[0]))


@pytest.mark.parametrize("loss", ["ns", "hinge", "wgan-gp"])
def test_fit_updates_discriminator_then_generator(gan_config, loss):
    config = gan_config(loss=loss, n_critic=2 if loss == "wgan-gp" else None)
    model, dataset = build(config)
    kernels = [w for net in (model.generator, model.discriminator) for w in net.trainable_weights
               if "kernel" in w.path]
    before = [w.numpy().copy() for w in kernels]
    history = model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0, shuffle=False).history
    assert int(model.g_optimizer.iterations.numpy()) == 3
    assert int(model.d_optimizer.iterations.numpy()) == 3 * config.n_critic
    assert len(kernels) >= 5 and all(not np.allclose(a, w.numpy()) for a, w in zip(before, kernels))
    expected = {"d_loss", "g_loss", "d_real", "d_fake"} | ({"gp"} if loss == "wgan-gp" else set())
    assert set(history) == expected
    assert all(np.isfinite(v[-1]) for v in history.values())


def test_wgan_gp_critic_steps_see_separate_real_batches(gan_config):
    config = gan_config(loss="wgan-gp")
    assert config.n_critic == 5
    real, labels = first_batch(gan_config(loss="wgan-gp", batch_size=8, steps_per_epoch=None))
    assert real.shape == (8, 5, 16, 16, 1) and labels.shape == (8, 5)
    assert not np.allclose(real[:, 0], real[:, 1])


def test_one_sided_label_smoothing_shifts_d_loss_by_s_times_mean_real_logit(gan_config):
    s = 0.2
    base, _ = build(gan_config())
    weights = base.get_weights()
    real, labels = first_batch(gan_config())
    real_logits = base.discriminator(real[:, 0]).numpy()
    losses = {}
    for smoothing in (0.0, s):
        model, _ = build(gan_config(label_smoothing=smoothing), weights=weights)
        losses[smoothing] = float(model.train_step((real, labels))["d_loss"])
    np.testing.assert_allclose(losses[s] - losses[0.0], s * real_logits.mean(), rtol=1e-4, atol=1e-6)


def test_ema_is_the_moving_average_and_is_used_for_sampling(gan_config):
    model, _ = build(gan_config(ema=True, ema_momentum=0.5))
    w0 = [w.numpy().copy() for w in model.generator.weights]
    np.testing.assert_array_equal(model.ema_generator.weights[0].numpy(), w0[0])
    batch = first_batch(gan_config())
    model.train_step(batch)  # step 1: warm-up decay min(0.5, 2 / 11)
    w1 = [w.numpy() for w in model.generator.weights]
    for ema, a, b in zip(model.ema_generator.weights, w0, w1):
        np.testing.assert_allclose(ema.numpy(), 2 / 11 * a + 9 / 11 * b, rtol=1e-5, atol=1e-7)
    model.g_optimizer.iterations.assign(100)
    ema0 = [w.numpy().copy() for w in model.ema_generator.weights]
    model.train_step(batch)  # step 101: the configured decay
    for ema, a, b in zip(model.ema_generator.weights, ema0, model.generator.weights):
        np.testing.assert_allclose(ema.numpy(), 0.5 * a + 0.5 * b.numpy(), rtol=1e-5, atol=1e-7)
    assert model.sampling_generator is model.ema_generator
    z = tf.random.normal((2, 8))
    np.testing.assert_allclose(model.draw(z), model.ema_generator(z, training=False), atol=1e-6)
    assert not np.allclose(model.draw(z), model.generator(z, training=False))


@pytest.mark.parametrize("options", [{}] + [pytest.param(o, marks=pytest.mark.slow) for o in (
    {"loss": "wgan-gp", "n_critic": 2}, {"conditional": True}, {"ema": True},
    {"loss": "wgan-gp", "n_critic": 2, "conditional": True, "ema": True}, {"minibatch_std": 4})])
def test_mirrored_step_equals_default_step_on_the_same_global_batch(gan_config, options):
    config = gan_config(**options)
    reference, dataset = build(config)
    weights = reference.get_weights()
    want = reference.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False).history
    mirrored = resolve_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2
    model, dataset = build(config, strategy=mirrored, weights=weights)
    got = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0, shuffle=False).history
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5, err_msg=name)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert any(not np.allclose(a, b) for a, b in zip(weights, reference.get_weights()))


@pytest.mark.slow
def test_conditional_generator_learns_the_class(gan_config):
    """Label 0 images are bright on top, label 1 at the bottom: a trained G must draw that."""
    config = gan_config(conditional=True, epochs=80, steps_per_epoch=None, batch_size=16,
                        g_learning_rate=1e-3, d_learning_rate=1e-3)
    model, dataset = build(config)
    model.fit(dataset, epochs=1, steps_per_epoch=400, verbose=0, shuffle=False)
    z = tf.random.normal((32, config.latent_dim), seed=1)
    for label, (bright, dark) in ((0, (slice(0, 8), slice(8, 16))), (1, (slice(8, 16), slice(0, 8)))):
        images = model.draw(z, tf.fill([32], label)).numpy()
        assert images[:, bright].mean() > images[:, dark].mean() + 0.5, label


@pytest.mark.slow
def test_saved_model_reloads_without_custom_objects(gan_config, tmp_path):
    model, dataset = build(gan_config(conditional=True, ema=True))
    model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False)
    model.save(tmp_path / "gan.keras")
    z = np.random.default_rng(0).standard_normal((4, 8)).astype(np.float32)
    labels = np.array([0, 1, 0, 1], np.int32)
    np.save(tmp_path / "want.npy", model.draw(z, labels).numpy())
    script = textwrap.dedent(f"""
        import numpy as np, keras
        import aigc_keras
        m = keras.models.load_model({str(tmp_path / "gan.keras")!r})
        got = m.draw(np.array({z.tolist()}, np.float32), np.array({labels.tolist()}, np.int32))
        np.testing.assert_allclose(got, np.load({str(tmp_path / "want.npy")!r}), atol=1e-6)
        assert int(m.g_optimizer.iterations.numpy()) == 2 and int(m.d_optimizer.iterations.numpy()) == 2
        assert m.objective == "ns" and m.ema_generator is not None and m.conditional
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().endswith("ok"), result.stderr[-2000:]


@pytest.mark.parametrize("loss", ["ns", "wgan-gp"])
def test_step_compiles_under_xla(gan_config, loss):
    """`jit_compile="auto"` turns XLA on for a single GPU, so the step must compile and train.

    XLA's stateless RNG draws other numbers than TF's kernels for the same seed, so only what
    does not depend on the noise is compared with the graph step: D(x) on the real batch.
    """
    config = gan_config(loss=loss, n_critic=1)  # d_real of a first critic step is noise-free
    batch = first_batch(config)
    logs = {}
    for jit in (False, True):
        model, _ = build(config)
        model.compile(model.d_optimizer, model.g_optimizer, jit_compile=jit)
        model.make_train_function()
        before = model.generator.get_weights()
        logs[jit] = {k: float(v) for k, v in model.train_function(iter([batch])).items()}
        assert int(model.d_optimizer.iterations.numpy()) == config.n_critic
        assert not all(np.allclose(a, b) for a, b in zip(before, model.generator.get_weights()))
    assert logs[True].keys() == logs[False].keys()
    assert all(np.isfinite(v) for v in logs[True].values())
    np.testing.assert_allclose(logs[True]["d_real"], logs[False]["d_real"], rtol=1e-5)
