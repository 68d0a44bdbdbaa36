"""A user's own data: a budget that fits a small data set, augmentations that are right for generators,
memorisation measured, features that fit the data (and say which they are), colour and 64x64 images end
to end, and text whose unknown id is never generated."""

import json
import struct

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_images
from conftest import run_cli as cli

import aigc_keras as ak
from aigc_keras import augment
from aigc_keras.families import get_family
from aigc_keras.metrics.image import memorisation

TINY_GAN = dict(latent_dim=8, base_filters=8, strategy="default")


def test_a_small_data_set_trains_the_family_budget_and_a_large_one_its_passes():
    family = get_family("gan")
    small = {"num_examples": 96}
    config = ak.GANConfig(**TINY_GAN, batch_size=16)
    assert family.pass_steps(config, small) == 6 and family.steps_per_epoch(config, small) == 1500
    line = family.budget(config, small)
    assert line.startswith("budget: 6 epochs of 1,500 optimizer steps (9,000 in all)") and "250.0 passes" in line
    large = {"num_examples": 70_000}
    assert family.steps_per_epoch(config, large) == 4375 and "passes" not in family.budget(config, large)
    assert family.steps_per_epoch(ak.GANConfig(**TINY_GAN, steps_per_epoch=7), small) == 7  # still the user's
    assert ak.GANConfig.from_dict({}).min_epoch_steps == 0  # a run saved before the budget keeps one-pass epochs


def test_an_epoch_of_a_tiny_data_set_is_its_budget_of_steps_and_resumes(images_npz, tmp_path):
    config = ak.GANConfig(data=images_npz, epochs=1, batch_size=16, min_epoch_steps=20, conditional=False, **TINY_GAN)
    lines = []
    model = ak.train(config, tmp_path / "m", verbose=0, log=lines.append)
    assert int(model.g_optimizer.iterations.numpy()) == 20 and "3.3 passes over the data" in lines[0]
    model = ak.train(ak.GANConfig(**{**config.to_dict(), "epochs": 2}), tmp_path / "m", verbose=0, log=lines.append)
    assert int(model.g_optimizer.iterations.numpy()) == 40
    assert [h["epoch"] for h in json.loads((tmp_path / "m" / "history.json").read_text())] == [1, 2]


def test_diff_augment_is_random_per_image_reproducible_and_differentiable():
    images = tf.constant(np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 3)), tf.float32)
    once = augment.diff_augment(images, seed=1, step=tf.constant(3), salt=200)
    np.testing.assert_array_equal(once, augment.diff_augment(images, seed=1, step=tf.constant(3), salt=200))
    assert not np.allclose(once, augment.diff_augment(images, seed=1, step=tf.constant(4), salt=200))
    assert not np.allclose(once[0], once[1] - images[1] + images[0])  # each image its own draw
    cut = np.all(once.numpy() == 0, axis=-1).sum(axis=(1, 2))
    assert np.all(cut >= 16) and np.all(cut <= 8 * 8 + 2 * 16 * 2)  # a square of half the side, maybe shifted in
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(augment.diff_augment(images, 1, tf.constant(3), 200) ** 2)
    assert np.abs(tape.gradient(total, images).numpy()).sum() > 0
    mirrored = augment.flip(images, seed=0, step=tf.constant(0), salt=1).numpy()
    for i in range(4):
        assert np.allclose(mirrored[i], images[i]) or np.allclose(mirrored[i], images[i, :, ::-1])


@pytest.mark.parametrize("augmented", [True, False])
def test_the_discriminator_sees_augmented_real_and_fake_images_or_none(monkeypatch, augmented):
    images, labels = make_images(n=32)
    gan = ak.GAN.from_config(ak.GANConfig(**TINY_GAN, augment=augmented, conditional=False), images=images)
    seen = []

    def recording(x, seed, step, salt):
        seen.append(salt)
        return x
    monkeypatch.setattr("aigc_keras.gan.model.diff_augment", recording)
    gan.train_step(tf.constant(images[:16]))
    assert sorted(seen) == ([201, 301, 400] if augmented else [])  # real, fake for D (its step 1); fake for G


