"""DiffusionModel training, guidance, the sampling loop, saving and distribution."""

import contextlib
import functools
import io
import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import build_model

from aigc_keras.diffusion.family import DiffusionFamily
from aigc_keras.diffusion.pipeline import generate_fn, generate_steps
from aigc_keras.diffusion.samplers import make_sampler
from aigc_keras.errors import AigcError
from aigc_keras.export import export_trained
from aigc_keras.export.runtime import LiteRTModel
from aigc_keras.imaging import to_uint8
from aigc_keras.inputs import noise_and_labels
from aigc_keras.training.runner import train
from aigc_keras.training.strategy import resolve_strategy

FAMILY = DiffusionFamily()
build = functools.partial(build_model, FAMILY)

SLOW = pytest.mark.slow


@pytest.mark.parametrize("options", [
    {}, pytest.param({"objective": "v", "schedule": "cosine"}, marks=SLOW),
    pytest.param({"conditional": True}, marks=SLOW), {"objective": "flow", "time_sampling": "logit-normal"},
    pytest.param({"objective": "flow", "patch": 2}, marks=SLOW),
    pytest.param({"loss_weighting": "min-snr", "lr_schedule": "cosine", "warmup_steps": 5, "learning_rate": 2e-3},
                 marks=SLOW),
])
def test_fit_lowers_the_denoising_loss(diffusion_config, options):
    model, dataset = build(diffusion_config(epochs=41, steps_per_epoch=1, **options))  # 41 batches
    before = [w.numpy().copy() for w in model.network.trainable_weights]
    history = model.fit(dataset, epochs=1, steps_per_epoch=40, verbose=0, shuffle=False).history
    assert set(history) == {"loss"} and int(model.optimizer.iterations.numpy()) == 40
    first = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0).history["loss"][0]
    # An untrained network (zero output) scores E[eps^2] = 1 on eps, E[(eps - x_0)^2] = 1 + E[x_0^2] on a
    # flow (whose best loss stays higher: the velocity at mid t is uncertain).
    x0 = next(iter(dataset))[0].numpy()
    flow = options.get("objective") == "flow"
    untrained = 1.0 + float(np.mean(x0**2)) if flow else 1.0
    assert np.isfinite(first) and first < (0.75 if flow else 0.6) * untrained
    assert all(not np.allclose(a, w.numpy()) for a, w in zip(before, model.network.trainable_weights)
               if a.size > 1 and "norm" not in w.path)


def test_loss_of_the_first_step_is_the_mse_to_the_noise(diffusion_config):
    """The output conv starts at zero, so the first loss is E[eps^2] = 1 (eps) up to sampling."""
    model, dataset = build(diffusion_config(batch_size=32))
    logs = model.train_step(next(iter(dataset)))
    assert 0.8 < float(logs["loss"]) < 1.2


@pytest.mark.slow
def test_mirrored_step_equals_default_step_and_ema_works_there(diffusion_config):
    config = diffusion_config(ema_momentum=0.5, conditional=True, objective="v")
    reference, dataset = build(config)
    weights = reference.get_weights()
    want = reference.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    mirrored = resolve_strategy("mirrored")
    assert mirrored.num_replicas_in_sync == 2
    model, dataset = build(config, strategy=mirrored, weights=weights)
    got = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-4, atol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    ema = [w.numpy() for w in model.ema_network.weights]
    net = [w.numpy() for w in model.network.weights]
    assert any(not np.allclose(a, b) for a, b in zip(ema, net))  # the EMA lags the network
    assert model.denoiser is model.ema_network


def test_guidance_and_labels_need_a_conditional_model(diffusion_config):
    model, _ = build(diffusion_config())
    with pytest.raises(ValueError, match="^guidance needs a conditional model"):
        model.generate(2, 0, guidance=2.0, steps=2)
    with pytest.raises(ValueError, match="^labels needs a conditional model"):
        model.generate(2, 0, labels=1, steps=2)


