"""Character language models: a stacked LSTM and a small causal Transformer decoder.

Both are trained by teacher forcing on windows [B, T + 1] (inputs ids[:, :-1], targets
ids[:, 1:]) with the sparse cross-entropy of the logits, and both step one token at a time
with an explicit state, `step(token, state) -> (logits, state)`: LSTM h/c per layer, or the
position and a fixed-size key/value cache per block. Sampling (`sampling.py`) and the exported
`step`/`generate` signatures use only that interface.
"""

from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from ..config import TrainConfig
from ..networks import OneOptimizer, PreparedFit, ReplicaDropout, model_from_options
from ..training.distributed import apply_gradients
from .config import SAMPLE_LENGTH, TextConfig
from .tokenizer import tokenizer_from_config

DEFAULTS = TextConfig()  # the one home of every default: the classes' are the CLI's

LN2 = math.log(2.0)
TOKEN_BYTES = 128  # what generation keeps per token: its id, its uniform number, its text


class LanguageModel(PreparedFit, OneOptimizer, keras.Model):
    """Teacher forcing, the loss / bits-per-token / perplexity metrics and the config every
    language model shares. Bits per token are bits per character with the chars tokenizer.
    `clipnorm` clips the global gradient norm, the same under any number of replicas. The tokenizer
    travels with the model: `fit` takes a text, and `generate` returns one."""

    max_positions: int | None = None  # longest context `step` can hold (None: unbounded)

    def __init__(self, vocab_size: int, tokenizer: dict, seq_len: int = DEFAULTS.seq_len,
                 clipnorm: float | None = DEFAULTS.clipnorm or None, **kwargs):
        super().__init__(**kwargs)
        self.clipnorm = clipnorm
        self.vocab_size = vocab_size
        self.tokenizer = dict(tokenizer)
        self.seq_len = seq_len
        self.loss_tracker = keras.metrics.Mean(name="loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    @property
    def unknown_id(self) -> int | None:
        """The id that stands for characters outside the vocabulary (None for bytes): never generated."""
        return tokenizer_from_config(self.tokenizer).unknown_id

    def per_window_loss(self, windows, training: bool = False):
        """Mean cross-entropy (nats) of each window's next-token predictions, [B]."""
        x, y = windows[:, :-1], windows[:, 1:]
        logits = self(x, training=training)
        return tf.reduce_mean(
            tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32)), axis=1
        )

    @classmethod
    def from_config(cls, config, custom_objects=None, *, text=None):
        """Keras's: the model of a `get_config()` dict. Also, from a `TextConfig`, the compiled model that
        `aigc-keras train text` builds with those options (its `arch`), its tokenizer made from `text` (or
        from the config's `data` spec; the bytes tokenizer needs none)."""
        if isinstance(config, TrainConfig):
            return model_from_options(cls, config, text=text)
        return cls(**config)

    def prepared(self, x):
        """`fit`'s x: a text or token ids [N] are cut into windows (`windows`)."""
        return self.windows(x)

    def windows(self, data):
        """A text or token ids [N] as int32 windows [M, seq_len + 1] (stride seq_len), cut with the model's
        tokenizer; windows [B, seq_len + 1] or a dataset of them pass as they are."""
        if isinstance(data, str):
            data = tokenizer_from_config(self.tokenizer).encode(data)
        if isinstance(data, (np.ndarray, list)) and np.ndim(data) == 1:
            from ..data.text import TokenWindows

            return TokenWindows.from_ids("text", np.asarray(data, np.int32), self.seq_len).windows
        return data

    def generate(self, prompt: str = "\n", length: int = SAMPLE_LENGTH, temperature: float = 1.0, top_k: int = 0,
                 top_p: float = 1.0, seed: int = 0, stop: str | None = None, on_text=None) -> str:
        """The text that follows `prompt`: `length` tokens, each drawn after temperature, top-k and top-p
        (temperature 0 is greedy) with a uniform number from NumPy's generator seeded by `seed` (the
        numbers an app feeds the export's `generate`, which gives the same ids). `on_text(piece)` sees
        each piece as it is drawn; generation ends early once `stop` appears in the new text."""
        from ..errors import arg
        from ..limits import check_fits
        from .sampling import generate_text

        check_fits(arg("length"), length, TOKEN_BYTES)
        return generate_text(self, prompt, length, temperature, top_k, top_p, seed, stop, on_text)

    def train_step(self, data):
        windows = keras.utils.unpack_x_y_sample_weight(data)[0]
        with tf.GradientTape() as tape:
            per_window = self.per_window_loss(windows, training=True)
            loss = self.optimizer.scale_loss(tf.nn.compute_average_loss(per_window))  # x loss scale (fp16)
        apply_gradients(self.optimizer, tape.gradient(loss, self.trainable_weights), self.trainable_weights,
                        self.clipnorm)
        return self._metrics_from(per_window)

    def test_step(self, data):
        return self._metrics_from(self.per_window_loss(keras.utils.unpack_x_y_sample_weight(data)[0]))

    def _metrics_from(self, per_window):
        self.loss_tracker.update_state(per_window)
        loss = self.loss_tracker.result()
        return {"loss": loss, "bpc": loss / LN2, "perplexity": tf.exp(loss)}

    def state_spec(self) -> list[tuple[str, list[int | None], tf.DType]]:
        """(name, shape with batch None, dtype) of each tensor of the stepping state."""
        raise NotImplementedError

    def initial_state(self, batch: int) -> list[tf.Tensor]:
        return [tf.zeros([batch if d is None else d for d in shape], dtype) for _, shape, dtype in self.state_spec()]

    def step(self, token, state):
        """Logits [B, V] for the token after `token` [B] given `state`, and the new state."""
        raise NotImplementedError

    def context_full(self, state):
        """Whether `state` holds as many tokens as `step` can attend to (then a sampler starts again
        from the last part of the text); never for an unbounded model."""
        return tf.constant(False)

    def continue_sequence(self, ids, state):
        """Logits [B, T, V] for `ids` [B, T] read after `state`, and the state after them: how a
        recurrent model scores a long text in chunks. None for a bounded-context model."""
        return None

    def get_config(self):
        return {"name": self.name, "vocab_size": self.vocab_size, "tokenizer": self.tokenizer,
                "seq_len": self.seq_len, "clipnorm": self.clipnorm}