def test_small_data_turns_the_augmentations_on_and_records_them(capsys, tmp_path):
    for channels, flip in ((1, False), (3, True)):
        images, labels = make_images(n=48, channels=channels)
        np.savez(tmp_path / f"c{channels}.npz", images=images, labels=labels)
        args = ["train", "gan", "--data", f"npz:{tmp_path / f'c{channels}.npz'}", "--epochs", "1", "--batch-size", "16",
                "--steps-per-epoch", "1", "--latent-dim", "8", "--base-filters", "8", "--strategy", "default"]
        assert cli(capsys, *args, "--model-dir", tmp_path / f"m{channels}")[0] == 0
        record = json.loads((tmp_path / f"m{channels}" / "config.json").read_text())["config"]
        assert record["augment"] is True and record["flip"] is flip
    assert cli(capsys, *args, "--model-dir", tmp_path / "off", "--no-augment", "--no-flip")[0] == 0
    record = json.loads((tmp_path / "off" / "config.json").read_text())["config"]
    assert record["augment"] is False and record["flip"] is False


def test_memorisation_is_near_0_for_a_model_that_copies_and_near_1_for_one_that_draws_new_images():
    rng = np.random.default_rng(0)
    training = rng.integers(0, 256, (300, 8, 8, 1)).astype(np.uint8)
    copies = training[rng.choice(300, 100)]  # a lookup table of its training set
    copied = memorisation(copies, training, training[:100])
    assert copied["ratio"] < 0.01 and copied["copies"] == 1.0
    new = rng.integers(0, 256, (100, 8, 8, 1)).astype(np.uint8)  # the same distribution, not the same images
    drawn = memorisation(new, training, training[:100])
    assert 0.8 < drawn["ratio"] < 1.25 and drawn["copies"] == 0.0
    slightly = np.clip(copies.astype(int) + rng.integers(-8, 9, copies.shape), 0, 255).astype(np.uint8)
    assert copied["ratio"] < memorisation(slightly, training, training[:100])["ratio"] < drawn["ratio"]


def test_features_fit_the_data_and_say_which_they_are(monkeypatch):
    from aigc_keras.metrics import features

    assert features.feature_net("mnist").name == "shipped mnist classifier"
    monkeypatch.setattr(features, "inception_features", lambda: None)
    net = features.feature_net("npz:icons.npz")
    assert net.name.startswith("raw pixels, averaged to 16x16") and "train classifier" in net.name
    got, probs = net(np.zeros((3, 64, 64, 3), np.uint8))
    assert got.shape == (3, 16 * 16 * 3) and probs is None


def png_colour_type(data: bytes) -> int:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour = struct.unpack(">IIBB", data[16:26])
    return colour


def test_the_unet_stem_has_at_least_a_patchs_values_as_channels_unless_told_otherwise():
    from aigc_keras.diffusion.config import DiffusionConfig
    from aigc_keras.diffusion.family import DiffusionFamily
    from aigc_keras.diffusion.unet import UNet

    for shape, patch, filters in (((28, 28, 1), 2, 32), ((32, 32, 3), 2, 32), ((64, 64, 3), 4, 48)):
        net = UNet(shape, attention=False)
        assert (net.patch, net.base_filters, net.get_layer("stem").filters) == (patch, filters, filters)
        assert filters >= patch * patch * shape[-1]  # 4 x 4 x 3 = 48 values a patch at 64x64 colour
        config = DiffusionConfig()
        DiffusionFamily().check_image_shape(config, shape)
        assert (config.patch, config.base_filters) == (patch, filters)  # what config.json records
    given = DiffusionConfig(base_filters=16)
    DiffusionFamily().check_image_shape(given, (64, 64, 3))
    assert given.base_filters == 16


@pytest.mark.slow
@pytest.mark.parametrize("family, options", [
    ("gan", ["--latent-dim", "8", "--base-filters", "8"]),
    ("diffusion", ["--base-filters", "8", "--levels", "2"]),
    ("vae", ["--latent-dim", "4", "--base-filters", "8"]),
])
def test_colour_64x64_pictures_train_sample_and_export(family, options, capsys, tmp_path):
    images, labels = make_images(n=32, size=64, channels=3)
    np.savez(tmp_path / "c.npz", images=images, labels=labels)
    model = tmp_path / "m"
    code, out, err = cli(capsys, "train", family, "--data", f"npz:{tmp_path / 'c.npz'}", "--model-dir", model,
                         "--epochs", "1", "--batch-size", "8", "--steps-per-epoch", "2", "--strategy", "default",
                         *options)
    assert code == 0, err
    if family == "diffusion":
        assert json.loads((model / "config.json").read_text())["config"]["patch"] == 4  # a level works on 16x16
    steps = ["--steps", "2"] if family == "diffusion" else []
    assert cli(capsys, "sample", family, "--model", model, "--num", "4", "--out", tmp_path / "s.png", *steps)[0] == 0
    picture = (tmp_path / "s.png").read_bytes()
    assert png_colour_type(picture) == 2  # RGB
    code, _, err = cli(capsys, "export", family, "--model", model, "--out", tmp_path / "x", "--tflite",
                       *(["--steps", "2"] if family == "diffusion" else []))
    assert code == 0, err
    meta = json.loads((tmp_path / "x" / "metadata.json").read_text())
    assert meta["image_shape"] == [64, 64, 3] and meta["runtimes"]["checked"] == ["interpreter", "compiled"]


