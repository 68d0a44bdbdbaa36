"""Sampling from a language model, shared by both architectures and by the exported graphs.

`next_token` applies, in this order (as Hugging Face's generate does): temperature, top-k
(keep the k largest logits), top-p (keep the smallest set of most likely tokens whose
probability mass reaches p), then draws with a uniform number u by inverting the CDF. Every
control is a tensor, so the same code serves `sample` and the exported `generate` signature;
temperature 0 is greedy. The draw takes u as an input instead of a seed: random ops are frozen
at conversion in LiteRT, and an app can pass its own uniform numbers.
"""

from __future__ import annotations

import tensorflow as tf

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


def next_token(logits, uniform, temperature, top_k, top_p):
    """Token ids [B] drawn from the filtered distribution with uniform numbers [B] (or argmax
    when temperature <= 0)."""
    probs = tf.nn.softmax(filter_logits(logits, temperature, top_k, top_p), axis=-1)
    cdf = tf.cumsum(probs, axis=-1)
    u = uniform[:, None] * cdf[:, -1:]
    drawn = tf.minimum(tf.reduce_sum(tf.cast(cdf <= u, tf.int32), axis=-1), tf.shape(logits)[-1] - 1)
    greedy = tf.argmax(logits, axis=-1, output_type=tf.int32)
    return tf.where(temperature > 0, drawn, greedy)


def generate_fn(model):
    """fn(prompt [P] int32, uniform [N] float32, temperature, top_k, top_p) -> ids [n] int32: the whole
    loop for one sequence as one graph. A model with a bounded context (`max_positions`) keeps the
    last `max_positions` prompt ids and stops when its context is full (n <= N)."""

    def generate(prompt, uniform, temperature, top_k, top_p):
        if model.max_positions:
            prompt = prompt[-model.max_positions:]
        length = tf.shape(uniform)[0]
        if model.max_positions:
            length = tf.minimum(length, model.max_positions - tf.shape(prompt)[0] + 1)
        state = model.initial_state(1)
        shapes = [s.shape for s in state]

        def step(token, state):  # the loop keeps the static batch size of 1
            logits, state = model.step(token, state)
            return logits, [tf.reshape(s, shape) for s, shape in zip(state, shapes)]

        for i in tf.range(tf.shape(prompt)[0] - 1):
            _, state = step(prompt[i:i + 1], state)
        token = prompt[-1:]
        ids = tf.zeros([length], tf.int32)
        for i in tf.range(length):
            logits, state = step(token, state)
            token = tf.reshape(next_token(logits, uniform[i:i + 1], temperature, top_k, top_p), [1])
            ids += tf.one_hot(i, length, dtype=tf.int32) * token[0]
        return ids

    return generate
