"""The autoregressive family: corpus, tokenizer, model, text preview, streaming sampling and export."""

from __future__ import annotations

import inspect

import keras
import numpy as np
import tensorflow as tf

from ..data.text import TokenWindows, load_text
from ..errors import AigcError
from ..export.litert import Endpoint
from ..training.family import Family, data_epochs
from ..training.precision import loss_scaled
from .config import TextConfig
from .models import LSTMLanguageModel, TransformerLanguageModel
from .sampling import generate_fn, next_token
from .tokenizer import build_tokenizer, tokenizer_from_config

PREVIEW_PROMPT = "\n"
PREVIEW_LENGTH = 300
EXPORT_EXAMPLE_LENGTH = 200


class TextFamily(Family):
    name = "lstm"
    config_class = TextConfig

    def load_data(self, config: TextConfig):
        return load_text(config.data)

    def _split(self, config: TextConfig, data):
        """(training ids, validation ids, tokenizer built from the training text), computed once per
        corpus, split and tokenizer: `data_info`, `dataset` and `validation_data` all need it."""
        key = (config.validation_split, config.tokenizer)
        if key not in data.tokenized:
            train_text, val_text = data.split(config.validation_split)
            tokenizer = build_tokenizer(config.tokenizer, train_text)
            data.tokenized[key] = (tokenizer.encode(train_text), tokenizer.encode(val_text), tokenizer)
        return data.tokenized[key]

    def dataset(self, config: TextConfig, data, global_batch_size: int, start_epoch: int = 0):
        train_ids, _, _ = self._split(config, data)
        windows = TokenWindows.from_ids(config.data, train_ids, config.seq_len)
        return data_epochs(config, windows, global_batch_size, start_epoch)

    def validation_data(self, config: TextConfig, data):
        _, val_ids, _ = self._split(config, data)
        windows = TokenWindows.from_ids(config.data, val_ids, config.seq_len)
        if not len(windows.windows):
            raise AigcError(f"{config.data}: the validation text ({len(val_ids)} tokens) is shorter than one "
                            f"window (--seq-len {config.seq_len} + 1)")
        return windows.eval_batches(config.batch_size)

    def build(self, config: TextConfig, data_info: dict):
        tokenizer = tokenizer_from_config(data_info["tokenizer"])
        common = dict(vocab_size=tokenizer.vocab_size, tokenizer=tokenizer.to_config(), seq_len=config.seq_len,
                      units=config.units, layers=config.layers, dropout=config.dropout,
                      clipnorm=config.clipnorm or None, name=config.arch)
        if config.arch == "lstm":
            model = LSTMLanguageModel(embedding_dim=config.embedding_dim, **common)
        else:
            model = TransformerLanguageModel(heads=config.heads, **common)
        optimizer = loss_scaled(keras.optimizers.Adam(config.learning_rate), config.precision)
        model.compile(optimizer=optimizer)
        optimizer.build(model.trainable_variables)
        return model

    def data_info(self, config: TextConfig, data) -> dict:
        train_ids, val_ids, tokenizer = self._split(config, data)
        return {**data.info(), "tokenizer": tokenizer.to_config(), "vocab_size": tokenizer.vocab_size,
                "train_tokens": len(train_ids), "validation_tokens": len(val_ids)}

    def preview(self, model, config: TextConfig, data_info: dict):
        return self.sample(model, PREVIEW_PROMPT, PREVIEW_LENGTH, seed=config.seed, temperature=0.8)

    def sample(self, model, prompt: str, length: int, seed: int = 0, temperature: float = 1.0, top_k: int = 0,
               top_p: float = 1.0, stop: str | None = None, on_text=None) -> str:
        """Generate `length` tokens after `prompt`, one step at a time (streamed to `on_text(piece)`).

        Draws are u ~ U(0, 1) from NumPy's generator seeded by `seed`, the same numbers the exported
        `generate` takes. A bounded-context model re-primes itself with the last half of its context
        when the context is full. Stops early after `stop` appears in the generated text.
        """
        tokenizer = tokenizer_from_config(model.tokenizer)
        prompt_ids = [int(i) for i in tokenizer.encode(prompt or PREVIEW_PROMPT)]
        uniform = np.random.default_rng(seed).random(length).astype(np.float32)
        step = _stepper(model)
        controls = (tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32), tf.constant(top_p, tf.float32))
        decode = tokenizer.stream_decoder()
        history, state, text = list(prompt_ids), None, []

        def prime(ids):
            state = model.initial_state(1)
            for token in ids[:-1]:
                state = step(tf.constant([token], tf.int32), state, tf.zeros([1]), *controls)[1]
            return state

        keep = model.max_positions // 2 if model.max_positions else None
        state = prime(history[-model.max_positions:] if model.max_positions else history)
        for i in range(length):
            if model.max_positions and int(state[0]) >= model.max_positions:
                state = prime(history[-keep:])
            token, state = step(tf.constant([history[-1]], tf.int32), state, tf.constant(uniform[i:i + 1]), *controls)
            history.append(int(token[0]))
            piece = decode(history[-1])
            text.append(piece)
            if on_text is not None:
                on_text(piece)
            if stop and stop in "".join(text[-len(stop) - 4:]):
                break
        return "".join(text)

    def export_spec(self, model, run: dict):
        tokenizer = tokenizer_from_config(model.tokenizer)
        state_spec = model.state_spec()
        names = [name for name, _, _ in state_spec]
        fixed = [[1 if d is None else d for d in shape] for _, shape, _ in state_spec]
        state_specs = [tf.TensorSpec(shape, dtype, name=name) for (name, _, dtype), shape in zip(state_spec, fixed)]
        generate = generate_fn(model)

        def step_fn(token, *state):
            logits, new_state = model.step(token, list(state))
            return {"logits": logits, **{name: s for (name, _, _), s in zip(state_spec, new_state)}}

        # Named parameters (token, h_0, c_0, ...), so the signature's inputs can be passed by name.
        step_fn.__signature__ = inspect.Signature(
            [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in ["token", *names]]
        )
        step = tf.function(step_fn, input_signature=[tf.TensorSpec([1], tf.int32, name="token"), *state_specs])

        @tf.function(input_signature=[
            tf.TensorSpec([None], tf.int32, name="prompt_ids"), tf.TensorSpec([None], tf.float32, name="uniform"),
            tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float32, name="top_p"),
        ])
        def generate_signature(prompt_ids, uniform, temperature, top_k, top_p):
            return {"ids": generate(prompt_ids, uniform, temperature, top_k, top_p)}

        rng = np.random.default_rng(0)
        state_example = {name: rng.standard_normal(shape).astype(np.float32) * 0.5 if dtype == tf.float32
                         else np.array(3, np.int32) for (name, _, dtype), shape in zip(state_spec, fixed)}
        prompt = tokenizer.encode("ROMEO:")
        length = EXPORT_EXAMPLE_LENGTH if not model.max_positions else min(EXPORT_EXAMPLE_LENGTH,
                                                                          model.max_positions - len(prompt) + 1)
        endpoints = [
            Endpoint("step", step, {"token": np.array([int(prompt[0])], np.int32), **state_example},
                     "one token [1] int32 and the state -> logits [1, V] and the next state (stream with it)"),
            Endpoint("generate", generate_signature,
                     {"prompt_ids": prompt, "uniform": np.full(length, 0.5, np.float32),
                      "temperature": np.array(0.0, np.float32), "top_k": np.array(0, np.int32),
                      "top_p": np.array(1.0, np.float32)},
                     "prompt ids [P] int32 and one uniform number in [0, 1) per new token -> ids; temperature 0 "
                     "is greedy, top_k 0 and top_p 1 are off"),
        ]
        metadata = {
            "arch": run["config"]["arch"],
            "tokenizer": model.tokenizer,
            "vocabulary": _vocabulary(tokenizer),
            "vocab_size": model.vocab_size,
            "unknown_id": 0 if tokenizer.kind == "chars" else None,
            "state": [{"name": name, "shape": shape, "dtype": dtype.name, "initial": "zeros"}
                      for (name, _, dtype), shape in zip(state_spec, fixed)],
            "max_positions": model.max_positions,
            "sampling": "temperature, then top-k, then top-p, then the token whose CDF interval holds u",
            "config": run["config"],
        }
        return model, endpoints, metadata


def _vocabulary(tokenizer) -> list[str] | None:
    """id -> text for the chars tokenizer (id 0: unknown), None for bytes (id = UTF-8 byte)."""
    return ["\ufffd", *tokenizer.chars] if tokenizer.kind == "chars" else None


_STEPPERS = {}


def _stepper(model):
    """One tf.function per model: step + next_token, traced once and reused across calls."""
    if id(model) not in _STEPPERS:
        @tf.function(reduce_retracing=True)
        def step(token, state, uniform, temperature, top_k, top_p):
            logits, state = model.step(token, state)
            return next_token(logits, uniform, temperature, top_k, top_p), state

        _STEPPERS.clear()
        _STEPPERS[id(model)] = step
    return _STEPPERS[id(model)]
