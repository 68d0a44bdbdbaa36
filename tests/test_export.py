import json

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_images

from aigc_keras.errors import AigcError
from aigc_keras.export import export_trained, litert
from aigc_keras.export.runtime import LiteRTModel
from aigc_keras.gan.config import GANConfig
from aigc_keras.gan.family import GANFamily
from aigc_keras.imaging import to_uint8
from aigc_keras.model_dir import ModelDir
from aigc_keras.training.runner import train

pytestmark = pytest.mark.slow  # end-to-end: trains and exports models


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny trained GANs: plain, and conditional with EMA."""
    root = tmp_path_factory.mktemp("export")
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels)
    dirs = {}
    for name, options in (("plain", {"conditional": False}), ("cond", {"conditional": True, "ema": True})):
        config = GANConfig(data=f"npz:{root / 'data.npz'}", epochs=1, batch_size=16, steps_per_epoch=3,
                           latent_dim=8, base_filters=8, strategy="default", **options)
        train(config, root / name, verbose=0, log=lambda *_: None)
        dirs[name] = root / name
    return dirs


def run_litert(path, api="interpreter", **inputs):
    return LiteRTModel(path, api).run("generate", **inputs)


def test_export_plain_gan_fp32_runs_the_same_in_both_litert_apis(trained, tmp_path):
    out = tmp_path / "gan"
    meta = export_trained("gan", trained["plain"], out, tflite=True, batch=5)
    assert sorted(p.name for p in out.iterdir()) == [".aigc-keras", "metadata.json", "model.tflite", "saved_model"]
    assert json.loads((out / "metadata.json").read_text()) == meta
    signature = meta["signatures"]["generate"]
    assert signature["inputs"] == {"z": {"dtype": "float32", "shape": [5, 8]}} and meta["batch"] == 5
    assert signature["outputs"]["images"] == {"dtype": "uint8", "shape": [5, 16, 16, 1]}
    assert signature["outputs"]["images_float"] == {"dtype": "float32", "shape": [5, 16, 16, 1]}
    assert meta["latent_dim"] == 8 and meta["image_shape"] == [16, 16, 1] and not meta["conditional"]
    assert meta["quantize"] == "none" and meta["parity"]["max_abs_diff"]["generate/images_float"] <= 1e-4
    assert meta["runtimes"]["checked"] == ["interpreter", "compiled"]
    assert meta["files"]["tflite_bytes"] == (out / "model.tflite").stat().st_size

    model = ModelDir(trained["plain"]).load_model("gan")
    z = np.random.default_rng(5).standard_normal((5, 8)).astype(np.float32)  # not the examples it checked
    want = model.draw(z).numpy()
    got = run_litert(out / "model.tflite", z=z)
    again = run_litert(out / "model.tflite", "compiled", z=z)
    np.testing.assert_allclose(got["images_float"], want, atol=1e-4)
    np.testing.assert_array_equal(again["images"], got["images"])
    np.testing.assert_allclose(again["images_float"], got["images_float"], atol=1e-6)
    assert np.abs(got["images"].astype(int) - to_uint8(want).astype(int)).max() <= 1
    served = tf.saved_model.load(str(out / "saved_model")).signatures["generate"](z=tf.constant(z))
    np.testing.assert_allclose(served["images_float"], want, atol=1e-5)
    assert served["images"].dtype == tf.uint8


def test_export_conditional_uses_labels_and_the_ema_generator(trained, tmp_path):
    meta = export_trained("gan", trained["cond"], tmp_path / "c", tflite=True, batch=2)
    assert meta["signatures"]["generate"]["inputs"]["label"] == {"dtype": "int32", "shape": [2]}
    assert meta["conditional"] and meta["ema"] and meta["class_names"] == ["0", "1"]
    model = ModelDir(trained["cond"]).load_model("gan")
    z = np.repeat(np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32), 2, axis=0)
    labels = np.array([0, 1], np.int32)
    got = run_litert(tmp_path / "c" / "model.tflite", "compiled", z=z, label=labels)["images_float"]
    np.testing.assert_allclose(got, model.ema_generator([z, labels], training=False), atol=1e-4)
    assert not np.allclose(got[0], got[1])


@pytest.mark.parametrize("quantize", ["float16", "dynamic", "int8"])
def test_quantized_exports_report_their_error_and_quality(trained, tmp_path, quantize, monkeypatch):
    from aigc_keras.metrics import features

    # A fixed feature map stands in for InceptionV3 (which 16x16 test images cannot use offline).
    monkeypatch.setattr(features, "feature_net", lambda spec, classifier_dir=None: features.FeatureNet(
        "pixels", lambda images: (tf.reshape(tf.cast(images, tf.float32), [tf.shape(images)[0], -1])[:, ::8],
                                  tf.zeros([tf.shape(images)[0], 0])), False))
    full = export_trained("gan", trained["plain"], tmp_path / "fp32", tflite=True)
    meta = export_trained("gan", trained["plain"], tmp_path / quantize, tflite=True, quantize=quantize)
    assert meta["quantize"] == quantize and meta["parity"]["tolerance"] is None
    diff = meta["parity"]["max_abs_diff"]["generate/images_float"]
    assert 0 < diff < 0.5
    assert meta["files"]["tflite_bytes"] < 0.7 * full["files"]["tflite_bytes"]
    quality = meta["quality"]
    assert quality["measured"] and quality["metric"].startswith("FID of 500 samples (pixels)")
    assert quality["litert"] > 0 and quality["keras"] > 0 and quality["collapsed"] == (
        quality["litert"] > 2 * quality["keras"]) and len(quality["warnings"]) == quality["collapsed"]


def test_int8_is_refused_where_calibration_cannot_run_the_loop(tmp_path):
    with pytest.raises(AigcError, match="quantize int8 is not available for text models: TFLite's int8"):
        export_trained("lstm", tmp_path / "any", tmp_path / "x", tflite=True, quantize="int8")


def test_failed_parity_writes_nothing_and_keeps_the_old_export(trained, tmp_path, monkeypatch):
    out = tmp_path / "gan"
    export_trained("gan", trained["plain"], out, tflite=True)
    before = (out / "model.tflite").read_bytes()
    monkeypatch.setattr(GANFamily, "export_tolerance", 0.0)
    with pytest.raises(AigcError, match=r"generate/images_float differs from TensorFlow by .* nothing was exported"):
        export_trained("gan", trained["plain"], out, tflite=True)
    assert (out / "model.tflite").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan"]


@pytest.mark.parametrize("output, change, message", [
    ("images", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 7, a ^ 8, a), "generate/images differs"),
    ("images_float", lambda a: np.where(np.arange(a.size).reshape(a.shape) == 3, np.nan, a), "is not finite"),
])
def test_parity_gates_cover_uint8_outputs_and_non_finite_values(trained, tmp_path, monkeypatch, output, change,
                                                                  message):
    """A pixel 8 levels off, or one NaN, fails the export even where every float is within tolerance."""
    original = LiteRTModel.run

    def tampered(self, signature, **inputs):
        out = original(self, signature, **inputs)
        return {**out, output: change(out[output])}

    monkeypatch.setattr(LiteRTModel, "run", tampered)
    with pytest.raises(AigcError, match=message):
        export_trained("gan", trained["plain"], tmp_path / "x", tflite=True)
    assert not (tmp_path / "x").exists()


def test_compiled_model_disagreeing_with_the_interpreter_fails_the_export(trained, tmp_path, monkeypatch):
    original = LiteRTModel.run

    def off(self, signature, **inputs):
        out = original(self, signature, **inputs)
        return {**out, "images_float": out["images_float"] + 1e-5} if self.api == "compiled" else out

    monkeypatch.setattr(LiteRTModel, "run", off)
    with pytest.raises(AigcError, match="CompiledModel API and its Interpreter differ on generate/images_float"):
        export_trained("gan", trained["plain"], tmp_path / "x", tflite=True)


def test_conversion_needing_flex_ops_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda s: {"n": tf.strings.length(s)},
                           input_signature=[tf.TensorSpec([None], tf.string, name="s")])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"f": module.f})
    with pytest.raises(AigcError, match="needs more than the TFLite builtin ops.*nothing was exported"):
        litert.convert_to_litert(tmp_path / "sm", ["f"])


def test_quantize_needs_tflite(trained, tmp_path):
    with pytest.raises(AigcError, match="^quantize applies to the LiteRT file"):
        export_trained("gan", trained["plain"], tmp_path / "x", tflite=False, quantize="dynamic")


def test_saved_model_only_export(trained, tmp_path):
    meta = export_trained("gan", trained["plain"], tmp_path / "sm", tflite=False)
    assert sorted(p.name for p in (tmp_path / "sm").iterdir()) == [".aigc-keras", "metadata.json", "saved_model"]
    assert "tflite" not in meta["files"] and "parity" not in meta
