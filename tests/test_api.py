"""The Python API as a Keras user meets it: public names, `fit` on ordinary arrays and datasets, `generate`
on every generator, defaults that are the CLI's, Keras's own methods keeping their meaning, reloading in
a fresh interpreter, and errors that speak of arguments."""

import inspect
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import make_images
from conftest import run_cli as cli

import aigc_keras as ak

TINY = {"gan": dict(latent_dim=8, base_filters=8), "diffusion": dict(base_filters=8, levels=2, patch=1),
        "vae": dict(latent_dim=4, base_filters=8), "text": dict(units=16, layers=1, seq_len=16, embedding_dim=8)}
CONFIGS = {"gan": ak.GANConfig, "diffusion": ak.DiffusionConfig, "vae": ak.VAEConfig, "text": ak.TextConfig}
CORPUS = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 40


def test_the_public_names_are_there_and_cheap_to_import():
    code = ("import sys, aigc_keras as ak\n"
            "assert 'tensorflow' not in sys.modules\n"
            "names = {'GAN', 'DiffusionModel', 'VAE', 'LanguageModel', 'LSTMLanguageModel', 'TransformerLanguageModel',"
            " 'GANConfig', 'DiffusionConfig', 'VAEConfig', 'TextConfig', 'load', 'load_data', 'train', 'export_model',"
            " '__version__'}\n"
            "assert names <= set(ak.__all__) and names <= set(dir(ak)), names - set(dir(ak))\n")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
    assert ak.GANConfig().family == "gan" and issubclass(ak.GAN, keras.Model)


KERAS_METHODS = [name for name, value in vars(keras.Model).items() if not name.startswith("_") and callable(value)] + \
    [name for name in ("fit", "evaluate", "predict", "compile", "call", "build", "train_step", "test_step",
                       "get_config", "from_config", "save")]


@pytest.mark.parametrize("cls", [ak.GAN, ak.DiffusionModel, ak.VAE, ak.LSTMLanguageModel, ak.TransformerLanguageModel])
def test_no_public_keras_method_is_overridden_with_another_signature(cls):
    """An override takes every argument Keras's method takes, in the same places with the same defaults;
    it may add keyword-only arguments (with defaults). `call`'s Keras signature is (*args, **kwargs)."""
    for name in sorted({m for m in dir(keras.Model) if not m.startswith("_")} & set(KERAS_METHODS)):
        ours = inspect.getattr_static(cls, name)
        keras_own = inspect.getattr_static(keras.Model, name, None)
        if keras_own is None or ours is keras_own or name == "call" or isinstance(ours, property):
            continue
        theirs, mine = inspect.signature(getattr(keras.Model, name)), inspect.signature(getattr(cls, name))
        expected = list(theirs.parameters.values())
        got = list(mine.parameters.values())
        same = len(got) >= len(expected) and all(
            a.name == b.name and a.kind == b.kind and (b.default is b.empty or a.default == b.default)
            for a, b in zip(got, expected))
        assert same, f"{cls.__name__}.{name}{mine} is not Keras's {name}{theirs}"
        extra = got[len(expected):]
        assert all(p.kind == p.KEYWORD_ONLY and p.default is not p.empty for p in extra), f"{cls.__name__}.{name}"


