"""Reflow (Liu et al. 2022, "Flow straight and fast"; InstaFlow, Liu et al. 2024): a student flow trained
on the couplings (z, x_0) of its teacher's ODE, whose paths are straighter than those of the data's
random couplings, so that Euler in 1-4 steps samples it.

The teacher draws `distill_pairs` samples once, with its default sampler (Heun, 12 steps), from noise
z_i = N(0, I) drawn by a stateless generator from (seed, i) in a stream that no `sample --seed` draws.
The samples are kept in the student's folder (`folders.PAIRS_FILE`, with the teacher's fingerprint), so
that a resumed run does not draw them again; z_i is drawn again from i wherever it is needed. The student
then trains as any flow, with each image's own noise for eps: x_t = (1 - t) x_0 + t z, v = z - x_0, by
default only at the times Euler in 4, 2 and 1 steps evaluates (`--time-sampling few-step`).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from .. import fileio
from ..data.pipeline import shuffled_epochs, single_threaded
from ..errors import AigcError, arg
from ..imaging import to_uint8
from ..inputs import CHUNK, class_labels, in_chunks
from .pipeline import compiled_generate, resolve

PAIR_STREAM = 0x5EF10  # folded into the seed: the pairs' noise is no sampling seed's


def pair_noise(indices, image_shape, seed: int):
    """z_i [len(indices), *image_shape] for pair indices `indices` (int64): the same wherever drawn."""
    key = tf.random.experimental.stateless_fold_in(tf.constant([seed, PAIR_STREAM], tf.int64), 0)

    def one(i):
        return tf.random.stateless_normal(image_shape, seed=tf.random.experimental.stateless_fold_in(key, i))

    return tf.map_fn(one, tf.cast(indices, tf.int64), fn_output_signature=tf.float32)


class TeacherPairs:
    """The teacher's samples and the indices of their noise: the data a student trains on. `batches` gives
    ({"images": uint8 x_0, "noise": z}, labels), which `DiffusionModel.train_step` pairs."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, seed: int):
        self.images, self.labels, self.seed = images, labels, seed
        self.image_shape = tuple(images.shape[1:])

    @property
    def num_examples(self) -> int:
        return len(self.images)

    def steps_per_epoch(self, global_batch_size: int, per_step: int | None = None) -> int:
        steps = self.num_examples // global_batch_size
        if steps < 1:
            raise AigcError(f"{arg('distill_pairs')} {self.num_examples} is fewer than one step needs "
                            f"({global_batch_size}); raise it or lower {arg('batch_size')}")
        return steps

    def batches(self, global_batch_size: int, seed: int, num_epochs: int, start_epoch: int = 0,
                per_step: int | None = None) -> tf.data.Dataset:
        if per_step:
            raise ValueError("reflow pairs train one update per step")
        examples = tf.data.Dataset.from_tensor_slices((np.arange(self.num_examples), self.images, self.labels))
        ds = shuffled_epochs(examples, self.num_examples, global_batch_size, seed, num_epochs, start_epoch)

        def paired(indices, images, labels):
            return {"images": images, "noise": pair_noise(indices, self.image_shape, self.seed)}, labels

        return single_threaded(ds.map(paired).prefetch(2))


def draw_pairs(teacher, sampling, num: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 samples [num, H, W, C], int32 labels [num]) of `teacher` from z_0 .. z_{num-1}, with
    `sampling`; the labels go through every class in turn (zeros for an unconditional teacher)."""
    loop = compiled_generate(teacher, sampling)
    labels = class_labels(num, teacher.num_classes)

    def draw(indices, labels, k):
        noise = pair_noise(indices, teacher.image_shape, seed)
        x = loop(noise, None if labels is None else tf.constant(labels), None, tf.constant(seed + k, tf.int64))
        return to_uint8(x)

    images = in_chunks(draw, np.arange(num), labels, chunk=CHUNK)
    return images, np.zeros(num, np.int32) if labels is None else labels


def teacher_pairs(teacher, fingerprint: str, num: int, seed: int, path, log) -> TeacherPairs:
    """The pairs kept at `path`, or, when there are none of this teacher, `num` and `seed`, drawn now and
    kept there (atomically)."""
    kept = _read(path)
    if kept is not None and kept["fingerprint"] == fingerprint and kept["seed"] == seed and len(kept["images"]) == num:
        return TeacherPairs(kept["images"], kept["labels"], seed)
    sampling = resolve(teacher)
    log(f"distill: drawing {num:,} teacher samples ({sampling.name} x{sampling.steps}, {sampling.evaluations} "
        f"network calls each) into {path}")
    images, labels = draw_pairs(teacher, sampling, num, seed)
    with fileio.atomic_path(path, suffix=".npz") as tmp:
        np.savez(tmp, images=images, labels=labels, seed=np.int64(seed), fingerprint=np.str_(fingerprint))
    return TeacherPairs(images, labels, seed)


def _read(path) -> dict | None:
    """The pairs file's arrays, or None when there is none or it cannot be read (then it is drawn again)."""
    try:
        with np.load(path) as f:
            return {"images": f["images"], "labels": f["labels"], "seed": int(f["seed"]),
                    "fingerprint": str(f["fingerprint"])}
    except (OSError, KeyError, ValueError):
        return None
