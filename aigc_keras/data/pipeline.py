"""The training pipeline every family shares: deterministic per-epoch shuffles of cached examples."""

from __future__ import annotations

import tensorflow as tf

SHUFFLE_BUFFER = 100_000


def shuffled_epochs(examples: tf.data.Dataset, num_examples: int, global_batch_size: int, seed: int,
                    num_epochs: int, start_epoch: int = 0, per_epoch=None) -> tf.data.Dataset:
    """Epochs `start_epoch` .. `start_epoch + num_epochs - 1` of `examples`, each a fresh shuffle of
    all of them cut into whole global batches (then `per_epoch(ds)`, if given).

    Epoch e is shuffled by (seed, e) alone, so every iterator over it, and a run resumed at
    `start_epoch`, sees the order an uninterrupted run would. (A stateful reshuffle would not:
    Keras's distributed `fit` opens an extra iterator, which advances it.)
    """
    cached = examples.cache()
    buffer = min(num_examples, SHUFFLE_BUFFER)

    def epoch(e):
        # In this traced function, drop the global seed that the graph inherits: the order then follows
        # `seed` and `e` alone, and `random_seed.get_seed` never tests a tensor seed for truth (which fails
        # under a global seed of 0).
        tf.compat.v1.get_default_graph().seed = None
        ds = cached.shuffle(buffer, seed=seed * 1_000_003 + e, reshuffle_each_iteration=False)
        ds = ds.batch(global_batch_size, drop_remainder=True)
        return per_epoch(ds) if per_epoch else ds

    # One flat_map rather than a chain of concatenations: an iterator over a chain of thousands of
    # epochs (a small dataset trained for a step budget) overflows the C++ stack when it opens.
    return tf.data.Dataset.range(start_epoch, start_epoch + num_epochs).flat_map(epoch)


def single_threaded(ds: tf.data.Dataset) -> tf.data.Dataset:
    """`ds` on one private thread, without autotuning.

    With tf.data's default threading, `fit` on a 2-core CPU often ran at half speed (the pipeline's
    threads compete with the model's). The pipelines here only slice cached arrays and scale
    them: one thread is more than enough.
    """
    options = tf.data.Options()
    options.autotune.enabled = False
    options.threading.private_threadpool_size = 1
    options.threading.max_intra_op_parallelism = 1
    # tf.data's default graph rewrites run when an iterator opens; the pipelines here need none of them.
    options.experimental_optimization.apply_default_optimizations = False
    # Multi-worker: every worker builds the same pipeline and keeps its slice of each global batch.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)
