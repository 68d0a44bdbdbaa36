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


def generate_fn(model, prompt_capacity: int, length: int):
    """fn(prompt_ids [P] int32, prompt_length, uniform [N] float32, temperature, top_k, top_p) -> ids [N]
    int32: the whole loop for one sequence as one graph, every tensor of a fixed size (P =
    `prompt_capacity`, N = `length`), as LiteRT's CompiledModel API needs.

    The first `prompt_length` ids of `prompt_ids` are the prompt. It is the same algorithm as
    `family.TextFamily.sample`, so it gives the same ids for the same uniforms: a model with a bounded
    context reads the last `max_positions` prompt ids, and whenever its context is full it starts
    again from the last half of what it has (prompt and generated ids alike), so N is not limited.
    """
    window = model.max_positions
    keep = window // 2 if window else 0
    size = prompt_capacity + length

    def generate(prompt_ids, prompt_length, uniform, temperature, top_k, top_p):
        initial = model.initial_state(1)
        shapes = [s.shape for s in initial]

        def step(token, state):  # every state tensor keeps its static shape through the loops
            logits, state = model.step(token, state)
            return logits, [tf.reshape(s, shape) for s, shape in zip(state, shapes)]

        def read(history, state, start, end):
            """The state after reading history[start:end] (nothing when end <= start)."""
            for j in tf.range(start, end):
                _, state = step(tf.reshape(tf.gather(history, j), [1]), state)
            return state

        count = tf.clip_by_value(prompt_length, 1, prompt_capacity)
        history = tf.concat([prompt_ids, tf.zeros([length], tf.int32)], 0)  # [P + N]: prompt, then new ids
        history = tf.where(tf.range(size) < count, history, 0)  # ids past the prompt are written by adding
        state = read(history, initial, tf.maximum(count - window, 0) if window else 0, count - 1)
        ids = tf.zeros([length], tf.int32)
        for i in tf.range(length):
            if window:  # a full context restarts from the last `keep` ids (no IF op: a select and a loop)
                full = model.context_full(state)
                state = [tf.where(full, fresh, s) for fresh, s in zip(initial, state)]
                state = read(history, state, count - keep, tf.where(full, count - 1, count - keep))
            logits, state = step(tf.reshape(tf.gather(history, count - 1), [1]), state)
            # tf.gather, not uniform[i]: LiteRT's CompiledModel API cannot run a slice at a loop index.
            token = next_token(logits, tf.reshape(tf.gather(uniform, i), [1]), temperature, top_k, top_p)[0]
            history += tf.one_hot(count, size, dtype=tf.int32) * token
            ids += tf.one_hot(i, length, dtype=tf.int32) * token
            count += 1
        return ids

    return generate
