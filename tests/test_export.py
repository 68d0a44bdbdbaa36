import json

import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from conftest import make_images

from aigc_keras.errors import AigcError
from aigc_keras.export import export_trained, litert
from aigc_keras.gan.config import GANConfig
from aigc_keras.gan.family import GANFamily
from aigc_keras.imaging import to_uint8
from aigc_keras.training.model_dir import ModelDir
from aigc_keras.training.runner import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two tiny trained GANs: plain, and conditional with EMA."""
    root = tmp_path_factory.mktemp("export")
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels)
    dirs = {}
    for name, options in (("plain", {}), ("cond", {"conditional": True, "ema": True})):
        config = GANConfig(data=f"npz:{root / 'data.npz'}", epochs=1, batch_size=16, steps_per_epoch=3,
                           latent_dim=8, base_filters=8, strategy="default", **options)
        train(config, root / name, verbose=0, log=lambda *_: None)
        dirs[name] = root / name
    return dirs


def run_litert(path, **inputs):
    return Interpreter(model_path=str(path)).get_signature_runner("generate")(**inputs)


def test_export_plain_gan_fp32(trained, tmp_path):
    out = tmp_path / "gan"
    meta = export_trained("gan", trained["plain"], out, tflite=True)
    assert sorted(p.name for p in out.iterdir()) == [".aigc-keras", "metadata.json", "model.tflite", "saved_model"]
    assert json.loads((out / "metadata.json").read_text()) == meta
    signature = meta["signatures"]["generate"]
    assert signature["inputs"] == {"z": {"dtype": "float32", "shape": [-1, 8]}}
    assert signature["outputs"]["images"] == {"dtype": "uint8", "shape": [-1, 16, 16, 1]}
    assert signature["outputs"]["images_float"] == {"dtype": "float32", "shape": [-1, 16, 16, 1]}
    assert meta["latent_dim"] == 8 and meta["image_shape"] == [16, 16, 1] and not meta["conditional"]
    assert meta["quantize"] == "none" and meta["parity"]["max_abs_diff"]["generate/images_float"] <= 1e-4
    assert meta["files"]["tflite_bytes"] == (out / "model.tflite").stat().st_size

    model = ModelDir(trained["plain"]).load_model("gan")
    z = np.random.default_rng(5).standard_normal((5, 8)).astype(np.float32)  # another batch size
    want = model.generate(z).numpy()
    got = run_litert(out / "model.tflite", z=z)
    np.testing.assert_allclose(got["images_float"], want, atol=1e-4)
    assert np.abs(got["images"].astype(int) - to_uint8(want).astype(int)).max() <= 1
    served = tf.saved_model.load(str(out / "saved_model")).signatures["generate"](z=tf.constant(z))
    np.testing.assert_allclose(served["images_float"], want, atol=1e-5)
    assert served["images"].dtype == tf.uint8


def test_export_conditional_uses_labels_and_the_ema_generator(trained, tmp_path):
    meta = export_trained("gan", trained["cond"], tmp_path / "c", tflite=True)
    assert meta["signatures"]["generate"]["inputs"]["label"] == {"dtype": "int32", "shape": [-1]}
    assert meta["conditional"] and meta["ema"] and meta["class_names"] == ["0", "1"]
    model = ModelDir(trained["cond"]).load_model("gan")
    z = np.repeat(np.random.default_rng(0).standard_normal((1, 8)).astype(np.float32), 2, axis=0)
    labels = np.array([0, 1], np.int32)
    got = run_litert(tmp_path / "c" / "model.tflite", z=z, label=labels)["images_float"]
    np.testing.assert_allclose(got, model.ema_generator([z, labels], training=False), atol=1e-4)
    assert not np.allclose(got[0], got[1])


@pytest.mark.parametrize("quantize", ["float16", "dynamic"])
def test_quantized_exports_report_their_error(trained, tmp_path, quantize):
    full = export_trained("gan", trained["plain"], tmp_path / "fp32", tflite=True)
    meta = export_trained("gan", trained["plain"], tmp_path / quantize, tflite=True, quantize=quantize)
    assert meta["quantize"] == quantize and meta["parity"]["tolerance"] is None
    diff = meta["parity"]["max_abs_diff"]["generate/images_float"]
    assert 0 < diff < 0.5
    assert meta["files"]["tflite_bytes"] < 0.7 * full["files"]["tflite_bytes"]


def test_failed_parity_writes_nothing_and_keeps_the_old_export(trained, tmp_path, monkeypatch):
    out = tmp_path / "gan"
    export_trained("gan", trained["plain"], out, tflite=True)
    before = (out / "model.tflite").read_bytes()
    monkeypatch.setattr(GANFamily, "export_tolerance", 0.0)
    monkeypatch.setattr(litert, "_litert_parity", lambda *a: {"generate/images_float": (1e-3, True)})
    with pytest.raises(AigcError, match="differs from TensorFlow by 0.001 > 0; nothing was exported"):
        export_trained("gan", trained["plain"], out, tflite=True)
    assert (out / "model.tflite").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gan"]


def test_conversion_needing_flex_ops_is_refused(tmp_path):
    module = tf.Module()
    module.f = tf.function(lambda s: {"n": tf.strings.length(s)},
                           input_signature=[tf.TensorSpec([None], tf.string, name="s")])
    tf.saved_model.save(module, str(tmp_path / "sm"), signatures={"f": module.f})
    with pytest.raises(AigcError, match="needs more than the TFLite builtin ops.*nothing was exported"):
        litert.convert_to_litert(tmp_path / "sm", ["f"])


def test_quantize_needs_tflite(trained, tmp_path):
    with pytest.raises(AigcError, match="--quantize applies to the LiteRT file"):
        export_trained("gan", trained["plain"], tmp_path / "x", tflite=False, quantize="dynamic")


def test_saved_model_only_export(trained, tmp_path):
    meta = export_trained("gan", trained["plain"], tmp_path / "sm", tflite=False)
    assert sorted(p.name for p in (tmp_path / "sm").iterdir()) == [".aigc-keras", "metadata.json", "saved_model"]
    assert "tflite" not in meta["files"] and "parity" not in meta