@keras.saving.register_keras_serializable("aigc_keras")
class LSTMLanguageModel(LanguageModel):
    """Embedding -> N stacked LSTMs (dropout between) -> Dense logits (Karpathy's char-rnn)."""

    def __init__(self, vocab_size, tokenizer, seq_len=DEFAULTS.seq_len, embedding_dim=DEFAULTS.embedding_dim,
                 units=DEFAULTS.units, layers=DEFAULTS.layers, dropout=DEFAULTS.dropout, **kwargs):
        super().__init__(vocab_size, tokenizer, seq_len, **kwargs)
        self.embedding_dim, self.units, self.num_layers, self.dropout = embedding_dim, units, layers, dropout
        self.embedding = keras.layers.Embedding(vocab_size, embedding_dim, name="embedding")
        self.lstms = [keras.layers.LSTM(units, return_sequences=True, return_state=True, name=f"lstm_{i}")
                      for i in range(layers)]
        self.drop = ReplicaDropout(dropout)
        self.head = keras.layers.Dense(vocab_size, name="logits")
        self.build()

    def build(self, input_shape=None):
        """Every layer's weights now (ids [B, T] whatever T), so `fit` and `step` find them built."""
        self.embedding.build((None, None))
        self.drop.build()
        width = self.embedding_dim
        for lstm in self.lstms:
            lstm.build((None, None, width))
            width = self.units
        self.head.build((None, None, self.units))

    def call(self, ids, training=False):
        x = self.drop(self.embedding(ids), training=training)
        for lstm in self.lstms:
            x = self.drop(lstm(x, training=training)[0], training=training)
        return self.head(x)

    def continue_sequence(self, ids, state):
        x = self.embedding(ids)
        new_state = []
        for i, lstm in enumerate(self.lstms):
            x, h, c = lstm(x, initial_state=[state[2 * i], state[2 * i + 1]])
            new_state += [h, c]
        return self.head(x), new_state

    def state_spec(self):
        return [(f"{kind}_{i}", [None, self.units], tf.float32) for i in range(self.num_layers) for kind in "hc"]

    def step(self, token, state):
        x = self.embedding(token)
        new_state = []
        for i, lstm in enumerate(self.lstms):
            x, (h, c) = lstm.cell(x, [state[2 * i], state[2 * i + 1]], training=False)
            new_state += [h, c]
        return self.head(x), new_state

    def get_config(self):
        return {**super().get_config(), "embedding_dim": self.embedding_dim, "units": self.units,
                "layers": self.num_layers, "dropout": self.dropout}


def cached_attention_step(attention: keras.layers.MultiHeadAttention, x, keys, values, position):
    """One position of causal self-attention through `attention`'s public projections
    (`query_dense`, `key_dense`, `value_dense`, `output_dense`): x [B, 1, D] at `position`, and the
    key/value caches [B, heads, S, head_dim] -> (output [B, 1, D], the caches with this position's key
    and value written in). The same weights serve the whole-sequence call in training."""
    length = keys.shape[2]
    here = tf.reshape(tf.one_hot(position, length, dtype=x.dtype), [1, 1, length, 1])
    visible = tf.reshape(tf.range(length) <= position, [1, 1, 1, length])

    def heads_first(t):  # [B, 1, H, d] -> [B, H, 1, d]
        return tf.transpose(t, [0, 2, 1, 3])

    q = heads_first(attention.query_dense(x)) / math.sqrt(keys.shape[-1])
    keys = keys * (1.0 - here) + heads_first(attention.key_dense(x)) * here
    values = values * (1.0 - here) + heads_first(attention.value_dense(x)) * here
    scores = tf.where(visible, tf.matmul(q, keys, transpose_b=True), -1e9)
    context = tf.transpose(tf.matmul(tf.nn.softmax(scores, axis=-1), values), [0, 2, 1, 3])  # [B, 1, H, d]
    return attention.output_dense(context), keys, values


