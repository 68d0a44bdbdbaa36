"""Sampling from a language model, shared by both architectures and by the exported graphs.

`next_token` applies, in this order (as Hugging Face's generate does): temperature, top-k
(keep the k largest logits), top-p (keep the smallest set of most likely tokens whose
probability mass reaches p), then draws with a uniform number u by inverting the CDF. Every
control is a tensor, so the same code serves `sample` and the exported `generate` signature;
temperature 0 is greedy. The draw takes u as an input instead of a seed: random ops are frozen
at conversion in LiteRT, and an app can pass its own uniform numbers.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .tokenizer import tokenizer_from_config

NEG_INF = -1e9


def filter_logits(logits, temperature, top_k, top_p):
    """logits [B, V] / temperature, with tokens outside the top-k and the top-p nucleus at -1e9.

    top_k <= 0 or >= V keeps all tokens; top_p >= 1 keeps all. The most likely token is always kept.
    """
    vocab = tf.shape(logits)[-1]
    logits = logits / tf.maximum(tf.cast(temperature, logits.dtype), 1e-6)
    ordered = tf.math.top_k(logits, k=vocab).values  # descending
    k = tf.where((top_k > 0) & (top_k < vocab), top_k, vocab)
    kth = tf.gather(ordered, k - 1, axis=-1)[:, None]
    logits = tf.where(logits < kth, NEG_INF, logits)
    ordered = tf.where(ordered < kth, NEG_INF, ordered)
    probs = tf.nn.softmax(ordered, axis=-1)
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
    keep = tf.reduce_sum(tf.cast(mass_before < tf.cast(top_p, probs.dtype), tf.int32), axis=-1)
    cutoff = tf.gather(ordered, tf.maximum(keep, 1) - 1, axis=-1, batch_dims=1)[:, None]
    return tf.where(logits < cutoff, NEG_INF, logits)


def next_token(logits, uniform, temperature, top_k, top_p, banned: int | None = None):
    """Token ids [B] drawn from the filtered distribution with uniform numbers [B] (or argmax
    when temperature <= 0); never `banned` (the tokenizer's unknown id: it stands for no character)."""
    if banned is not None:
        logits = tf.where(tf.range(tf.shape(logits)[-1]) == banned, tf.constant(NEG_INF, logits.dtype), logits)
    probs = tf.nn.softmax(filter_logits(logits, temperature, top_k, top_p), axis=-1)
    cdf = tf.cumsum(probs, axis=-1)
    u = uniform[:, None] * cdf[:, -1:]
    drawn = tf.minimum(tf.reduce_sum(tf.cast(cdf <= u, tf.int32), axis=-1), tf.shape(logits)[-1] - 1)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(temperature > 0, drawn, greedy)


class Decoder:
    """The one generation algorithm of the language models, as functions of tensors that both drivers
    share: `generate_fn` runs it as one graph loop (the export's `generate`, and `generate_text`
    without streaming), `generate_text` step by step when it streams.

    The ids so far lie in a fixed-size `history` [size] int32 whose first `count` entries are the
    text (prompt, then generated ids). A model with a bounded context reads at most its last
    `max_positions` ids, and whenever its context is full it starts again from the last half of what
    it has (prompt and generated ids alike), so the number of new ids is not limited.
    """

    def __init__(self, model):
        self.model = model
        self.window = model.max_positions
        self.keep = self.window // 2 if self.window else 0

    def _step(self, token, state, shapes):
        """One token through the model; every state tensor keeps its static shape through the loops."""
        logits, state = self.model.step(token, state)
        return logits, [tf.reshape(s, shape) for s, shape in zip(state, shapes)]

    def _read(self, history, state, start, end):
        """The state after reading history[start:end] (nothing when end <= start)."""
        shapes = [s.shape for s in state]
        for j in tf.range(start, end):
            _, state = self._step(tf.reshape(tf.gather(history, j), [1]), state, shapes)
        return state

    def start(self, history, count):
        """The state after the prompt history[:count] but its last id (the first `advance` feeds that)."""
        initial = self.model.initial_state(1)
        return self._read(history, initial, tf.maximum(count - self.window, 0) if self.window else 0, count - 1)

    def advance(self, history, count, state, uniform, temperature, top_k, top_p):
        """(the next id drawn with `uniform`, history with it at `count`, count + 1, the state)."""
        if self.window:  # a full context restarts from the last `keep` ids (no IF op: a select and a loop)
            full = self.model.context_full(state)
            state = [tf.where(full, fresh, s) for fresh, s in zip(self.model.initial_state(1), state)]
            state = self._read(history, state, count - self.keep, tf.where(full, count - 1, count - self.keep))
        logits, state = self._step(tf.reshape(tf.gather(history, count - 1), [1]), state, [s.shape for s in state])
        token = next_token(logits, tf.reshape(uniform, [1]), temperature, top_k, top_p, self.model.unknown_id)[0]
        size = history.shape[0] if history.shape[0] is not None else tf.shape(history)[0]
        return token, history + tf.one_hot(count, size, dtype=tf.int32) * token, count + 1, state


def generate_fn(model, prompt_capacity: int, length: int):
    """fn(prompt_ids [P] int32, prompt_length, uniform [N] float32, temperature, top_k, top_p) -> ids [N]
    int32: `Decoder`'s algorithm for one sequence as one graph, every tensor of a fixed size (P =
    `prompt_capacity`, N = `length`), as LiteRT's CompiledModel API needs. The first `prompt_length`
    ids of `prompt_ids` are the prompt."""
    decoder = Decoder(model)
    size = prompt_capacity + length

    def generate(prompt_ids, prompt_length, uniform, temperature, top_k, top_p):
        count = tf.clip_by_value(prompt_length, 1, prompt_capacity)
        history = tf.concat([prompt_ids, tf.zeros([length], tf.int32)], 0)  # [P + N]: prompt, then new ids
        history = tf.where(tf.range(size) < count, history, 0)  # ids past the prompt are written by adding
        state = decoder.start(history, count)
        ids = tf.zeros([length], tf.int32)
        for i in tf.range(length):
            # tf.gather, not uniform[i]: LiteRT's CompiledModel API cannot run a slice at a loop index.
            token, history, count, state = decoder.advance(history, count, state, tf.gather(uniform, i),
                                                           temperature, top_k, top_p)
            ids += tf.one_hot(i, length, dtype=tf.int32) * token
        return ids

    return generate


def _bucket(n: int) -> int:
    """n rounded up to a power of two (at least 64): the sizes the compiled loop is traced for."""
    return max(64, 1 << (n - 1).bit_length())


def _compiled(model, key, build):
    """`build()` as a `tf.function`, kept with the model under `key` (traced once, reused)."""
    cache = model.__dict__.setdefault("_compiled_text", {})  # plain attribute: not a Keras-tracked one
    if key not in cache:
        cache[key] = tf.function(build(), reduce_retracing=True)
    return cache[key]


def generate_text(model, prompt: str, length: int, temperature: float, top_k: int, top_p: float, seed: int,
                  stop: str | None = None, on_text=None) -> str:
    """The text after `prompt` (see `LanguageModel.generate`): `length` ids drawn with u ~ U(0, 1) from
    NumPy's generator seeded by `seed` (the numbers an app feeds the export's `generate`). Without
    `on_text` and `stop` it is one compiled loop (`generate_fn`); with them, the same `Decoder` steps
    from Python, streaming each piece of text to `on_text(piece)` and ending once `stop` appears."""
    tokenizer = tokenizer_from_config(model.tokenizer)
    prompt_ids = np.asarray(tokenizer.encode(prompt or "\n"), np.int32)
    uniform = np.random.default_rng(seed).random(length).astype(np.float32)
    controls = (tf.constant(temperature, tf.float32), tf.constant(top_k, tf.int32), tf.constant(top_p, tf.float32))
    if on_text is None and stop is None:
        capacity, new = _bucket(len(prompt_ids)), _bucket(length)
        loop = _compiled(model, ("loop", capacity, new), lambda: generate_fn(model, capacity, new))
        padded = np.zeros(capacity, np.int32)
        padded[:len(prompt_ids)] = prompt_ids
        ids = loop(tf.constant(padded), tf.constant(len(prompt_ids)), tf.constant(np.resize(uniform, new)), *controls)
        return tokenizer.decode(ids.numpy()[:length])
    decoder = Decoder(model)
    start = _compiled(model, "start", lambda: decoder.start)
    advance = _compiled(model, "advance", lambda: decoder.advance)
    history = tf.constant(np.concatenate([prompt_ids, np.zeros(length, np.int32)]))
    count = tf.constant(len(prompt_ids))
    state, decode, pieces = start(history, count), tokenizer.stream_decoder(), []
    for i in range(length):
        token, history, count, state = advance(history, count, state, tf.constant(uniform[i]), *controls)
        pieces.append(decode(int(token)))
        if on_text is not None:
            on_text(pieces[-1])
        if stop and stop in "".join(pieces[-len(stop) - 4:]):
            break
    return "".join(pieces)
