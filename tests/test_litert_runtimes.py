"""Every export runs in both LiteRT APIs (the classic Interpreter and the CompiledModel API that
Android and LiteRT.js use) with the same outputs, for every family, variant and quantization."""

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import make_images

from aigc_keras.cli import main
from aigc_keras.errors import AigcError
from aigc_keras.export import export_trained, litert
from aigc_keras.export.runtime import BOUNDARY_DTYPES, LiteRTModel, boundary_problems
from aigc_keras.model_dir import ModelDir

pytestmark = pytest.mark.slow  # end-to-end: trains and exports models

DIFFUSION = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--timesteps", "40",
             "--base-filters", "8", "--levels", "2", "--strategy", "default"]
DDPM = ["--objective", "eps", "--patch", "1"]
TEXT = ["--epochs", "1", "--batch-size", "8", "--seq-len", "16", "--units", "16", "--layers", "1",
        "--embedding-dim", "8", "--heads", "2", "--strategy", "default"]
GAN = ["--epochs", "1", "--batch-size", "16", "--steps-per-epoch", "2", "--latent-dim", "8", "--base-filters", "8",
       "--strategy", "default"]
CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtimes")
    images, labels = make_images()
    np.savez(root / "data.npz", images=images, labels=labels)
    (root / "corpus.txt").write_text(CORPUS)
    runs = {
        "gan": ["gan", "--data", f"npz:{root / 'data.npz'}", "--conditional", *GAN],
        "diffusion": ["diffusion", "--data", f"npz:{root / 'data.npz'}", "--no-conditional", *DDPM, *DIFFUSION],
        "cdiffusion": ["diffusion", "--data", f"npz:{root / 'data.npz'}", "--conditional", *DDPM, *DIFFUSION],
        "flow": ["diffusion", "--data", f"npz:{root / 'data.npz'}", "--conditional", "--objective", "flow", "--patch",
                 "2", *DIFFUSION],
        "lstm": ["lstm", "--data", f"text:{root / 'corpus.txt'}", *TEXT],
        "transformer": ["lstm", "--data", f"text:{root / 'corpus.txt'}", "--arch", "transformer", *TEXT],
    }
    for name, args in runs.items():
        with pytest.raises(SystemExit) as done:
            main(["train", *args, "--model-dir", str(root / name)])
        assert done.value.code == 0
    return root


def check_both_runtimes(out, meta):
    """The file's boundaries are app-safe, and fresh inputs give equal outputs in both APIs."""
    interpreter = LiteRTModel(out / "model.tflite", "interpreter")
    compiled = LiteRTModel(out / "model.tflite", "compiled")
    assert boundary_problems(interpreter) == []
    rng = np.random.default_rng(42)
    for name, spec in meta["signatures"].items():
        dtypes = {t["dtype"] for side in ("inputs", "outputs") for t in spec[side].values()}
        assert dtypes <= set(BOUNDARY_DTYPES) and all(d > 0 for side in ("inputs", "outputs")
                                                      for t in spec[side].values() for d in t["shape"])
        inputs = {}
        for key, t in spec["inputs"].items():  # inputs an app could send (not the export's own examples)
            if t["dtype"] == "float32":
                inputs[key] = rng.standard_normal(t["shape"]).astype(np.float32)
            else:
                inputs[key] = np.zeros(t["shape"], t["dtype"])
        for key, value in _valid_controls(name, meta).items():
            inputs[key] = value
        a, b = interpreter.run(name, **inputs), compiled.run(name, **inputs)
        for key in a:
            if a[key].dtype == np.float32:
                np.testing.assert_allclose(b[key], a[key], atol=1e-6, err_msg=f"{name}/{key}")
            else:
                np.testing.assert_array_equal(b[key], a[key], err_msg=f"{name}/{key}")


def _valid_controls(signature, meta):
    """Scalar and id inputs set to values a real call uses."""
    if meta["family"] == "diffusion" and signature == "denoise_step":
        ts = meta["timesteps"] + [0.0 if meta["objective"] == "flow" else -1]  # the last step ends at the data
        controls = {"t": np.array(ts[1]), "t_prev": np.array(ts[2])}
        return {**controls, **({"guidance": np.array(2.0, np.float32)} if meta["conditional"] else {})}
    if meta["family"] == "diffusion" and meta["conditional"]:
        return {"guidance": np.array(2.0, np.float32)}
    if signature == "generate" and meta["family"] == "lstm":
        return {"prompt_length": np.array(3, np.int32), "uniform": np.random.default_rng(1).random(
            meta["length"]).astype(np.float32), "temperature": np.array(0.9, np.float32),
            "top_k": np.array(5, np.int32), "top_p": np.array(0.9, np.float32),
            "prompt_ids": np.arange(1, meta["prompt_capacity"] + 1, dtype=np.int32) % meta["vocab_size"]}
    if signature == "step" and meta["arch"] == "transformer":
        return {"position": np.array(2, np.int32), "token": np.array([1], np.int32)}
    if signature == "step":
        return {"token": np.array([1], np.int32)}
    return {}


