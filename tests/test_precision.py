"""Mixed precision: every family trains under mixed_bfloat16 on CPU; sampling and exports are float32."""

import json

import keras
import numpy as np
import pytest

from aigc_keras.classifier.config import ClassifierConfig
from aigc_keras.export import export_trained
from aigc_keras.model_dir import ModelDir
from aigc_keras.text.config import TextConfig
from aigc_keras.training.runner import train

pytestmark = pytest.mark.slow  # end-to-end: trains and exports models

TEXT = "To be, or not to be, that is the question. " * 40


def compute_dtypes(model):
    return {layer.dtype_policy.compute_dtype for layer in model._flatten_layers() if layer.weights}


@pytest.fixture
def configs(gan_config, diffusion_config, images_npz, tmp_path):
    (tmp_path / "t.txt").write_text(TEXT)
    return {
        "gan": lambda **o: gan_config(loss="wgan-gp", conditional=True, **o),
        "diffusion": lambda **o: diffusion_config(conditional=True, **o),
        "transformer": lambda **o: TextConfig(data=f"text:{tmp_path / 't.txt'}", arch="transformer", epochs=1,
                                              batch_size=8, seq_len=16, units=16, heads=2, layers=1,
                                              strategy="default", **o),
        "classifier": lambda **o: ClassifierConfig(data=images_npz, epochs=1, batch_size=16, steps_per_epoch=3,
                                                   filters=4, strategy="default", **o),
    }


@pytest.mark.parametrize("name", ["gan", "diffusion", "transformer", "classifier"])
def test_mixed_bfloat16_trains_with_finite_losses_and_loads_as_float32(configs, tmp_path, name):
    config = configs[name](precision="mixed_bfloat16")
    model = train(config, tmp_path / name, verbose=0, log=lambda _: None)
    assert "bfloat16" in compute_dtypes(model)
    assert keras.config.dtype_policy().name == "float32"  # the global policy is restored
    history = json.loads((tmp_path / name / "history.json").read_text())
    assert all(np.isfinite(v) for k, v in history[-1].items() if k != "epoch")
    loaded = ModelDir(tmp_path / name).load_model(config.family)
    assert compute_dtypes(loaded) == {"float32"}


def test_mixed_float16_scales_every_loss_and_exports_float32(configs, tmp_path):
    config = configs["gan"](precision="mixed_float16")
    model = train(config, tmp_path / "gan", verbose=0, log=lambda _: None)
    for optimizer in (model.d_optimizer, model.g_optimizer):
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        assert int(optimizer.iterations.numpy()) > 0  # steps were applied, not all skipped
    meta = export_trained("gan", tmp_path / "gan", tmp_path / "export", tflite=True)
    assert meta["signatures"]["generate"]["outputs"]["images_float"]["dtype"] == "float32"
    assert max(meta["parity"]["max_abs_diff"].values()) <= 1e-4
