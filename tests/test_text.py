"""The autoregressive family: tokenizers, windows, sampling filters, models, CLI, export, evaluation."""

import json
import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import run_cli as run

from aigc_keras.data.text import TokenWindows, load_text
from aigc_keras.errors import AigcError
from aigc_keras.export.runtime import LiteRTModel
from aigc_keras.text.config import TextConfig
from aigc_keras.text.family import TextFamily
from aigc_keras.text.models import LSTMLanguageModel, TransformerLanguageModel
from aigc_keras.text.sampling import filter_logits, generate_fn, next_token
from aigc_keras.text.tokenizer import (
    ByteTokenizer,
    CharTokenizer,
    tokenizer_from_config,
)
from aigc_keras.training.strategy import resolve_strategy

FAMILY = TextFamily()
CORPUS = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
          "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 12
TINY = ["--epochs", "2", "--batch-size", "8", "--seq-len", "16", "--units", "16", "--layers", "1",
        "--embedding-dim", "8", "--heads", "2", "--lr-schedule", "constant", "--strategy", "default"]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(CORPUS, encoding="utf-8")
    return f"text:{path}"


# Tokenizers and data

def test_bytes_that_are_not_utf8_decode_to_nothing_whole_or_streamed():
    tok = tokenizer_from_config({"kind": "bytes"})
    ids = list(b"a\xffb\xe4\xb8") + list("中é".encode())  # a stray byte, a character cut short, then two whole
    assert tok.decode(ids) == "ab中é"
    stream = tok.stream_decoder()
    assert "".join(stream(i) for i in ids) == "ab中é"
    assert tok.num_characters(ids) == 6  # bits per character count each bad sequence as the one it stands for


def test_char_tokenizer_round_trips_any_script_and_reserves_unknown():
    tok = CharTokenizer.build("ROMEO: 你好，世界\n")
    ids = tok.encode("你好 ROMEO")
    assert tok.decode(ids) == "你好 ROMEO" and ids.dtype == np.int32 and 0 not in ids
    assert tok.vocab_size == len(set("ROMEO: 你好，世界\n")) + 1
    assert tok.encode("Z你").tolist()[0] == 0 and tok.unknown_count("Zq你!") == 3
    assert tok.decode(tok.encode("Z")) == "\ufffd"
    assert tokenizer_from_config(json.loads(json.dumps(tok.to_config()))).encode("你好").tolist() == \
        tok.encode("你好").tolist()


def test_byte_tokenizer_is_open_and_streams_multibyte_characters():
    tok = ByteTokenizer()
    ids = tok.encode("a你")
    assert ids.tolist() == [97, 0xE4, 0xBD, 0xA0] and tok.decode(ids) == "a你"
    stream = tok.stream_decoder()
    assert [stream(i) for i in ids] == ["a", "", "", "你"]
    assert tok.num_characters(ids) == 2 and tok.unknown_count("anything 你") == 0


def test_windows_cover_each_target_once_and_batches_are_single_tensors():
    ids = np.arange(50, dtype=np.int32)
    w = TokenWindows.from_ids("x", ids, 10)
    assert w.windows.shape == (4, 11) and w.windows[1].tolist() == list(range(10, 21))
    batches = list(w.batches(2, seed=0, num_epochs=2))
    assert len(batches) == 4 and all(b.shape == (2, 11) and b.dtype == tf.int32 for b in batches)
    again = list(w.batches(2, seed=0, num_epochs=1, start_epoch=1))
    np.testing.assert_array_equal(np.concatenate(again), np.concatenate(batches[2:]))
    with pytest.raises(AigcError, match="fewer than one batch"):
        w.batches(5, seed=0, num_epochs=1)


