"""Bits per character and perplexity of a language model on a text, with its own tokenizer."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ..data.text import TokenWindows
from ..errors import AigcError
from ..text.tokenizer import tokenizer_from_config


def text_metrics(model, text: str, batch_size: int = 64) -> dict:
    """Cross-entropy of every token of `text` after the first, in windows of the model's `seq_len`
    (each window starts from an empty context, as in training's validation).

    Bits per character divide the total bits by the characters predicted (for the bytes
    tokenizer a character may take several tokens). Characters outside the vocabulary are encoded
    as the unknown id and scored like any other token; their count is reported.
    """
    tokenizer = tokenizer_from_config(model.tokenizer)
    ids = tokenizer.encode(text)
    if len(ids) < 2:
        raise AigcError("the text to evaluate needs at least 2 tokens")
    windows = TokenWindows.from_ids("evaluate", ids, model.seq_len).windows
    covered = len(windows) * model.seq_len
    tail = ids[covered:]  # targets after the last whole window (with the id before them)

    @tf.function(reduce_retracing=True)
    def nats(batch):
        logits = tf.cast(model(batch[:, :-1], training=False), tf.float32)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=batch[:, 1:], logits=logits))

    total = sum(float(nats(tf.constant(windows[i:i + batch_size]))) for i in range(0, len(windows), batch_size))
    if len(tail) > 1:
        total += float(nats(tf.constant(tail[None].astype(np.int32))))
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
