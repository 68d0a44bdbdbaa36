"""The VAE family: its loss against independent references, training, sampling, interpolation,
export in both LiteRT APIs, evaluation, and the same step under MirroredStrategy."""

import functools
import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import build_model
from conftest import run_cli as cli

from aigc_keras.export.runtime import LiteRTModel
from aigc_keras.families import get_family
from aigc_keras.model_dir import ModelDir
from aigc_keras.vae.config import VAEConfig

FAMILY = get_family("vae")
TINY = ["--epochs", "2", "--batch-size", "16", "--steps-per-epoch", "3", "--latent-dim", "4", "--base-filters", "8",
        "--strategy", "default"]


build = functools.partial(build_model, FAMILY)


@pytest.fixture
def vae_config(images_npz):
    def make(**overrides):
        return VAEConfig(**{**dict(data=images_npz, epochs=1, batch_size=16, steps_per_epoch=4, latent_dim=4,
                                   base_filters=8, strategy="default"), **overrides})
    return make


def test_kl_matches_a_monte_carlo_estimate_and_reconstruction_the_bernoulli_likelihood(vae_config):
    """KL(q || N(0, I)) in closed form against the mean of log q(z) - log p(z) over many z ~ q, and the
    reconstruction term against -log of the Bernoulli likelihood computed from probabilities."""
    model, dataset = build(vae_config())
    x = next(iter(dataset))[0][:2]
    eps = tf.zeros([2, 4])  # z = z_mean
    reconstruction, kl = (t.numpy() for t in model.losses_of(x, eps))
    z_mean, z_log_var = (t.numpy().astype(np.float64) for t in model.encode(x))
    rng = np.random.default_rng(0)
    z = z_mean[:, None] + np.exp(z_log_var / 2)[:, None] * rng.standard_normal((2, 200_000, 4))
    log_q = -0.5 * (((z - z_mean[:, None]) ** 2) / np.exp(z_log_var)[:, None] + z_log_var[:, None]).sum(-1)
    log_p = -0.5 * (z**2).sum(-1)  # the 2 pi terms cancel
    np.testing.assert_allclose(kl, (log_q - log_p).mean(axis=1), rtol=0.02, atol=2e-3)
    probs = tf.sigmoid(model.decoder(tf.constant(z_mean, tf.float32))).numpy().astype(np.float64)
    target = (x.numpy() + 1) / 2
    nll = -(target * np.log(probs) + (1 - target) * np.log1p(-probs)).sum(axis=(1, 2, 3))
    np.testing.assert_allclose(reconstruction, nll, rtol=1e-4)


def test_fit_lowers_the_negative_elbo(vae_config):
    """The reconstruction term cannot go below the entropy of the (grey) target pixels; what it
    loses above that floor must shrink."""
    model, dataset = build(vae_config(epochs=100, steps_per_epoch=1))
    x = next(iter(dataset))[0]
    target = (x.numpy().astype(np.float64) + 1) / 2
    floor = -(target * np.log(np.clip(target, 1e-12, 1)) + (1 - target) * np.log(np.clip(1 - target, 1e-12, 1)))
    floor = floor.sum(axis=(1, 2, 3)).mean()

    def excess():
        reconstruction, kl = model.losses_of(x, tf.zeros([len(x), 4]))
        return float(tf.reduce_mean(reconstruction)) - floor

    before = excess()
    history = model.fit(dataset, epochs=1, steps_per_epoch=90, verbose=0).history
    assert set(history) == {"loss", "reconstruction", "kl"} and all(np.isfinite(v[0]) for v in history.values())
    assert excess() < 0.5 * before


@pytest.mark.slow
def test_mirrored_step_equals_default_step(vae_config, two_cpus):
    config = vae_config()
    reference, dataset = build(config)
    weights = reference.get_weights()
    want = reference.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    model, dataset = build(config, strategy=two_cpus, weights=weights)
    got = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, err_msg=name)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_train_sample_interpolate_export_evaluate_end_to_end(capsys, images_npz, tmp_path):
    model = tmp_path / "vae"
    code, out, err = cli(capsys, "train", "vae", "--data", images_npz, "--model-dir", model, *TINY)
    assert code == 0 and "saved" in out, err
    assert [h["epoch"] for h in json.loads((model / "history.json").read_text())] == [1, 2]
    code, out, _ = cli(capsys, "sample", "vae", "--model", model, "--num", "5", "--seed", "2", "--out",
                       tmp_path / "a.npz")
    assert code == 0 and np.load(tmp_path / "a.npz")["images"].shape == (5, 16, 16, 1)
    cli(capsys, "sample", "vae", "--model", model, "--num", "5", "--seed", "2", "--out", tmp_path / "b.npz")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npz")["images"], np.load(tmp_path / "b.npz")["images"])
    code, out, _ = cli(capsys, "sample", "vae", "--model", model, "--interpolate", "3", "--steps", "6",
                       "--out", tmp_path / "morph.png")
    picture = tf.io.decode_png((tmp_path / "morph.png").read_bytes()).numpy()
    assert code == 0 and picture.shape == (3 * 18 + 2, 8 * 18 + 2, 1)  # 3 rows: real, 6 decoded, real

    code, out, err = cli(capsys, "export", "vae", "--model", model, "--out", tmp_path / "e", "--tflite",
                         "--batch", "2")
    assert code == 0, err
    meta = json.loads((tmp_path / "e" / "metadata.json").read_text())
    assert set(meta["signatures"]) == {"generate", "decode", "encode"} and meta["latent_dim"] == 4
    assert max(meta["runtimes"]["compiled_vs_interpreter_max_abs_diff"].values()) <= 1e-6
    loaded = ModelDir(model).load_model("vae")
    z = np.random.default_rng(3).standard_normal((2, 4)).astype(np.float32)
    got = LiteRTModel(tmp_path / "e" / "model.tflite", "compiled").run("decode", z=z)["images_float"]
    np.testing.assert_allclose(got, loaded.decode(z).numpy(), atol=1e-5)

    code, _, err = cli(capsys, "train", "classifier", "--data", images_npz, "--model-dir", tmp_path / "clf",
                       "--epochs", "1", "--batch-size", "16", "--strategy", "default")
    assert code == 0, err
    for target in (model, tmp_path / "e"):
        code, out, err = cli(capsys, "evaluate", target, "--num", "20", "--classifier", tmp_path / "clf", "--json")
        assert code == 0, err
        assert json.loads(out)["num_samples"] == 20 and json.loads(out)["samples"]["fid"] >= 0
