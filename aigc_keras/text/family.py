"""The autoregressive family: corpus, tokenizer, model, text preview, streaming sampling and export."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ..data.text import TextData, TokenWindows, load_text
from ..errors import AigcError, arg
from ..export.litert import Endpoint
from ..limits import check_fits
from ..training.family import Family, data_epochs
from .config import EXPORT_LENGTH, EXPORT_PROMPT_LENGTH, TextConfig
from .models import LSTMLanguageModel, TransformerLanguageModel
from .sampling import generate_fn
from .tokenizer import build_tokenizer, tokenizer_from_config

PREVIEW_PROMPT = "\n"
PREVIEW_LENGTH = 300
EXPORT_TOKEN_BYTES = 1024  # the export's loop carries [prompt + new] id tensors and checks them per token
QUALITY_CHARACTERS = 20_000  # validation text scored when an export is checked for what quantization cost


class TextFamily(Family):
    name = "text"
    int8_refusal = ("TFLite's int8 calibration cannot run the token loop of `generate` (measured: a segmentation "
                    "fault); use --quantize dynamic or float16")

    def load_data(self, config: TextConfig):
        return load_text(config.data)

    def data_from(self, config: TextConfig, text: str):
        return TextData("text", text)

    def _split(self, config: TextConfig, data):
        """(training ids, validation ids, tokenizer built from the training text), computed once per
        corpus, split and tokenizer: `data_info`, `dataset` and `validation_data` all need it."""
        key = (config.validation_split, config.tokenizer, config.min_count, config.init_from)
        if key not in data.tokenized:
            train_text, val_text = data.split(config.validation_split)
            tokenizer = self._base_tokenizer(config) or build_tokenizer(config.tokenizer, train_text, config.min_count)
            data.tokenized[key] = (tokenizer.encode(train_text), tokenizer.encode(val_text), tokenizer)
        return data.tokenized[key]

    @staticmethod
    def _base_tokenizer(config: TextConfig):
        """The tokenizer of the model `--init-from` names (a fine-tune keeps its ids), or None."""
        if not config.init_from:
            return None
        from ..model_dir import ModelDir

        return tokenizer_from_config(ModelDir(config.init_from).record()["data"]["tokenizer"])

    def fine_tune_notes(self, config: TextConfig, data, data_info: dict, base_data: dict) -> list[str]:
        """Which characters of the training text the base's vocabulary lacks (they read as the unknown id)."""
        train_ids, _, tokenizer = self._split(config, data)
        unknown = int((train_ids == tokenizer.unknown_id).sum()) if tokenizer.unknown_id is not None else 0
        if not unknown:
            return []
        train_text, _ = data.split(config.validation_split)
        missing = sorted(set(train_text) - set(tokenizer.chars))
        shown = "".join(c for c in missing[:10] if c.isprintable()) or "unprintable ones"
        return [f"{len(missing):,} distinct characters of {config.data} ({unknown:,} of its {len(train_ids):,} "
                f"training characters) are not in the base's vocabulary, e.g. {shown}: they read as the unknown "
                f"id, which generation never draws (a base trained with {arg('tokenizer')} bytes covers every script)"]

    def dataset(self, config: TextConfig, data, global_batch_size: int, start_epoch: int = 0):
        train_ids, _, _ = self._split(config, data)
        windows = TokenWindows.from_ids(config.data, train_ids, config.seq_len)
        return data_epochs(config, windows, global_batch_size, start_epoch)

    def validation_data(self, config: TextConfig, data):
        _, val_ids, _ = self._split(config, data)
        windows = TokenWindows.from_ids(config.data, val_ids, config.seq_len)
        if not len(windows.windows):
            raise AigcError(f"{config.data}: the validation text ({len(val_ids)} tokens) is shorter than one "
                            f"window ({arg('seq_len')} {config.seq_len} + 1)")
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
        optimizer = self.adam(config, data_info, config.learning_rate)
        model.compile(optimizer=optimizer)
        return model

    def pass_steps(self, config: TextConfig, data_info: dict) -> int:
        return max((data_info["train_tokens"] - 1) // config.seq_len // config.batch_size, 1)

    def data_info(self, config: TextConfig, data) -> dict:
        train_ids, val_ids, tokenizer = self._split(config, data)
        return {**data.info(), "tokenizer": tokenizer.to_config(), "vocab_size": tokenizer.vocab_size,
                "train_tokens": len(train_ids), "validation_tokens": len(val_ids)}

    def preview(self, model, config: TextConfig, data_info: dict):
        return model.generate(PREVIEW_PROMPT, PREVIEW_LENGTH, temperature=0.8, seed=config.seed)

    def export_spec(self, model, record: dict, length: int = EXPORT_LENGTH,
                    prompt_length: int = EXPORT_PROMPT_LENGTH):
        """`step` (one token and the state) and `generate` (the whole loop: a prompt of at most
        `prompt_length` ids, `length` new ids), every tensor of a fixed size."""
        check_fits(arg("length"), length, EXPORT_TOKEN_BYTES)
        check_fits(arg("prompt_length"), prompt_length, EXPORT_TOKEN_BYTES)
        tokenizer = tokenizer_from_config(model.tokenizer)
        state_spec = [(name, [1 if d is None else d for d in shape], dtype)
                      for name, shape, dtype in model.state_spec()]
        endpoints = [self._step_endpoint(model, state_spec, tokenizer),
                     self._generate_endpoint(model, tokenizer, prompt_length, length)]
        metadata = {
            "arch": record["config"]["arch"],
            "tokenizer": model.tokenizer,
            "vocabulary": _vocabulary(tokenizer),
            "vocab_size": model.vocab_size,
            "unknown_id": tokenizer.unknown_id,  # never generated: generate and step's sampling leave it out
            "state": [{"name": name, "shape": shape, "dtype": dtype.name, "initial": "zeros"}
                      for name, shape, dtype in state_spec],
            "max_positions": model.max_positions,
            "prompt_capacity": prompt_length,
            "length": length,
            "sampling": "the unknown_id's logit set to -inf (it stands for no character), then temperature, top-k, "
                        "top-p, and the token whose CDF interval holds u",
            "streaming": STREAMING_RECIPE if model.max_positions else "feed each id to step with the state it returned",
            "config": record["config"],
        }
        return model, endpoints, metadata

    @staticmethod
    def _step_endpoint(model, state_spec, tokenizer) -> Endpoint:
        """`step`: one token [1] and the state in, the logits and the next state out."""
        def step_fn(token, *state):
            logits, new_state = model.step(token, list(state))
            return {"logits": logits, **{name: s for (name, _, _), s in zip(state_spec, new_state)}}

        step = tf.function(step_fn, input_signature=[
            tf.TensorSpec([1], tf.int32, name="token"),
            *[tf.TensorSpec(shape, dtype, name=name) for name, shape, dtype in state_spec]])
        rng = np.random.default_rng(0)
        state = {name: rng.standard_normal(shape).astype(np.float32) * 0.5 if dtype == tf.float32
                 else np.array(3, np.int32) for name, shape, dtype in state_spec}
        token = np.array([int(tokenizer.encode("ROMEO:")[0])], np.int32)
        return Endpoint("step", step, [{"token": token, **state}],
                        "one token [1] int32 and the state -> logits [1, V] and the next state (stream with it)")

    @staticmethod
    def _generate_endpoint(model, tokenizer, prompt_length: int, length: int) -> Endpoint:
        """`generate`: the whole loop (`sampling.generate_fn`, the graph `LanguageModel.generate` runs)."""
        loop = generate_fn(model, prompt_length, length)

        @tf.function(input_signature=[
            tf.TensorSpec([prompt_length], tf.int32, name="prompt_ids"),
            tf.TensorSpec([], tf.int32, name="prompt_length"),
            tf.TensorSpec([length], tf.float32, name="uniform"),
            tf.TensorSpec([], tf.float32, name="temperature"), tf.TensorSpec([], tf.int32, name="top_k"),
            tf.TensorSpec([], tf.float32, name="top_p"),
        ])
        def generate(prompt_ids, prompt_length, uniform, temperature, top_k, top_p):
            return {"ids": loop(prompt_ids, prompt_length, uniform, temperature, top_k, top_p)}

        rng = np.random.default_rng(1)
        prompt = tokenizer.encode("ROMEO:")[-prompt_length:]
        padded = np.zeros(prompt_length, np.int32)
        padded[:len(prompt)] = prompt

        def example(temperature, top_k, top_p):
            return {"prompt_ids": padded, "prompt_length": np.array(len(prompt), np.int32),
                    "uniform": rng.random(length).astype(np.float32), "temperature": np.array(temperature, np.float32),
                    "top_k": np.array(top_k, np.int32), "top_p": np.array(top_p, np.float32)}

        return Endpoint("generate", generate, [example(0.0, 0, 1.0), example(0.8, 10, 0.95)],
                        f"prompt ids [{prompt_length}] int32 (the first prompt_length of them are the prompt) and "
                        f"one uniform number in [0, 1) per new token [{length}] -> ids [{length}]; temperature 0 is "
                        "greedy, top_k 0 and top_p 1 are off")

    def evaluate(self, source, seed: int, data_spec: str | None = None):
        """Bits per character and perplexity on the validation split (or `data_spec`), with the
        characters outside the vocabulary counted."""
        import time

        from .metrics import text_metrics

        start = time.time()
        if data_spec:
            text, data = load_text(data_spec).text, data_spec
        else:
            split = source.config["validation_split"]
            text, data = load_text(source.data, source.fingerprint).split(split)[1], f"{source.data} (last {split:.0%})"
        subject = source.load()
        metrics = self.litert_metrics(subject, source.metadata, text) if source.export else \
            text_metrics(subject, text)
        report = {**source.describe, "family": self.name, "data": data, **metrics,
                  "seconds": round(time.time() - start, 1)}
        where = next(iter(source.describe.values()))
        table = "\n".join([
            f"{source.config['arch']} {where}; text {data}",
            f"bits per character  {report['bits_per_character']:.4f}   ({report['characters']} characters)",
            f"bits per token      {report['bits_per_token']:.4f}   ({report['tokens']} tokens)",
            f"perplexity          {report['perplexity']:.3f}   (per token)",
            f"unknown characters  {report['unknown_characters']}   (outside the vocabulary, scored as id 0)",
        ])
        return report, table

    def litert_metrics(self, litert, metadata: dict, text: str) -> dict:
        """`metrics.text_metrics` through the export's `step` signature in LiteRT."""
        from .metrics import litert_text_metrics

        names = [s["name"] for s in metadata["state"]]
        initial = {s["name"]: np.zeros(s["shape"], s["dtype"]) for s in metadata["state"]}
        return litert_text_metrics(lambda **inputs: litert.run("step", **inputs), names, initial,
                                   metadata["tokenizer"], metadata["max_positions"], text)

    def export_quality(self, model, record: dict, litert, metadata: dict, chars: int = QUALITY_CHARACTERS) -> dict:
        """Bits per character of the Keras model and of the LiteRT file on the start of the validation text."""
        from ..data.text import load_text
        from .metrics import text_metrics

        data = load_text(record["data"]["spec"], record["data"].get("fingerprint"))
        text = data.split(record["config"]["validation_split"])[1][:chars]
        keras_bpc = text_metrics(model, text)["bits_per_character"]
        litert_bpc = self.litert_metrics(litert, metadata, text)["bits_per_character"]
        return {"metric": f"bits per character on {len(text)} validation characters", "keras": keras_bpc,
                "litert": litert_bpc, "collapsed": litert_bpc > keras_bpc + 0.2}


STREAMING_RECIPE = (
    "step holds max_positions tokens (the output `position` counts them; past that its logits are NaN). "
    "Keep the ids so far (prompt and generated). Start from the initial state, feed the last max_positions "
    "prompt ids but the final one, then repeat: when position == max_positions, start again from the initial "
    "state and feed the last max_positions // 2 ids but the final one; feed the final id, draw the next id from "
    "the logits with the next uniform, append it. generate and `aigc-keras sample` do exactly this."
)


def _vocabulary(tokenizer) -> list[str] | None:
    """id -> text for the chars tokenizer (id 0: unknown), None for bytes (id = UTF-8 byte)."""
    return ["\ufffd", *tokenizer.chars] if tokenizer.kind == "chars" else None