def test_text_specs_load_files_folders_and_the_embedded_corpus(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "1.txt").write_text("一二三", encoding="utf-8")
    (tmp_path / "a" / "2.txt").write_text("four", encoding="utf-8")
    assert load_text(f"text:{tmp_path / 'a'}").text == "一二三\nfour"
    data = load_text("shakespeare")
    assert len(data.text) == 1_115_394 and data.text.startswith("First Citizen:")
    train, val = data.split(0.1)
    assert train + val == data.text and len(val) == round(len(data.text) * 0.1)
    (tmp_path / "bad.txt").write_bytes(b"ok \xff\xfe")
    with pytest.raises(AigcError, match="is not UTF-8"):
        load_text(f"text:{tmp_path / 'bad.txt'}")
    with pytest.raises(AigcError, match="does not exist"):
        load_text("text:/no/such.txt")
    with pytest.raises(AigcError, match="unknown text spec"):
        load_text("wikipedia")


def test_tfds_text_datasets_load_offline_with_mock_data(tmp_path):
    import tensorflow_datasets as tfds

    def as_dataset(self, *args, **kwargs):
        return tf.data.Dataset.from_tensor_slices({"text": ["To be, or not", "to be"]})

    with tfds.testing.mock_data(num_examples=2, data_dir=str(tmp_path), as_dataset_fn=as_dataset):
        assert load_text("tfds:tiny_shakespeare").text == "To be, or not\nto be"


# Sampling filters against NumPy

def softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


LOGITS = np.array([[2.0, 1.0, 0.5, 0.0, -1.0, 3.0]], np.float32)


def kept(filtered):
    return set(np.flatnonzero(filtered[0] > -1e8))


@pytest.mark.parametrize("k", [1, 2, 4, 6, 0])
def test_top_k_keeps_the_k_largest(k):
    got = filter_logits(LOGITS, 1.0, k, 1.0).numpy()
    want = set(np.argsort(-LOGITS[0])[:k if k else 6])
    assert kept(got) == want
    np.testing.assert_allclose(got[0, sorted(want)], LOGITS[0, sorted(want)])


@pytest.mark.parametrize("p", [0.05, 0.3, 0.6, 0.8, 0.95, 0.999, 1.0])
def test_top_p_keeps_the_smallest_set_whose_mass_reaches_p(p):
    probs = softmax(LOGITS[0].astype(np.float64))
    order = np.argsort(-probs)
    mass = np.cumsum(probs[order])
    size = int(np.searchsorted(mass, p) + 1) if p < 1 else len(probs)
    want = set(order[:size])
    assert probs[list(want)].sum() >= min(p, 1 - 1e-9)
    assert size == 1 or probs[order[:size - 1]].sum() < p  # smallest such set
    assert kept(filter_logits(LOGITS, 1.0, 0, p).numpy()) == want


def test_temperature_scales_and_filters_compose_in_order():
    got = filter_logits(LOGITS, 0.5, 3, 1.0).numpy()
    assert kept(got) == {5, 0, 1}
    np.testing.assert_allclose(got[0, [5, 0, 1]], LOGITS[0, [5, 0, 1]] / 0.5)
    # top-p is measured on the top-k renormalised distribution
    top3 = softmax(LOGITS[0, [5, 0, 1]] / 0.5)
    assert top3[0] < 0.9 < top3[:2].sum()
    assert kept(filter_logits(LOGITS, 0.5, 3, 0.9).numpy()) == {5, 0}


def test_next_token_inverts_the_cdf_and_temperature_zero_is_greedy():
    probs = softmax(LOGITS[0].astype(np.float64))
    cdf = np.cumsum(probs)
    for u in [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999]:
        want = int(np.searchsorted(cdf, u, side="right"))
        assert int(next_token(LOGITS, np.array([u], np.float32), 1.0, 0, 1.0)[0]) == want
    assert int(next_token(LOGITS, np.array([0.0], np.float32), 0.0, 0, 1.0)[0]) == 5
    draws = [int(next_token(LOGITS, np.array([u], np.float32), 1.0, 2, 1.0)[0]) for u in np.linspace(0, 0.99, 50)]
    assert set(draws) == {5, 0}


# Models