@pytest.mark.parametrize("family", ["gan", "diffusion", "vae"])
def test_fit_takes_uint8_and_float_arrays_and_a_dataset_and_generate_returns_pixels(family):
    keras.utils.set_random_seed(0)
    images, labels = make_images(n=64)
    config = CONFIGS[family](**TINY[family])
    model = {"gan": ak.GAN, "diffusion": ak.DiffusionModel, "vae": ak.VAE}[family].from_config(
        config, images=images, labels=labels if family != "vae" else None)
    conditional = family != "vae"
    y = labels if conditional else None
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.fit(images, y, batch_size=16, epochs=1, verbose=0)  # uint8 [N, H, W, C]
    model.fit(images[..., 0] / 255.0, y, batch_size=16, epochs=1, verbose=0)  # float [0, 1], [N, H, W]
    model.fit(tf.data.Dataset.from_tensor_slices((images, labels)).batch(16), epochs=1, verbose=0)
    assert any(not np.allclose(a, b.numpy()) for a, b in zip(before, model.trainable_weights))
    options = {"steps": 2} if family == "diffusion" else {}
    pictures = model.generate(6, seed=3, labels=[0, 1, 0, 1, 0, 1] if conditional else None, **options)
    assert pictures.shape == (6, 16, 16, 1) and pictures.dtype == np.uint8
    np.testing.assert_array_equal(pictures, model.generate(6, seed=3, labels=[0, 1, 0, 1, 0, 1] if conditional
                                                           else None, **options))


def test_a_conditional_model_without_labels_and_bad_arguments_raise_value_errors_naming_the_argument():
    images, labels = make_images(n=32)
    gan = ak.GAN.from_config(ak.GANConfig(**TINY["gan"]), images=images, labels=labels)
    with pytest.raises(ValueError, match="pass the labels to fit"):
        gan.fit(images, batch_size=16, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"^labels must be in 0\.\.1, got 7$"):
        gan.generate(4, labels=7)
    with pytest.raises(ValueError, match=r"^num must be >= 1"):
        gan.generate(0)
    with pytest.raises(ValueError, match=r"^x: images must be \[N, H, W\] or \[N, H, W, 1\|3\]"):
        gan.fit(np.zeros((4, 2, 16, 16, 1), np.uint8), labels[:4], verbose=0)
    with pytest.raises(ValueError, match="builds a GAN, not a VAE"):
        ak.VAE.from_config(ak.GANConfig(**TINY["gan"]), images=images, labels=labels)


def test_a_wgan_gp_trains_on_plain_batches_split_into_its_critic_steps():
    images, _ = make_images(n=63)
    gan = ak.GAN.from_config(ak.GANConfig(loss="wgan-gp", conditional=False, **TINY["gan"]), images=images)
    gan.fit(images, batch_size=21, epochs=1, verbose=0)  # 21 = 5 critic steps of 4 images, and one left over
    assert int(gan.g_optimizer.iterations.numpy()) == 3 and int(gan.d_optimizer.iterations.numpy()) == 15


def test_a_language_model_fits_a_text_and_generates_one():
    keras.utils.set_random_seed(0)
    lm = ak.LanguageModel.from_config(ak.TextConfig(**TINY["text"]), text=CORPUS)
    assert isinstance(lm, ak.LSTMLanguageModel)
    first = lm.evaluate(lm.windows(CORPUS), verbose=0, return_dict=True)["loss"]
    lm.fit(CORPUS, batch_size=8, epochs=3, verbose=0)
    assert lm.evaluate(lm.windows(CORPUS), verbose=0, return_dict=True)["loss"] < first
    text = lm.generate("To be", length=40, temperature=0.0)
    assert len(text) == 40 and set(text) <= set(CORPUS)
    transformer = ak.LanguageModel.from_config(ak.TextConfig(arch="transformer", heads=2, **TINY["text"]),
                                               text=CORPUS)
    assert isinstance(transformer, ak.TransformerLanguageModel) and transformer.seq_len == 16


@pytest.mark.parametrize("cls, config", [(ak.GAN, ak.GANConfig), (ak.DiffusionModel, ak.DiffusionConfig),
                                         (ak.VAE, ak.VAEConfig)])
def test_the_classes_defaults_are_the_configs(cls, config):
    defaults = config()
    signature = inspect.signature(cls.__init__).parameters
    shared = [name for name in signature if getattr(defaults, name, None) is not None  # None: follows the data
              and signature[name].default is not inspect.Parameter.empty]
    assert shared and all(signature[name].default == getattr(defaults, name) for name in shared), shared