QUICK = [
    ("gan", "gan", {"batch": 3}, "none"),
    ("cdiffusion", "diffusion", {"steps": 4, "sampler": "dpm++", "batch": 2}, "none"),
    ("flow", "diffusion", {"steps": 3, "sampler": "heun", "batch": 2}, "none"),
    ("lstm", "lstm", {"length": 40, "prompt_length": 8}, "none"),
    ("transformer", "lstm", {"length": 40, "prompt_length": 8}, "none"),
]
MATRIX = [
    ("gan", "gan", {"batch": 2}, "float16"),
    ("gan", "gan", {"batch": 1}, "dynamic"),
    ("gan", "gan", {"batch": 2}, "int8"),
    ("diffusion", "diffusion", {"steps": 5, "sampler": "ddim", "batch": 1}, "none"),
    ("diffusion", "diffusion", {"steps": 5, "sampler": "dpm++", "batch": 3}, "float16"),
    ("cdiffusion", "diffusion", {"steps": 4, "sampler": "ddim", "batch": 2}, "dynamic"),
    ("cdiffusion", "diffusion", {"steps": 4, "sampler": "dpm++", "batch": 1}, "float16"),
    ("flow", "diffusion", {"steps": 4, "sampler": "euler", "batch": 1}, "dynamic"),
    ("flow", "diffusion", {"steps": 2, "sampler": "heun", "batch": 3}, "float16"),
    ("lstm", "lstm", {"length": 30, "prompt_length": 4}, "float16"),
    ("lstm", "lstm", {"length": 30, "prompt_length": 4}, "dynamic"),
    ("transformer", "lstm", {"length": 30, "prompt_length": 4}, "float16"),
    ("transformer", "lstm", {"length": 30, "prompt_length": 4}, "dynamic"),
]


@pytest.mark.parametrize("name, family, options, quantize",
                         QUICK + [pytest.param(*case, marks=pytest.mark.slow) for case in MATRIX],
                         ids=[f"{c[0]}-{c[3]}-{'-'.join(map(str, c[2].values()))}" for c in QUICK + MATRIX])
def test_every_signature_runs_the_same_in_both_litert_apis(models, tmp_path, name, family, options, quantize):
    out = tmp_path / "export"
    meta = export_trained(family, models / name, out, tflite=True, quantize=quantize, **options)
    diffs = meta["runtimes"]["compiled_vs_interpreter_max_abs_diff"]
    assert set(diffs) == {f"{s}/{o}" for s, spec in meta["signatures"].items() for o in spec["outputs"]}
    assert max(diffs.values()) <= 1e-6
    check_both_runtimes(out, meta)


def test_text_generate_equals_sample_past_the_context_in_both_apis(models, tmp_path):
    """The transformer's context is 16 tokens; 60 new ids restart it several times, in the graph as in
    `sample`, with the same ids for the same uniforms (sampled, not greedy)."""
    model = ModelDir(models / "transformer").load_model("lstm")
    meta = export_trained("lstm", models / "transformer", tmp_path / "t", tflite=True, length=60, prompt_length=8)
    text = model.generate("All:", 60, temperature=0.9, top_k=8, top_p=0.95, seed=3)
    vocabulary = meta["vocabulary"]
    prompt = [vocabulary.index(c) for c in "All:"]
    inputs = {"prompt_ids": np.array(prompt + [0] * 4, np.int32), "prompt_length": np.array(4, np.int32),
              "uniform": np.random.default_rng(3).random(60).astype(np.float32),
              "temperature": np.array(0.9, np.float32), "top_k": np.array(8, np.int32),
              "top_p": np.array(0.95, np.float32)}
    for api in ("interpreter", "compiled"):
        ids = LiteRTModel(tmp_path / "t" / "model.tflite", api).run("generate", **inputs)["ids"]
        assert "".join(vocabulary[i] for i in ids) == text