@pytest.mark.slow
def test_guidance_combines_conditional_and_unconditional_predictions(diffusion_config):
    model, dataset = build(diffusion_config(conditional=True))
    model.fit(dataset, epochs=1, steps_per_epoch=3, verbose=0)
    x = tf.random.normal((3, 16, 16, 1), seed=1)
    labels = tf.constant([0, 1, 0])
    cond = model.predict_eps(x, 20, labels)
    uncond = model.predict_eps(x, 20, tf.fill([3], model.num_classes))
    got = model.predict_eps(x, 20, labels, tf.constant(2.5))
    np.testing.assert_allclose(got, uncond + 2.5 * (cond - uncond), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("sampler", [pytest.param("ddpm", marks=SLOW), "ddim", pytest.param("dpm++", marks=SLOW)])
def test_one_graph_loop_equals_the_step_by_step_loop(diffusion_config, sampler):
    model, dataset = build(diffusion_config())
    model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    chosen = make_sampler(sampler, model.schedule)
    noise = tf.random.normal((2, 16, 16, 1), seed=2)
    steps = 50 if sampler == "ddpm" else 8
    graph = tf.function(generate_fn(model, chosen, steps))(noise, seed=7)
    seen = []
    eager = generate_steps(model, chosen, steps, noise, seed=7, on_step=lambda i, x: seen.append(i))
    np.testing.assert_allclose(graph, eager, atol=1e-5)
    assert seen == list(range(steps))
    again = tf.function(generate_fn(model, chosen, steps))(noise, seed=7)
    np.testing.assert_array_equal(graph, again)  # DDIM (eta 0) and fixed seeds are deterministic
    if sampler == "ddpm":
        other = tf.function(generate_fn(model, chosen, steps))(noise, seed=8)
        assert not np.allclose(graph, other)


def test_sampling_again_reuses_the_traced_graph_and_gives_the_same_images(diffusion_config):
    model, _ = build(diffusion_config(conditional=True))
    first = [FAMILY.sample(model, n, seed, steps=3, guidance=1.5)[0] for n, seed in ((5, 0), (5, 1), (3, 2))]
    (generate,) = model.__dict__["_compiled_loops"].values()
    assert generate.experimental_get_tracing_count() <= 2  # a new seed is not a new graph; a new size may be
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(FAMILY.sample(model, 5, 1, steps=3, guidance=1.5)[0], first[1])
    uncached = tf.function(generate_fn(model, make_sampler("ddim", model.schedule), 3))
    noise, labels = noise_and_labels(5, model.image_shape, 1, model.num_classes, None)
    np.testing.assert_array_equal(to_uint8(uncached(noise, tf.constant(labels), tf.constant(1.5))), first[1])


@pytest.mark.slow
def test_model_reloads_without_custom_objects(diffusion_config, tmp_path):
    model, dataset = build(diffusion_config(conditional=True, ema=True, objective="v"))
    model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0)
    model.save(tmp_path / "d.keras")
    loaded = keras.models.load_model(tmp_path / "d.keras")
    x, labels = tf.random.normal((2, 16, 16, 1), seed=3), tf.constant([0, 1])
    np.testing.assert_allclose(loaded.predict_eps(x, 10, labels, 2.0), model.predict_eps(x, 10, labels, 2.0),
                               atol=1e-5)
    assert loaded.objective == "v" and loaded.ema_network is not None
    assert int(loaded.optimizer.iterations.numpy()) == 2


@pytest.fixture(scope="module")
def trained_conditional(tmp_path_factory):
    from conftest import make_images

    from aigc_keras.diffusion.config import DiffusionConfig

    root = tmp_path_factory.mktemp("diffusion")
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels)
    config = DiffusionConfig(data=f"npz:{root / 'data.npz'}", epochs=1, batch_size=16, steps_per_epoch=3,
                             timesteps=1000, base_filters=8, levels=2, conditional=True, objective="eps", patch=1,
                             strategy="default")
    train(config, root / "model", verbose=0, log=lambda *_: None)
    return root / "model"


@pytest.mark.slow
def test_export_runs_the_whole_sampler_in_one_litert_signature(trained_conditional, tmp_path):
    meta = export_trained("diffusion", trained_conditional, tmp_path / "exp", tflite=True, steps=6, sampler="dpm++",
                          batch=3)
    assert meta["parity"]["max_abs_diff"]["generate/images_float"] <= 1e-3
    assert meta["sampler"] == "dpm++" and meta["steps"] == 6 and len(meta["timesteps"]) == 6
    assert meta["null_label"] == 2 and len(meta["schedule"]["alphas_cumprod"]) == 1000
    assert set(meta["signatures"]) == {"generate", "denoise_step", "edit"}
    assert meta["signatures"]["generate"]["inputs"]["noise"]["shape"] == [3, 16, 16, 1] and meta["batch"] == 3
    assert json.loads((tmp_path / "exp" / "metadata.json").read_text())["files"]["tflite"] == "model.tflite"

    noise = np.random.default_rng(5).standard_normal((3, 16, 16, 1)).astype(np.float32)
    labels = np.array([1, 0, 1], np.int32)
    litert = LiteRTModel(tmp_path / "exp" / "model.tflite", "compiled")
    got = litert.run("generate", noise=noise, label=labels, guidance=np.array(2.0, np.float32))
    saved = tf.saved_model.load(str(tmp_path / "exp" / "saved_model")).signatures["generate"]
    want = saved(noise=noise, label=labels, guidance=tf.constant(2.0))
    assert got["images"].dtype == np.uint8 and got["images"].shape == (3, 16, 16, 1)
    np.testing.assert_allclose(got["images_float"], want["images_float"].numpy(), atol=1e-3)
    structure = io.StringIO()
    with contextlib.redirect_stdout(structure):
        tf.lite.experimental.Analyzer.analyze(model_path=str(tmp_path / "exp" / "model.tflite"))
    assert " WHILE(" in structure.getvalue() and "Flex" not in structure.getvalue()  # a loop, not unrolled

    step = litert.run("denoise_step", x=noise, t=np.array(49, np.int32), t_prev=np.array(30, np.int32),
                      label=labels, guidance=np.array(1.0, np.float32))
    assert step["x_prev"].shape == noise.shape and step["images"].dtype == np.uint8


@pytest.mark.slow
def test_export_refuses_a_stochastic_sampler_and_bad_steps(trained_conditional, tmp_path):
    with pytest.raises(AigcError, match="deterministic sampler"):
        export_trained("diffusion", trained_conditional, tmp_path / "x", tflite=True, sampler="ddpm")
    with pytest.raises(AigcError, match="1..1000"):
        export_trained("diffusion", trained_conditional, tmp_path / "x", tflite=True, steps=1001)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_float16_export_stays_finite(trained_conditional, tmp_path):
    """float16 rounds alpha_bar near t = 0 to 1: the graph must not compute 1 - alpha_bar."""
    meta = export_trained("diffusion", trained_conditional, tmp_path / "q", tflite=True, quantize="float16", steps=4)
    diffs = meta["parity"]["max_abs_diff"]
    assert all(np.isfinite(d) for d in diffs.values()), diffs
    assert diffs["generate/images_float"] < 0.5