def chinese_corpus(lines: int = 400, seed: int = 0) -> str:
    """Poem-shaped text: a title in 《》, an author line, verses of five characters with ， and 。."""
    rng = np.random.default_rng(seed)
    common = list("春风花月夜山水长江白云天地人心明日归来秋雨")
    rare = [chr(0x4E00 + i) for i in rng.choice(20000, 60, replace=False)]
    out = []
    for i in range(lines // 4):
        verse = lambda: "".join(rng.choice(common + rare[i % 60:i % 60 + 1], 5))  # noqa: E731
        out += [f"《{verse()[:3]}》", "作者：" + "".join(rng.choice(common, 2)), f"{verse()}，{verse()}。",
                f"{verse()}，{verse()}。"]
    return "\n".join(out) + "\n"


def test_rare_characters_share_the_unknown_id_and_generation_never_draws_it():
    corpus = chinese_corpus()
    lm = ak.LanguageModel.from_config(ak.TextConfig(units=16, layers=1, seq_len=16, embedding_dim=8, min_count=3),
                                      text=corpus)
    vocabulary = lm.tokenizer["chars"]
    assert "春" in vocabulary and len(vocabulary) < len(set(corpus))  # the rare ones are left out
    assert lm.unknown_id == 0
    weights = lm.head.get_weights()
    weights[1][0] = 50.0  # the unknown id is by far the most likely next token
    lm.head.set_weights(weights)
    for temperature in (0.0, 1.0):
        text = lm.generate("《春", length=60, temperature=temperature, seed=1)
        assert "\ufffd" not in text and len(text) == 60
    streamed = []
    assert lm.generate("《春", length=30, seed=2, on_text=streamed.append) == "".join(streamed)
    assert "\ufffd" not in "".join(streamed)


@pytest.mark.slow
def test_a_chinese_corpus_trains_samples_and_exports_without_the_unknown_character(capsys, tmp_path):
    (tmp_path / "poems.txt").write_text(chinese_corpus(2000))
    model = tmp_path / "zh"
    code, out, err = cli(capsys, "train", "text", "--data", f"text:{tmp_path / 'poems.txt'}", "--model-dir", model,
                         "--epochs", "1", "--steps-per-epoch", "30", "--batch-size", "16", "--seq-len", "32",
                         "--units", "32", "--layers", "1", "--min-count", "3", "--strategy", "default")
    assert code == 0, err
    code, out, err = cli(capsys, "sample", "text", "--model", model, "--prompt", "《静夜思》", "--length", "80",
                         "--seed", "3")
    assert code == 0 and "\ufffd" not in out and out.startswith("《静夜思》"), out
    assert cli(capsys, "export", "text", "--model", model, "--out", tmp_path / "x", "--tflite", "--length", "40",
               "--prompt-length", "8")[0] == 0
    meta = json.loads((tmp_path / "x" / "metadata.json").read_text())
    assert meta["unknown_id"] == 0 and meta["vocabulary"][0] == "\ufffd"
    from ai_edge_litert.interpreter import Interpreter

    generate = Interpreter(model_path=str(tmp_path / "x" / "model.tflite")).get_signature_runner("generate")
    for seed in range(3):
        ids = generate(prompt_ids=np.array([1] * 8, np.int32), prompt_length=np.array(2, np.int32),
                       uniform=np.random.default_rng(seed).random(40).astype(np.float32),
                       temperature=np.array(1.5, np.float32), top_k=np.array(0, np.int32),
                       top_p=np.array(1.0, np.float32))["ids"]
        assert 0 not in ids