def test_streaming_recipe_through_step_reproduces_generate(models, tmp_path):
    """metadata.json's recipe for an app streaming with `step` gives `generate`'s ids, past the context."""
    meta = export_trained("lstm", models / "transformer", tmp_path / "t", tflite=True, length=40, prompt_length=8)
    runner = LiteRTModel(tmp_path / "t" / "model.tflite", "compiled")
    window = meta["max_positions"]
    uniform = np.random.default_rng(9).random(40).astype(np.float32)
    prompt = [5, 6, 7]
    fresh = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in meta["state"]}

    def read(ids):
        state = dict(fresh)
        for token in ids:
            out = runner.run("step", token=np.array([token], np.int32), **state)
            state = {k: out[k] for k in fresh}
        return state

    history = list(prompt)
    state = read(history[-window:-1])
    for u in uniform:
        if int(state["position"]) == window:
            state = read(history[-(window // 2):-1])
        out = runner.run("step", token=np.array([history[-1]], np.int32), **state)
        state = {k: out[k] for k in fresh}
        logits = out["logits"][0].copy()
        logits[meta["unknown_id"]] = -np.inf  # metadata's sampling rule: never the unknown id
        cdf = np.cumsum(np.exp(logits - logits.max()))
        history.append(int(min(np.sum(cdf <= u * cdf[-1]), len(cdf) - 1)))  # temperature 1, no filters
    ids = runner.run("generate", prompt_ids=np.array(prompt + [0] * 5, np.int32), prompt_length=np.array(3, np.int32),
                     uniform=uniform, temperature=np.array(1.0, np.float32), top_k=np.array(0, np.int32),
                     top_p=np.array(1.0, np.float32))["ids"]
    assert history[3:] == ids.tolist()


def test_step_past_the_context_gives_nan_logits_never_wrong_ones(models, tmp_path):
    meta = export_trained("lstm", models / "transformer", tmp_path / "t", tflite=True, length=8, prompt_length=4)
    state = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in meta["state"]}
    runner = LiteRTModel(tmp_path / "t" / "model.tflite", "compiled")
    inside = runner.run("step", token=np.array([1], np.int32), **{**state, "position": np.array(15, np.int32)})
    past = runner.run("step", token=np.array([1], np.int32), **{**state, "position": np.array(16, np.int32)})
    assert np.all(np.isfinite(inside["logits"])) and np.all(np.isnan(past["logits"]))
    model = ModelDir(models / "transformer").load_model("lstm")
    logits, _ = model.step(tf.constant([1]), [tf.constant(16), *[tf.zeros(s["shape"]) for s in meta["state"][1:]]])
    assert np.all(np.isnan(logits.numpy()))


@pytest.mark.parametrize("name", ["lstm", "transformer"])
def test_evaluate_an_export_scores_the_tflite_like_the_model(models, tmp_path, capsys, name):
    export_trained("lstm", models / name, tmp_path / "e", tflite=True, length=8, prompt_length=4)
    for target in (models / name, tmp_path / "e"):
        with pytest.raises(SystemExit) as done:
            main(["evaluate", str(target), "--json"])
        assert done.value.code == 0
    model_bpc = json.loads((models / name / "metrics.json").read_text())["bits_per_character"]
    export = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert export["runtime"] == "LiteRT CompiledModel" and export["quantize"] == "none"
    assert math.isclose(export["bits_per_character"], model_bpc, abs_tol=1e-4)


def test_evaluate_an_image_export_through_litert(models, tmp_path, capsys):
    """FID/KID of what the .tflite draws equal the model's own on the same seed (same noise)."""
    with pytest.raises(SystemExit) as done:
        main(["train", "classifier", "--data", f"npz:{models / 'data.npz'}", "--model-dir", str(tmp_path / "clf"),
              "--epochs", "1", "--batch-size", "16", "--strategy", "default"])
    assert done.value.code == 0
    export_trained("gan", models / "gan", tmp_path / "e", tflite=True, batch=7)
    capsys.readouterr()
    reports = []
    for target in (models / "gan", tmp_path / "e"):
        with pytest.raises(SystemExit) as done:
            main(["evaluate", str(target), "--num", "40", "--classifier", str(tmp_path / "clf"), "--json"])
        assert done.value.code == 0
        reports.append(json.loads(capsys.readouterr().out))
    model, export = reports
    assert export["tflite"].endswith("model.tflite") and export["num_samples"] == 40
    assert math.isclose(export["samples"]["fid"], model["samples"]["fid"], rel_tol=1e-3, abs_tol=1e-3)
    assert export["mode_coverage"]["samples"]["class_share"] == model["mode_coverage"]["samples"]["class_share"]


def test_an_int64_boundary_is_refused(tmp_path):
    """LiteRT.js loads no model with an int64 input or output anywhere."""
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    function = tf.function(lambda x: {"best": tf.argmax(model(x), axis=-1)},  # int64
                           input_signature=[tf.TensorSpec([1, 3], tf.float32, name="x")])
    endpoint = litert.Endpoint("f", function, [{"x": np.ones((1, 3), np.float32)}], "")
    with pytest.raises(AigcError, match="tensors an app runtime cannot take.*f/best is int64"):
        litert.export_bundle(model, [endpoint], tmp_path / "x", True, "none", {})
    assert not (tmp_path / "x").exists()