@keras.saving.register_keras_serializable("aigc_keras")
class TransformerLanguageModel(LanguageModel):
    """A pre-LayerNorm causal decoder (GPT-style): token + learned position embeddings, N blocks of
    causal `MultiHeadAttention` and a GELU MLP, a final LayerNorm and the logits.

    `step` runs each attention layer on one position against a key/value cache of `seq_len`
    positions (`cached_attention_step`), so one token costs one position's work.
    """

    def __init__(self, vocab_size, tokenizer, seq_len=DEFAULTS.seq_len, units=DEFAULTS.units, layers=DEFAULTS.layers,
                 heads=DEFAULTS.heads, dropout=DEFAULTS.dropout, **kwargs):
        super().__init__(vocab_size, tokenizer, seq_len, **kwargs)
        self.units, self.num_layers, self.heads, self.dropout = units, layers, heads, dropout
        self.head_dim = units // heads
        self.max_positions = seq_len
        self.token_embedding = keras.layers.Embedding(vocab_size, units, name="token_embedding")
        self.position_embedding = keras.layers.Embedding(seq_len, units, name="position_embedding")
        self.blocks = []
        for i in range(layers):
            self.blocks.append({
                "norm1": keras.layers.LayerNormalization(epsilon=1e-5, name=f"block_{i}_norm1"),
                "attention": keras.layers.MultiHeadAttention(heads, self.head_dim, dropout=dropout,
                                                             name=f"block_{i}_attention"),
                "norm2": keras.layers.LayerNormalization(epsilon=1e-5, name=f"block_{i}_norm2"),
                "mlp_in": keras.layers.Dense(4 * units, activation="gelu", name=f"block_{i}_mlp_in"),
                "mlp_out": keras.layers.Dense(units, name=f"block_{i}_mlp_out"),
            })
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")
        self.head = keras.layers.Dense(vocab_size, name="logits")
        self.drop = ReplicaDropout(dropout)
        self.build()

    def build(self, input_shape=None):
        """Every layer's weights now (ids [B, T] whatever T), so `fit` and `step` find them built."""
        units = self.units
        self.token_embedding.build((None, None))
        self.position_embedding.build((None,))
        self.drop.build()
        for block in self.blocks:
            block["norm1"].build((None, None, units))
            block["attention"].build((None, None, units), (None, None, units))
            block["norm2"].build((None, None, units))
            block["mlp_in"].build((None, None, units))
            block["mlp_out"].build((None, None, 4 * units))
        self.final_norm.build((None, None, units))
        self.head.build((None, None, units))

    def call(self, ids, training=False):
        positions = tf.range(tf.shape(ids)[1])
        x = self.drop(self.token_embedding(ids) + self.position_embedding(positions), training=training)
        for block in self.blocks:
            h = block["norm1"](x)
            x = x + self.drop(block["attention"](h, h, use_causal_mask=True, training=training), training=training)
            x = x + self.drop(block["mlp_out"](block["mlp_in"](block["norm2"](x))), training=training)
        return self.head(self.final_norm(x))

    def state_spec(self):
        cache = [None, self.heads, self.seq_len, self.head_dim]
        return [("position", [], tf.int32)] + [
            (f"{kind}_{i}", cache, tf.float32) for i in range(self.num_layers) for kind in ("key", "value")
        ]

    def step(self, token, state):
        position, caches = state[0], state[1:]
        known = tf.minimum(position, self.seq_len - 1)  # past the context the logits are NaN (below)
        x = (self.token_embedding(token) + self.position_embedding(known))[:, None, :]  # [B, 1, D]
        new_caches = []
        for i, block in enumerate(self.blocks):
            out, keys, values = cached_attention_step(block["attention"], block["norm1"](x), caches[2 * i],
                                                      caches[2 * i + 1], position)
            x = x + out
            x = x + block["mlp_out"](block["mlp_in"](block["norm2"](x)))
            new_caches += [keys, values]
        logits = self.head(self.final_norm(x))[:, 0]
        # Past the context there is no position embedding: say so with NaN rather than wrong logits.
        logits = tf.where(position < self.seq_len, logits, tf.constant(float("nan"), logits.dtype))
        return logits, [position + 1, *new_caches]

    def context_full(self, state):
        return state[0] >= self.max_positions

    def get_config(self):
        return {**super().get_config(), "units": self.units, "layers": self.num_layers, "heads": self.heads,
                "dropout": self.dropout}
