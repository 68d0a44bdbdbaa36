"""Editing with the diffusion model: image-to-image (SDEdit) and inpainting, from Python, the command
line and the export, against independent references (the input itself, `generate`'s own loop, a
step-by-step loop written here, LiteRT's two APIs)."""

import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_images
from conftest import run_cli as run
from PIL import Image

import aigc_keras as ak
from aigc_keras.diffusion.pipeline import resolve, step_fn
from aigc_keras.errors import AigcError
from aigc_keras.inputs import noise_and_labels

IMAGES, LABELS = make_images(n=64, size=16)
TOP = np.zeros((16, 16), np.uint8)
TOP[:8] = 255  # generate the top half, keep the bottom


@pytest.fixture(scope="module")
def models():
    """A tiny conditional flow model and a tiny conditional DDPM model (a few steps: the properties
    below hold for any weights)."""
    built = {}
    for objective in ("flow", "eps"):
        config = ak.DiffusionConfig(objective=objective, patch=1, base_filters=8, levels=2, timesteps=40,
                                    conditional=True, strategy="default")
        model = ak.DiffusionModel.from_config(config, images=IMAGES, labels=LABELS)
        model.fit(IMAGES, LABELS, batch_size=16, epochs=1, steps_per_epoch=2, verbose=0)
        built[objective] = model
    return built


SAMPLERS = [("flow", "heun", 5), ("flow", "euler", 5), ("eps", "ddim", 5), ("eps", "dpm++", 5), ("eps", "ddpm", None)]


@pytest.mark.parametrize("objective, sampler, steps", SAMPLERS)
def test_strength_0_returns_the_input_and_1_is_generate_from_the_same_noise(models, objective, sampler, steps):
    model, options = models[objective], dict(sampler=sampler, steps=steps, labels=1, seed=4)
    np.testing.assert_array_equal(model.edit(IMAGES[:6], strength=0.0, **options), IMAGES[:6])
    np.testing.assert_array_equal(model.edit(IMAGES[:6], strength=1.0, **options), model.generate(6, **options))


@pytest.mark.parametrize("objective, sampler, steps", SAMPLERS)
def test_inpainting_keeps_the_kept_pixels_bit_for_bit_and_changes_the_rest(models, objective, sampler, steps):
    edited = models[objective].edit(IMAGES[:6], mask=TOP, sampler=sampler, steps=steps, labels=1, seed=4)
    np.testing.assert_array_equal(edited[:, 8:], IMAGES[:6, 8:])
    assert np.mean(edited[:, :8] != IMAGES[:6, :8]) > 0.5


def test_a_middle_strength_runs_the_last_steps_of_the_grid_from_the_noised_image(models):
    """strength 0.4 of 5 Euler steps: the image noised to t = 0.4, then the steps 0.4 -> 0.2 -> 0, by hand."""
    model = models["flow"]
    noise, labels = noise_and_labels(3, model.image_shape, 2, model.num_classes, 0)
    x0 = IMAGES[:3].astype(np.float32) / 127.5 - 1.0
    step = step_fn(model, resolve(model, "euler", 5).method)
    x = tf.constant(0.6 * x0 + 0.4 * noise)
    for t, t_prev in ((0.4, 0.2), (0.2, 0.0)):
        x, _ = step(x, tf.constant(t), tf.constant(t_prev), None, (), tf.constant(labels))
    expected = np.clip(np.floor((x.numpy() + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)
    edited = model.edit(IMAGES[:3], strength=0.4, sampler="euler", steps=5, labels=0, seed=2)
    assert np.abs(edited.astype(int) - expected).max() <= 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(images=IMAGES[:2].astype(np.float32)), "images must be uint8 pixels"),
    (dict(images=np.zeros((2, 20, 20, 1), np.uint8)), "images must be 16x16 with 1 channel"),
    (dict(images=IMAGES[:2], strength=1.5), "strength must be in 0..1"),
    (dict(images=IMAGES[:2], mask=np.ones((8, 8))), "mask must be 16x16"),
    (dict(images=IMAGES[:2], labels=5), "labels must be in 0..1"),
])
def test_bad_edit_inputs_are_python_errors_that_name_the_argument(models, kwargs, message):
    with pytest.raises(AigcError, match=message):
        models["flow"].edit(**kwargs)