@pytest.mark.parametrize("model_class, options", [
    (LSTMLanguageModel, {"embedding_dim": 8, "units": 16, "layers": 2}),
    (TransformerLanguageModel, {"units": 16, "layers": 2, "heads": 2}),
])
def test_stepping_with_state_equals_the_full_forward_pass(model_class, options):
    keras.utils.set_random_seed(0)
    model = model_class(12, {"kind": "bytes"}, 10, **options)
    ids = np.random.default_rng(0).integers(0, 12, (3, 10)).astype(np.int32)
    full = model(ids).numpy()
    state, steps = model.initial_state(3), []
    for t in range(10):
        logits, state = model.step(tf.constant(ids[:, t]), state)
        steps.append(logits.numpy())
    np.testing.assert_allclose(np.stack(steps, axis=1), full, atol=1e-5)
    restored = keras.models.model_from_json(model.to_json())  # registered and configurable
    assert type(restored) is model_class and restored.max_positions == model.max_positions


def test_training_lowers_bpc_and_reports_validation_metrics(corpus):
    config = TextConfig(data=corpus, epochs=1, batch_size=8, seq_len=16, units=32, layers=1, strategy="default",
                        learning_rate=1e-2, lr_schedule="constant")
    data = FAMILY.load_data(config)
    info = FAMILY.data_info(config, data)
    model = FAMILY.build(config, info)
    dataset, steps = FAMILY.dataset(config, data, 8)
    history = model.fit(dataset.repeat(), epochs=4, steps_per_epoch=steps,
                        validation_data=FAMILY.validation_data(config, data), verbose=0,
                        shuffle=False).history
    assert {"loss", "bpc", "perplexity", "val_loss", "val_bpc", "val_perplexity"} <= set(history)
    assert history["bpc"][-1] < history["bpc"][0] - 1.0
    assert history["val_bpc"][-1] == pytest.approx(history["val_loss"][-1] / math.log(2), rel=1e-5)
    assert history["perplexity"][-1] == pytest.approx(math.exp(history["loss"][-1]), rel=1e-4)
    assert history["bpc"][0] < math.log2(info["vocab_size"]) + 1


@pytest.mark.slow
def test_mirrored_step_equals_default_step(corpus):
    config = TextConfig(data=corpus, batch_size=8, seq_len=16, units=16, layers=1, strategy="default",
                        dropout=0.0, clipnorm=0.05)  # clipping active: the global norm is far above 0.05
    data = FAMILY.load_data(config)
    info = FAMILY.data_info(config, data)
    keras.utils.set_random_seed(0)
    reference = FAMILY.build(config, info)
    weights = reference.get_weights()
    dataset, _ = FAMILY.dataset(config, data, 8)
    want = reference.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    mirrored = resolve_strategy("mirrored")
    with mirrored.scope():
        model = FAMILY.build(config, info)
    model.set_weights(weights)
    got = model.fit(dataset, epochs=1, steps_per_epoch=2, verbose=0, shuffle=False).history
    np.testing.assert_allclose(got["loss"], want["loss"], rtol=1e-5)
    for a, b in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)


# CLI, sampling, export, evaluation