@pytest.mark.slow
@pytest.mark.parametrize("family", ["gan", "diffusion", "vae", "text"])
def test_python_builds_and_trains_the_same_model_as_the_cli(family, tmp_path, capsys):
    """The default config from Python is the CLI's model: the same config.json from `ak.train`, the same
    architecture from `from_config`, and `generate` draws the pixels (or ids) that `sample` draws."""
    options = dict(epochs=1, steps_per_epoch=1, strategy="default", **TINY[family])
    if family == "text":
        (tmp_path / "corpus.txt").write_text(CORPUS)
        options["data"] = f"text:{tmp_path / 'corpus.txt'}"
    config = CONFIGS[family](**options)
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    assert cli(capsys, "train", family, "--model-dir", tmp_path / "cli", *flags)[0] == 0
    ak.train(config, tmp_path / "py", verbose=0, log=lambda line: None)
    records = [json.loads((tmp_path / name / "config.json").read_text()) for name in ("cli", "py")]
    assert records[0] == records[1]
    built = {"gan": ak.GAN, "diffusion": ak.DiffusionModel, "vae": ak.VAE, "text": ak.LanguageModel}[family] \
        .from_config(config)
    trained = ak.load(tmp_path / "cli")
    unnamed = [{k: v for k, v in m.get_config().items() if k != "name"} for m in (built, trained)]  # numbered
    assert unnamed[0] == unnamed[1]
    assert [w.shape for w in built.weights] == [w.shape for w in trained.weights]
    if family == "text":
        code, out, _ = cli(capsys, "sample", family, "--model", tmp_path / "cli", "--prompt", "To", "--length", "30",
                           "--seed", "5")
        assert code == 0 and out == "To" + trained.generate("To", 30, seed=5) + "\n"
    else:
        code, _, err = cli(capsys, "sample", family, "--model", tmp_path / "cli", "--num", "6", "--seed", "5",
                           "--out", tmp_path / "s.npz", *(["--steps", "3"] if family == "diffusion" else []))
        assert code == 0, err
        options = {"steps": 3} if family == "diffusion" else {}
        np.testing.assert_array_equal(np.load(tmp_path / "s.npz")["images"], trained.generate(6, seed=5, **options))


@pytest.mark.slow
def test_a_saved_model_reloads_in_a_fresh_interpreter_after_import_aigc_keras(tmp_path):
    images, labels = make_images(n=32)
    model = ak.DiffusionModel.from_config(ak.DiffusionConfig(**TINY["diffusion"]), images=images, labels=labels)
    model.save(tmp_path / "d.keras")
    want = model.generate(3, seed=1, steps=2)
    np.save(tmp_path / "want.npy", want)
    script = textwrap.dedent(f"""
        import aigc_keras, keras, numpy as np
        model = keras.models.load_model({str(tmp_path / "d.keras")!r})
        np.testing.assert_array_equal(model.generate(3, seed=1, steps=2), np.load({str(tmp_path / "want.npy")!r}))
        print(type(model).__name__)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "DiffusionModel", result.stderr[-2000:]


@pytest.mark.slow
def test_every_snippet_of_the_readme_python_api_section_runs(tmp_path):
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme.split("\n## Python API\n", 1)[1].split("\n## ", 1)[0]
    snippets = section.split("```python\n")[1:]
    assert len(snippets) >= 3
    script = "\n".join(snippet.split("```", 1)[0] for snippet in snippets)
    script += textwrap.dedent("""
        assert pictures.shape == (16, 28, 28, 1) and str(pictures.dtype) == "uint8"
        assert digits.shape == (10, 28, 28, 1)
        import os
        assert os.path.isfile("diffusion.keras") and os.path.isfile("export/gan/model.tflite")
        assert os.path.isfile("runs/mine/adapter.lora.h5") and os.path.isfile("runs/mine/model.keras")
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    printed = [line for line in result.stdout.splitlines() if not line.startswith(("TensorBoard:", "saved "))]
    assert len("\n".join(printed)) >= 150, result.stdout  # the 200 generated characters