@pytest.mark.slow
def test_the_command_line_edits_a_png_shows_input_mask_and_results_and_refuses_bad_pictures(
        capsys, images_npz, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, _, err = run(capsys, "train", "diffusion", "--data", images_npz, "--model-dir", "d", "--conditional",
                       "--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--patch", "1",
                       "--base-filters", "8", "--levels", "2", "--strategy", "default")
    assert code == 0, err
    digits, _ = ak.load_data(images_npz)
    Image.fromarray(digits[0, ..., 0]).save("digit.png")
    Image.fromarray(TOP).convert("RGB").save("mask.png")  # a mask may be in colour: white is generated
    code, out, err = run(capsys, "sample", "diffusion", "--model", "d", "--init", "digit.png", "--mask", "mask.png",
                         "--label", "1", "--num", "3", "--steps", "4", "--out", "done.png")
    assert code == 0 and "wrote" in out, err
    picture = np.asarray(Image.open("done.png"))
    tile = lambda i: picture[2 + (i // 3) * 18:18 + (i // 3) * 18, 2 + (i % 3) * 18:18 + (i % 3) * 18]  # noqa: E731
    np.testing.assert_array_equal(tile(0), digits[0, ..., 0])  # the input,
    np.testing.assert_array_equal(tile(1), TOP)  # the mask (white: generated),
    edits = ak.load("d").edit(digits[:1].repeat(3, 0), mask=TOP, labels=1, steps=4)
    for i in range(3):  # the edits, as the library makes them
        np.testing.assert_array_equal(tile(3 + i), edits[i, ..., 0])
    from aigc_keras import provenance

    made = provenance.read("done.png")
    assert (made["init"], made["mask"], made["strength"]) == ("digit.png", "mask.png", 1.0)

    Image.fromarray(np.zeros((16, 16, 3), np.uint8)).save("colour.png")
    Image.fromarray(np.zeros((16, 16, 2), np.uint8), "LA").save("alpha.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save("big.png")
    os.mkfifo("fifo.png")  # reading it would wait for a writer forever
    for args, message in ([["--init", "colour.png"], "is in colour; the model draws grayscale"],
                          [["--init", "alpha.png"], "has transparency"],
                          [["--init", "big.png"], "is 20x20; the model draws 16x16"],
                          [["--init", "missing.png"], "does not exist"],
                          [["--init", "fifo.png"], "is a FIFO (named pipe), not a file aigc-keras can read"],
                          [["--mask", "mask.png"], "--mask edits a picture: name it with --init"],
                          [["--resample", "2"], "--resample edits a picture: name it with --init"],
                          [["--init", "digit.png", "--gif", "a.gif"], "does not go with --init"]):
        code, _, err = run(capsys, "sample", "diffusion", "--model", "d", *args, "--out", "x.png")
        assert code == 1 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1, err


@pytest.mark.slow
def test_the_export_edits_in_both_litert_apis_as_the_library_does(models, tmp_path):
    from aigc_keras.diffusion.family import DiffusionFamily
    from aigc_keras.export.litert import export_bundle
    from aigc_keras.export.runtime import LiteRTModel

    model = models["flow"]
    record = {"data": {"class_names": ["0", "1"]}, "config": {}}
    network, endpoints, metadata = DiffusionFamily().export_spec(model, record, steps=4, batch=2)
    export_bundle(network, endpoints, tmp_path / "x", True, "none", {"family": "diffusion", **metadata}, 1e-3)
    assert "strength" in metadata["edit"] and "mask" in metadata["edit"]
    noise, labels = noise_and_labels(2, model.image_shape, 5, model.num_classes, 1)
    expected = model.edit(IMAGES[:2], strength=0.75, mask=TOP, labels=1, seed=5, steps=4, guidance=2.0)
    for api in ("compiled", "interpreter"):
        out = LiteRTModel(tmp_path / "x" / "model.tflite", api).run(
            "edit", image=IMAGES[:2], mask=(TOP[None, :, :, None] // 255).repeat(2, 0) * 7, noise=noise,
            strength=np.array(0.75, np.float32), label=labels, guidance=np.array(2.0, np.float32))
        assert np.abs(out["images"].astype(int) - expected).max() <= 1, api
        np.testing.assert_array_equal(out["images"][:, 8:], IMAGES[:2, 8:])  # kept pixels, exactly


@pytest.mark.slow
def test_a_conditional_edit_with_another_label_turns_threes_into_eights(tmp_path):
    from aigc_keras.metrics.features import shipped_classifier

    ak.train(ak.DiffusionConfig.quick(), tmp_path / "d", verbose=0, log=lambda line: None)
    images, labels = ak.load_data("mnist")
    threes = images[labels == 3][:100]
    classifier = shipped_classifier("mnist")

    def read(x):
        return classifier.predict(x.astype("float32") / 127.5 - 1.0, verbose=0).argmax(-1)

    assert np.mean(read(threes) == 3) > 0.95
    eights = ak.load(tmp_path / "d").edit(threes, strength=0.9, labels=8, guidance=2.0)
    assert np.mean(read(eights) == 8) > 0.5  # most of them (chance: 0.1)
    assert np.mean(read(ak.load(tmp_path / "d").edit(threes, strength=0.0, labels=8)) == 3) > 0.95  # 0 keeps them


def test_a_colour_model_edits_too_and_takes_a_grayscale_mask_for_all_channels():
    colour, _ = make_images(n=32, size=32, channels=3)
    config = ak.DiffusionConfig(objective="flow", base_filters=8, levels=2, conditional=False, strategy="default")
    model = ak.DiffusionModel.from_config(config, images=colour)
    left = np.zeros((32, 32), bool)
    left[:, :16] = True
    edited = model.edit(colour[:2], mask=left, steps=3, seed=1)
    assert edited.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(edited[:, :, 16:], colour[:2, :, 16:])
    assert np.mean(edited[:, :, :16] != colour[:2, :, :16]) > 0.5
    np.testing.assert_array_equal(model.edit(colour[:2], strength=1.0, steps=3, seed=1), model.generate(2, seed=1,
                                                                                                      steps=3))


def test_repaint_runs_each_step_again_from_its_result_noised_back_and_keeps_the_kept_pixels(models):
    """2 Euler steps with 2 passes each, by hand: after the first pass of a step, its result goes back
    to the step's start, x_t = a x_s + sqrt(t^2 - a^2 s^2) eps with a = (1 - t) / (1 - s), and the
    step runs again; the kept half is put back after every row."""
    model = models["flow"]
    noise, labels = noise_and_labels(3, model.image_shape, 2, model.num_classes, 1)
    x0 = IMAGES[:3].astype(np.float32) / 127.5 - 1.0
    mask = np.zeros((3, 16, 16, 1), np.float32)
    mask[:, :8] = 1.0
    step = step_fn(model, resolve(model, "euler", 2).method)
    x, j = tf.constant(noise), 0
    for t, s in ((1.0, 0.5), (0.5, 0.0)):
        for again in (False, True):
            if again:
                eps = tf.random.stateless_normal(x.shape, seed=tf.constant([2, 4 + j], tf.int32))  # rows * 2 + j
                a = (1.0 - t) / (1.0 - s)
                x = a * x + np.sqrt(max(t * t - (a * s) ** 2, 0.0)) * eps
            x, _ = step(x, tf.constant(t), tf.constant(s), None, (), tf.constant(labels))
            x = mask * x + (1.0 - mask) * ((1.0 - s) * x0 + s * noise)
            j += 1
    expected = np.clip(np.floor((x.numpy() + 1.0) * 127.5 + 0.5), 0, 255).astype(np.uint8)
    edited = model.edit(IMAGES[:3], mask=TOP, sampler="euler", steps=2, labels=1, seed=2, resample=2)
    assert np.abs(edited.astype(int) - expected).max() <= 1
    np.testing.assert_array_equal(edited[:, 8:], IMAGES[:3, 8:])
    assert not np.array_equal(edited, model.edit(IMAGES[:3], mask=TOP, sampler="euler", steps=2, labels=1, seed=2))
    for sampler, steps in (("heun", 3), ("dpm++", 3), ("ddpm", None)):
        objective = "flow" if sampler == "heun" else "eps"
        options = dict(mask=TOP, sampler=sampler, steps=steps, labels=1, seed=2, resample=3)
        again = models[objective].edit(IMAGES[:3], **options)
        np.testing.assert_array_equal(again[:, 8:], IMAGES[:3, 8:])
        np.testing.assert_array_equal(again, models[objective].edit(IMAGES[:3], **options))  # the seed decides
        np.testing.assert_array_equal(models[objective].edit(IMAGES[:3], strength=0.0, **options), IMAGES[:3])
    with pytest.raises(AigcError, match="resample must be a whole number >= 1"):
        model.edit(IMAGES[:3], mask=TOP, resample=0)
