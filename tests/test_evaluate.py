"""The evaluation classifier, `evaluate`, the KID curve during training, and the shipped classifier."""

import json

import numpy as np
import pytest
from conftest import make_images, npz_spec
from conftest import run_cli as run

from aigc_keras.cli import main

pytestmark = pytest.mark.slow  # end-to-end: trains and exports models

CLASSIFIER = ["--epochs", "2", "--batch-size", "16", "--filters", "4", "--feature-dim", "8", "--strategy", "default"]
GAN = ["--epochs", "2", "--batch-size", "16", "--steps-per-epoch", "2", "--latent-dim", "8", "--base-filters", "8",
       "--strategy", "default"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A labelled 16x16 dataset and a classifier trained on it (through the CLI)."""
    root = tmp_path_factory.mktemp("evaluate")
    data = npz_spec(root / "tiny.npz", *make_images())
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "classifier", "--data", data, "--model-dir", str(root / "clf"), *CLASSIFIER])
    assert exit_info.value.code == 0
    return root, data


def test_classifier_trains_and_validates_on_the_held_out_tail(tiny):
    root, _ = tiny
    history = json.loads((root / "clf" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]
    assert {"accuracy", "loss", "val_accuracy", "val_loss"} <= set(history[-1])
    run_info = json.loads((root / "clf" / "config.json").read_text())
    assert run_info["family"] == "classifier" and run_info["config"]["validation_split"] == 0.1


def test_kid_curve_during_training_and_evaluate_end_to_end(capsys, tiny):
    root, data = tiny
    clf, gan = str(root / "clf"), str(root / "gan")
    code, out, err = run(capsys, "train", "gan", "--data", data, "--model-dir", gan, *GAN, "--eval-every", "1",
                         "--eval-samples", "16", "--eval-classifier", clf)
    assert code == 0, err
    history = json.loads((root / "gan" / "history.json").read_text())
    assert all(np.isfinite(h["kid"]) and h["kid_std"] >= 0 for h in history) and len(history) == 2

    code, out, err = run(capsys, "evaluate", gan, "--num", "32", "--classifier", clf, "--subsets", "3",
                         "--subset-size", "16", "--precision-recall")
    assert code == 0, err
    assert "real vs real" in out and "mode coverage (samples)" in out and "metrics.json" in out
    report = json.loads((root / "gan" / "metrics.json").read_text())
    assert report["num_samples"] == 32 and report["num_real"] == 32
    # An almost untrained GAN is far from the data; two real sets are close.
    assert report["real_vs_real"]["fid"] < report["samples"]["fid"]
    assert report["real_vs_real"]["kid"] < report["samples"]["kid"]
    assert 0 <= report["samples"]["precision"] <= 1 and report["real_vs_real"]["recall"] > 0.5
    assert len(report["mode_coverage"]["samples"]["class_share"]) == 2
    assert report["mode_coverage"]["real"]["mean_confidence"] > 0.5

    code, out, _ = run(capsys, "evaluate", gan, "--num", "8", "--classifier", clf, "--subset-size", "4", "--json")
    assert code == 0 and json.loads(out)["num_samples"] == 8


@pytest.mark.parametrize("args, message", [
    (["/no/such/dir"], "model folder /no/such/dir does not exist"),
    (["{gan}", "--steps", "10"], "--steps applies to diffusion models"),
    (["{clf}"], "evaluate takes a generator; "),
    (["{gan}", "--classifier", "/no/such/clf"], "model folder /no/such/clf does not exist"),
])
def test_evaluate_refuses_bad_input_in_one_line(capsys, tiny, args, message):
    root, _ = tiny
    if not (root / "gan" / "config.json").exists():
        (root / "gan").mkdir(exist_ok=True)
        (root / "gan" / "config.json").write_text(json.dumps({"family": "gan", "config": {}, "data": {"spec": "x"}}))
    args = [a.format(gan=root / "gan", clf=root / "clf") for a in args]
    code, out, err = run(capsys, "evaluate", *args)
    assert code == 1 and err.startswith("error: ") and message in err and len(err.splitlines()) == 1


def test_without_a_classifier_or_inception_weights_the_features_are_pixels_named_with_what_to_do(monkeypatch):
    import keras

    from aigc_keras.metrics.features import feature_net

    def offline(**kwargs):
        raise OSError("URL fetch failure: no internet")

    monkeypatch.setattr(keras.applications, "InceptionV3", offline)
    net = feature_net("npz:faces.npz")
    assert net.name.startswith("raw pixels") and "InceptionV3's ImageNet weights are not here" in net.name
    assert "aigc-keras train classifier" in net.name


def test_shipped_mnist_classifier_classifies_and_separates_real_from_noise():
    from aigc_keras.data import load_images
    from aigc_keras.metrics import image
    from aigc_keras.metrics.features import feature_net

    images, labels = load_images("mnist").arrays(2000)
    net = feature_net("mnist")
    features, probs = net(images)
    assert (probs.argmax(axis=1) == labels).mean() > 0.97
    noise = np.random.default_rng(0).integers(0, 256, images.shape).astype(np.uint8)
    noise_features, _ = net(noise)
    floor = image.fid(features[:1000], features[1000:])
    assert floor * 20 < image.fid(noise_features[:1000], features[:1000])


def test_classifier_mirrored_step_equals_default_step(tiny):
    import keras

    from aigc_keras.classifier.config import ClassifierConfig
    from aigc_keras.classifier.family import ClassifierFamily
    from aigc_keras.training.strategy import resolve_strategy

    _, data_spec = tiny
    family = ClassifierFamily()
    config = ClassifierConfig(data=data_spec, batch_size=16, filters=4, feature_dim=8, dropout=0.0,
                              strategy="default")
    data = family.load_data(config)
    keras.utils.set_random_seed(0)
    reference = family.build(config, data.info())
    weights = reference.get_weights()
    dataset, _ = family.dataset(config, data, 16)
    want = reference.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    with resolve_strategy("mirrored").scope():
        model = family.build(config, data.info())
    model.set_weights(weights)
    got = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