@pytest.mark.slow
@pytest.mark.parametrize("arch", ["lstm", "transformer"])
def test_train_sample_export_evaluate_end_to_end(capsys, corpus, tmp_path, arch):
    model_dir, out = str(tmp_path / arch), tmp_path / "export"
    code, stdout, err = run(capsys, "train", "lstm", "--data", corpus, "--arch", arch, "--model-dir", model_dir,
                            *TINY)
    assert code == 0, err
    history = json.loads((tmp_path / arch / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and "val_bpc" in history[-1]
    assert (tmp_path / arch / "samples" / "epoch-0002.txt").read_text()
    if arch == "lstm":  # a finished run trains on from its last epoch, optimizer state included
        code, stdout, _ = run(capsys, "train", "lstm", "--data", corpus, "--model-dir", model_dir, *TINY,
                              "--epochs", "3")
        assert code == 0 and "resuming" in stdout and "after epoch 2 of 3" in stdout
        history = json.loads((tmp_path / arch / "history.json").read_text())
        assert [h["epoch"] for h in history] == [1, 2, 3]

    args = ["sample", "lstm", "--model", model_dir, "--prompt", "All:", "--length", "40", "--temperature", "0.8",
            "--top-k", "5", "--top-p", "0.9", "--seed", "1"]
    code, first, _ = run(capsys, *args)
    assert code == 0 and first.startswith("All:") and len(first.rstrip("\n")) >= 4 + 30
    assert run(capsys, *args)[1] == first  # the seed fixes the text
    assert run(capsys, *args[:-1], "2")[1] != first
    code, greedy, _ = run(capsys, *args[:6], "--temperature", "0", "--length", "60", "--stop", "\\n")
    assert code == 0 and greedy.count("\n") <= 2

    code, stdout, err = run(capsys, "export", "lstm", "--model", model_dir, "--out", str(out), "--tflite")
    assert code == 0, err
    meta = json.loads((out / "metadata.json").read_text())
    assert set(meta["signatures"]) == {"step", "generate"} and meta["vocabulary"][0] == "\ufffd"
    assert max(v for k, v in meta["parity"]["max_abs_diff"].items() if k.startswith("step/")) <= 1e-4
    assert meta["parity"]["max_abs_diff"]["generate/ids"] == 0

    # 200 greedy characters give the same ids in TF and LiteRT (the transformer restarting its 16-token
    # context on the way) ...
    loaded = tf.saved_model.load(str(out / "saved_model"))
    prompt = np.array([meta["vocabulary"].index(c) for c in "All:"], np.int32)
    padded = np.zeros(meta["prompt_capacity"], np.int32)
    padded[:len(prompt)] = prompt
    inputs = {"prompt_ids": padded, "prompt_length": np.array(len(prompt), np.int32),
              "uniform": np.zeros(meta["length"], np.float32), "temperature": np.array(0.0, np.float32),
              "top_k": np.array(0, np.int32), "top_p": np.array(1.0, np.float32)}
    want = loaded.signatures["generate"](**inputs)["ids"].numpy()[:200]
    got = LiteRTModel(out / "model.tflite").run("generate", **inputs)["ids"][:200]
    assert got.tolist() == want.tolist()
    # ... and an LSTM streamed through the step signature, state in, state out, reproduces them.
    if arch == "lstm":
        step = LiteRTModel(out / "model.tflite", "compiled")
        state = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in meta["state"]}
        for token in prompt[:-1]:
            state = {k: v for k, v in step.run("step", token=np.array([token], np.int32), **state).items()
                     if k != "logits"}
        token, streamed = prompt[-1], []
        for _ in range(len(want)):
            result = step.run("step", token=np.array([token], np.int32), **state)
            token = int(np.argmax(result.pop("logits")[0]))
            state = result
            streamed.append(token)
        assert streamed == want.tolist()

    code, stdout, _ = run(capsys, "evaluate", model_dir)
    assert code == 0 and "bits per character" in stdout
    report = json.loads((tmp_path / arch / "metrics.json").read_text())
    assert report["bits_per_character"] <= history[-1]["val_bpc"] * 1.02  # more context than training's windows


def test_transformer_sampling_continues_past_its_context(corpus, tmp_path):
    config = TextConfig(data=corpus, arch="transformer", epochs=1, batch_size=8, seq_len=8, units=16, layers=1,
                        heads=2, strategy="default")
    model = FAMILY.build(config, FAMILY.data_info(config, FAMILY.load_data(config)))
    pieces = []
    text = model.generate("First", 30, seed=0, on_text=pieces.append)
    assert len(text) == 30 and "".join(pieces) == text
    assert model.generate("First", 30, seed=0) == text  # the one-graph loop gives the same ids


def test_evaluate_matches_a_step_by_step_hand_computation(tmp_path):
    keras.utils.set_random_seed(1)
    tok = CharTokenizer.build("abc ")
    model = LSTMLanguageModel(tok.vocab_size, tok.to_config(), 5, embedding_dim=4, units=8, layers=1)
    text = "abc cab bac zz abcab"  # 'z' is outside the vocabulary
    from aigc_keras.text.metrics import text_metrics

    ids = tok.encode(text)

    def nats_from(start, end):  # targets start..end-1, the state carried from ids[start]
        state, nats = model.initial_state(1), 0.0
        for a, b in zip(ids[start:end], ids[start + 1:end + 1]):
            logits, state = model.step(tf.constant([a]), state)
            nats -= math.log(softmax(logits.numpy()[0].astype(np.float64))[b])
        return nats

    one = text_metrics(model, text, streams=1)  # the whole text with the state carried throughout
    nats = nats_from(0, len(ids) - 1)
    assert one["tokens"] == len(text) - 1 and one["unknown_characters"] == 2
    assert one["bits_per_character"] == pytest.approx(nats / (len(text) - 1) / math.log(2), rel=1e-5)
    assert one["perplexity"] == pytest.approx(math.exp(nats / (len(text) - 1)), rel=1e-5)
    three = text_metrics(model, text, streams=3)  # three parts, each from an empty state
    bounds = np.linspace(0, len(ids) - 1, 4).astype(int)
    nats = sum(nats_from(a, b) for a, b in zip(bounds[:-1], bounds[1:]))
    assert three["bits_per_token"] == pytest.approx(nats / (len(text) - 1) / math.log(2), rel=1e-5)


def test_evaluate_scores_a_bounded_context_model_in_half_overlapping_windows():
    keras.utils.set_random_seed(2)
    tok = CharTokenizer.build("abc ")
    model = TransformerLanguageModel(tok.vocab_size, tok.to_config(), 6, units=8, layers=1, heads=2)
    text = "abc cab bac abcab ca"
    from aigc_keras.text.metrics import text_metrics

    ids = tok.encode(text)
    nats = 0.0
    for j in range(len(ids) - 1):  # target j sees ids[start..j], start = the latest window start giving >= 3
        start = 0 if j < 6 else ((j - 6) // 3 + 1) * 3
        logits = model(ids[None, start:j + 1]).numpy()[0, -1].astype(np.float64)
        nats -= math.log(softmax(logits)[ids[j + 1]])
    got = text_metrics(model, text, batch_size=2)
    assert got["bits_per_character"] == pytest.approx(nats / (len(ids) - 1) / math.log(2), rel=1e-5)


def test_generate_graph_equals_streamed_sampling(corpus):
    config = TextConfig(data=corpus, epochs=1, batch_size=8, seq_len=16, units=16, layers=1, strategy="default")
    model = FAMILY.build(config, FAMILY.data_info(config, FAMILY.load_data(config)))
    tok = tokenizer_from_config(model.tokenizer)
    uniform = np.random.default_rng(4).random(50).astype(np.float32)
    prompt = np.zeros(8, np.int32)
    prompt[:4] = tok.encode("All:")
    ids = tf.function(generate_fn(model, 8, 50))(prompt, 4, uniform, 0.9, 10, 0.95).numpy()
    streamed = []
    assert tok.decode(ids) == model.generate("All:", 50, 0.9, 10, 0.95, seed=4, on_text=streamed.append)
    assert tok.decode(ids) == "".join(streamed) == model.generate("All:", 50, 0.9, 10, 0.95, seed=4)


@pytest.mark.parametrize("args, message", [
    (["train", "lstm", "--data", "text:/no/such.txt"], "/no/such.txt does not exist"),
    (["train", "lstm", "--arch", "rnn"], "Invalid value for '--arch'"),
    (["train", "lstm", "--arch", "transformer", "--units", "30", "--heads", "4"], "--heads 4 must divide --units 30"),
    (["sample", "lstm", "--model", "/no/such/dir"], "does not exist"),
    (["sample", "lstm", "--top-p", "0"], "Invalid value for '--top-p'"),
    (["evaluate", "/no/such/dir"], "does not exist"),
])
def test_bad_text_input_is_one_line(capsys, tmp_path, args, message):
    code, out, err = run(capsys, *args, *(["--model-dir", str(tmp_path / "m")] if args[0] == "train" else []))
    assert code != 0 and err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
