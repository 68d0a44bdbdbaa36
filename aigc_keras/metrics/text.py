"""Bits per character and perplexity of a language model on a text, with its own tokenizer."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ..errors import AigcError
from ..text.tokenizer import tokenizer_from_config


def text_metrics(model, text: str, streams: int = 16, batch_size: int = 32) -> dict:
    """-log2 p(token | every earlier token the model can use), summed over every token of `text`
    after the first.

    A recurrent model reads the text in `streams` contiguous parts in parallel, carrying its
    state through each part (only each part's first token lacks context). A bounded-context
    model reads windows of its context length with a stride of half of it, and scores each token
    once, in the window that gives it at least half a context. Bits per character divide the
    total bits by the characters predicted (with the bytes tokenizer a character may take several
    tokens). Characters outside the vocabulary are encoded as the unknown id and scored like any
    other token; their count is reported.
    """
    tokenizer = tokenizer_from_config(model.tokenizer)
    ids = tokenizer.encode(text).astype(np.int32)
    if len(ids) < 2:
        raise AigcError("the text to evaluate needs at least 2 tokens")
    if model.max_positions:
        total = _window_nats(model, ids, batch_size)
    else:
        total = _stream_nats(model, ids, max(1, min(streams, len(ids) - 1)))
    tokens = len(ids) - 1
    characters = tokenizer.num_characters(ids[1:])
    return {
        "tokens": tokens,
        "characters": characters,
        "unknown_characters": tokenizer.unknown_count(text),
        "nats_per_token": total / tokens,
        "bits_per_token": total / tokens / math.log(2),
        "bits_per_character": total / characters / math.log(2),
        "perplexity": math.exp(total / tokens),
    }


def _masked_nats(logits, labels, mask):
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask)


def _stream_nats(model, ids: np.ndarray, streams: int) -> float:
    """Total cross-entropy with the state carried through `streams` contiguous parts."""
    bounds = np.linspace(0, len(ids) - 1, streams + 1).astype(int)  # target j predicts ids[j + 1]
    chunk = model.seq_len
    width = -(-int(np.diff(bounds).max()) // chunk) * chunk
    inputs = np.zeros((streams, width), np.int32)
    labels = np.zeros((streams, width), np.int32)
    mask = np.zeros((streams, width), np.float32)
    for b, (start, end) in enumerate(zip(bounds[:-1], bounds[1:])):
        inputs[b, :end - start] = ids[start:end]
        labels[b, :end - start] = ids[start + 1:end + 1]
        mask[b, :end - start] = 1.0

    @tf.function
    def chunk_nats(x, y, m, state):
        logits, state = model.continue_sequence(x, state)
        return _masked_nats(logits, y, m), state

    state, total = model.initial_state(streams), 0.0
    for start in range(0, width, chunk):
        part = slice(start, start + chunk)
        nats, state = chunk_nats(inputs[:, part], labels[:, part], mask[:, part], state)
        total += float(nats)
    return total


def _window_nats(model, ids: np.ndarray, batch_size: int) -> float:
    """Total cross-entropy over windows of the context length, stride half of it."""
    size = model.max_positions
    stride = max(size // 2, 1)
    targets = len(ids) - 1
    starts = list(range(0, max(targets - size, 0) + stride, stride))
    inputs = np.zeros((len(starts), size), np.int32)
    labels = np.zeros((len(starts), size), np.int32)
    mask = np.zeros((len(starts), size), np.float32)
    scored = 0  # targets before this one are already scored
    for w, start in enumerate(starts):
        end = min(start + size, targets)
        inputs[w, :end - start] = ids[start:end]
        labels[w, :end - start] = ids[start + 1:end + 1]
        mask[w, scored - start:end - start] = 1.0
        scored = end

    @tf.function
    def batch_nats(x, y, m):
        return _masked_nats(model(x, training=False), y, m)

    return sum(float(batch_nats(inputs[i:i + batch_size], labels[i:i + batch_size], mask[i:i + batch_size]))
               for i in range(0, len(starts), batch_size))
