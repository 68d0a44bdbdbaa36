"""Bits per character and perplexity of a language model on a text, with its own tokenizer.

One plan says which tokens are read from which starting state and which predictions are scored;
two readers carry it out: batched through the Keras model (`text_metrics`), or one token at a
time through an exported `step` signature in LiteRT (`litert_text_metrics`), so the two numbers
are the same measure and can be compared.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import AigcError
from ..progress import task
from .tokenizer import tokenizer_from_config

STREAMS = 16


def reading_plan(num_ids: int, max_positions: int | None, streams: int = STREAMS):
    """[(start, end, first_scored)]: read ids[start:end] from an empty state and score the predictions
    of ids[first_scored + 1 .. end] (each target once over the whole plan).

    A recurrent model reads the text in `streams` contiguous parts (only each part's first token
    lacks context). A bounded-context model reads windows of its context length with a stride of
    half of it, and scores each token once, in the window that gives it at least half a context.
    """
    targets = num_ids - 1
    if not max_positions:
        bounds = np.linspace(0, targets, max(1, min(streams, targets)) + 1).astype(int)
        return [(int(a), int(b), int(a)) for a, b in zip(bounds[:-1], bounds[1:])]
    size, stride = max_positions, max(max_positions // 2, 1)
    plan, scored = [], 0
    for start in range(0, max(targets - size, 0) + stride, stride):
        end = min(start + size, targets)
        plan.append((start, end, scored))
        scored = end
    return plan


def _report(tokenizer, text: str, ids: np.ndarray, total: float) -> dict:
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


def _ids(tokenizer, text: str) -> np.ndarray:
    ids = tokenizer.encode(text).astype(np.int32)
    if len(ids) < 2:
        raise AigcError("the text to evaluate needs at least 2 tokens")
    return ids


def text_metrics(model, text: str, streams: int = STREAMS, batch_size: int = 32) -> dict:
    """-log2 p(token | every earlier token the model can use), summed over every token of `text`
    after the first, read as `reading_plan` says. Bits per character divide the total bits by the
    characters predicted (with the bytes tokenizer a character may take several tokens).
    Characters outside the vocabulary are encoded as the unknown id and scored like any other
    token; their count is reported."""
    tokenizer = tokenizer_from_config(model.tokenizer)
    ids = _ids(tokenizer, text)
    plan = reading_plan(len(ids), model.max_positions, streams)
    if model.max_positions:
        total = _window_nats(model, ids, plan, batch_size)
    else:
        total = _stream_nats(model, ids, plan)
    return _report(tokenizer, text, ids, total)


def litert_text_metrics(step, state_names: list[str], initial_state: dict, tokenizer_config: dict,
                        max_positions: int | None, text: str) -> dict:
    """`text_metrics` through an exported `step` signature: `step(token=..., **state)` -> outputs
    with `logits` and the next state under the same names."""
    tokenizer = tokenizer_from_config(tokenizer_config)
    ids = _ids(tokenizer, text)
    total, plan = 0.0, reading_plan(len(ids), max_positions)
    with task("scoring in LiteRT", sum(end - start for start, end, _ in plan), " tokens") as bar:
        for start, end, first_scored in plan:
            state = dict(initial_state)
            for j in range(start, end):
                out = step(token=np.array([ids[j]], np.int32), **state)
                state = {name: out[name] for name in state_names}
                if j >= first_scored:
                    logits = out["logits"][0].astype(np.float64)
                    top = logits.max()
                    total += top + math.log(np.exp(logits - top).sum()) - logits[ids[j + 1]]
                bar.advance()
    return _report(tokenizer, text, ids, total)


def _masked_nats(logits, labels, mask):
    import tensorflow as tf

    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return tf.reduce_sum(ce * mask)


def _layout(ids: np.ndarray, plan, width: int):
    """inputs, labels and score mask [len(plan), width] for the plan's rows."""
    inputs = np.zeros((len(plan), width), np.int32)
    labels = np.zeros((len(plan), width), np.int32)
    mask = np.zeros((len(plan), width), np.float32)
    for row, (start, end, first_scored) in enumerate(plan):
        inputs[row, :end - start] = ids[start:end]
        labels[row, :end - start] = ids[start + 1:end + 1]
        mask[row, first_scored - start:end - start] = 1.0
    return inputs, labels, mask


def _stream_nats(model, ids: np.ndarray, plan) -> float:
    """Total cross-entropy with the state carried through each part, the parts read in parallel."""
    import tensorflow as tf

    chunk = model.seq_len
    width = -(-max(end - start for start, end, _ in plan) // chunk) * chunk
    inputs, labels, mask = _layout(ids, plan, width)

    @tf.function
    def chunk_nats(x, y, m, state):
        logits, state = model.continue_sequence(x, state)
        return _masked_nats(logits, y, m), state

    state, total = model.initial_state(len(plan)), 0.0
    with task("scoring", width, f" tokens of {len(plan)} streams") as bar:
        for start in range(0, width, chunk):
            part = slice(start, start + chunk)
            nats, state = chunk_nats(inputs[:, part], labels[:, part], mask[:, part], state)
            total += float(nats)
            bar.advance(chunk)
    return total


def _window_nats(model, ids: np.ndarray, plan, batch_size: int) -> float:
    """Total cross-entropy over the plan's windows, a batch of windows at a time."""
    import tensorflow as tf

    inputs, labels, mask = _layout(ids, plan, model.max_positions)

    @tf.function
    def batch_nats(x, y, m):
        return _masked_nats(model(x, training=False), y, m)

    total = 0.0
    with task("scoring", len(plan), " windows") as bar:
        for i in range(0, len(plan), batch_size):
            total += float(batch_nats(inputs[i:i + batch_size], labels[i:i + batch_size], mask[i:i + batch_size]))
            bar.reach(min(i + batch_size, len(plan)))
    return total
