"""Image datasets for every image family, named by one spec string.

Specs:
  mnist              the MNIST training set shipped inside the package (no network)
  tfds:NAME[:SPLIT]  any TFDS image dataset (downloads where online; split defaults to train)
  idx:PATH           IDX files: a folder with *images-idx3-ubyte[.gz] (+ *labels-idx1-ubyte[.gz]),
                     or the images file itself
  folder:DIR         image files; one sub-folder per class, or a flat folder without labels
  npz:FILE           arrays `images` (or x, x_train, arr_0) and optional `labels` (y, y_train, arr_1)

Every spec yields uint8 images [H, W, C] with int32 labels; `ImageData.batches` turns them into
the training pipeline: cached, shuffled per epoch, batched by the global batch size, scaled to
[-1, 1], prefetched.
"""

from __future__ import annotations

import dataclasses
import hashlib
import zipfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from ..config import IMAGE_SPECS
from ..errors import AigcError, arg
from .idx import read_idx
from .pipeline import shuffled_epochs, single_threaded
from .tfds_source import load_tfds

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")


@dataclasses.dataclass
class ImageData:
    """A labelled (or unlabelled) image dataset and what a model needs to know about it."""

    spec: str
    examples: tf.data.Dataset  # unbatched (uint8 [H, W, C], int32 label)
    num_examples: int
    image_shape: tuple[int, int, int]
    class_names: list[str]  # empty when the data has no labels
    digest: str | None = dataclasses.field(default=None, repr=False)  # see `fingerprint`

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """A hash of every pixel and label in order: data whose contents changed is told apart even
        when its name, size and shape did not."""
        if self.digest is None:
            images, labels = self.arrays()
            self.digest = _digest(images, labels)
        return self.digest

    def info(self) -> dict:
        """What a saved model records about its data."""
        return {
            "spec": self.spec,
            "num_examples": self.num_examples,
            "image_shape": list(self.image_shape),
            "class_names": self.class_names,
            "fingerprint": self.fingerprint(),
        }

    def steps_per_epoch(self, global_batch_size: int, per_step: int | None = None) -> int:
        """Whole steps in one pass (at least one, else a one-line error)."""
        steps = self.num_examples // (global_batch_size * (per_step or 1))
        if steps < 1:
            raise AigcError(
                f"{self.spec}: {self.num_examples} images are fewer than one step needs "
                f"({global_batch_size * (per_step or 1)}); lower {arg('batch_size')}"
            )
        return steps

    def split(self, validation_fraction: float) -> tuple["ImageData", "ImageData"]:
        """(train, validation): a fixed random `validation_fraction` of the examples validates, the same
        on every call. Not the last ones: a folder of class sub-folders, or an npz sorted by label,
        would validate on its last classes alone."""
        num_val = int(round(self.num_examples * validation_fraction))
        if not 0 < num_val < self.num_examples:
            raise AigcError(f"{self.spec}: {self.num_examples} images are too few to hold out "
                            f"{validation_fraction:.0%} for validation")
        held = np.zeros(self.num_examples, bool)
        held[np.random.default_rng(0).permutation(self.num_examples)[:num_val]] = True
        held = tf.constant(held)

        def part(validation: bool):
            return self.examples.enumerate().filter(lambda i, example: held[i] == validation).map(
                lambda i, example: example)

        return (dataclasses.replace(self, examples=part(False), num_examples=self.num_examples - num_val),
                dataclasses.replace(self, examples=part(True), num_examples=num_val))

    def arrays(self, num: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first `num` (default all) examples as uint8 images [N, H, W, C] and int32 labels."""
        ds = self.examples if num is None else self.examples.take(num)
        images, labels = zip(*ds.batch(4096).as_numpy_iterator())
        return np.concatenate(images), np.concatenate(labels)

    def eval_batches(self, batch_size: int) -> tf.data.Dataset:
        """(images in [-1, 1], labels) in order, for validation."""
        return self.examples.batch(batch_size).map(_scale).prefetch(2)

    def batches(self, global_batch_size: int, seed: int, num_epochs: int, start_epoch: int = 0,
                per_step: int | None = None) -> tf.data.Dataset:
        """The training pipeline: (images in [-1, 1], labels), batched by the global batch size,
        shuffled per epoch as `pipeline.shuffled_epochs` says.

        With `per_step`, that many consecutive batches are stacked on axis 1
        ([B, per_step, H, W, C]) for models that take several updates per step, so that a
        replica's slice of the batch axis holds its share of every update.
        """
        self.steps_per_epoch(global_batch_size, per_step)

        def stack_updates(ds):
            return ds.batch(per_step, drop_remainder=True).map(
                lambda x, y: (tf.experimental.numpy.swapaxes(x, 0, 1), tf.transpose(y))
            )

        ds = shuffled_epochs(self.examples, self.num_examples, global_batch_size, seed, num_epochs, start_epoch,
                             stack_updates if per_step else None)
        return single_threaded(ds.map(_scale).prefetch(2))


def _scale(images, labels):
    return tf.cast(images, tf.float32) / 127.5 - 1.0, labels


def load_images(spec: str, fingerprint: str | None = None) -> ImageData:
    """Resolve a dataset spec into `ImageData`; raise `AigcError` naming the spec on bad input.

    With `fingerprint` (what a trained model recorded), data whose contents are no longer those is
    refused (see `check_fingerprint`)."""
    kind, _, arg = spec.partition(":")
    loaders = {"tfds": _load_tfds, "idx": _load_idx, "folder": _load_folder, "npz": _load_npz}
    if kind == "mnist" and not arg:
        data = _embedded_mnist(spec)
    elif kind not in loaders:
        raise AigcError(f"unknown dataset spec {spec!r}: use {IMAGE_SPECS}")
    elif not arg:
        raise AigcError(f"dataset spec {spec!r} needs a value after '{kind}:'")
    else:
        data = loaders[kind](spec, arg)
    check_fingerprint(data, fingerprint)
    return data


def check_fingerprint(data, fingerprint: str | None) -> None:
    """Refuse `data` (images or text) in one line when a model recorded another `fingerprint` for it."""
    if fingerprint and data.fingerprint() != fingerprint:
        raise AigcError(f"{data.spec} now holds other data than the model was trained on (its contents changed "
                        "since; a relative path also names other files from another folder): restore that data, "
                        "or run from the folder the model was trained in")


def _digest(images: np.ndarray, labels: np.ndarray) -> str:
    digest = hashlib.sha256(repr((images.shape, str(images.dtype))).encode())
    digest.update(np.ascontiguousarray(images).data)
    digest.update(np.ascontiguousarray(labels, np.int32).data)
    return digest.hexdigest()[:32]


def _embedded_mnist(spec: str) -> ImageData:
    import importlib.resources

    root = importlib.resources.files("aigc_keras.data") / "mnist"
    with importlib.resources.as_file(root / "train-images-idx3-ubyte.gz") as images_path, \
            importlib.resources.as_file(root / "train-labels-idx1-ubyte.gz") as labels_path:
        images, labels = read_idx(images_path), read_idx(labels_path)
    return _from_arrays(spec, images, labels, [str(d) for d in range(10)])


def uint8_images(images, what: str = "images") -> np.ndarray:
    """Image arrays [N, H, W] or [N, H, W, 1|3], uint8 or float in [0, 1] or [-1, 1], as uint8
    [N, H, W, C]: the one rule for every array a user gives (an .npz, or `fit`'s x)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise AigcError(f"{what}: images must be [N, H, W] or [N, H, W, 1|3], got shape {list(images.shape)}")
    if len(images) == 0:
        raise AigcError(f"{what}: no images")
    return _to_uint8(what, images)


def from_arrays(images, labels=None, class_names=None, spec: str = "arrays") -> ImageData:
    """In-memory images (see `uint8_images`) and optional integer labels as `ImageData`."""
    return _from_arrays(spec, np.asarray(images), None if labels is None else np.asarray(labels), class_names)


def _from_arrays(spec, images: np.ndarray, labels: np.ndarray | None, class_names=None) -> ImageData:
    """Check shapes and dtypes of in-memory arrays and wrap them as `ImageData`."""
    images = uint8_images(images, spec)
    if labels is None:
        labels = np.zeros(len(images), np.int32)
        class_names = []
    else:
        labels = np.asarray(labels).reshape(-1)
        if len(labels) != len(images):
            raise AigcError(f"{spec}: {len(labels)} labels for {len(images)} images")
        if not np.issubdtype(labels.dtype, np.integer) or labels.min() < 0:
            raise AigcError(f"{spec}: labels must be non-negative integers")
        labels = labels.astype(np.int32)
        if class_names is None:
            class_names = [str(c) for c in range(int(labels.max()) + 1)]
        elif labels.max() >= len(class_names):
            raise AigcError(f"{spec}: label {labels.max()} out of range for {len(class_names)} classes")
    examples = tf.data.Dataset.from_tensor_slices((images, labels))
    return ImageData(spec, examples, len(images), tuple(images.shape[1:]), list(class_names),
                     _digest(images, labels))


def _to_uint8(spec: str, images: np.ndarray) -> np.ndarray:
    if images.dtype == np.uint8:
        return images
    if not np.issubdtype(images.dtype, np.floating):
        raise AigcError(f"{spec}: images must be uint8 or float, got {images.dtype}")
    lo, hi = float(images.min()), float(images.max())
    if lo >= 0.0 and hi <= 1.0:
        scaled = images * 255.0
    elif lo >= -1.0 and hi <= 1.0:
        scaled = (images + 1.0) * 127.5
    else:
        raise AigcError(f"{spec}: float images must lie in [0, 1] or [-1, 1], found [{lo:g}, {hi:g}]")
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def _existing(spec: str, arg: str) -> Path:
    path = Path(arg).expanduser()
    if not path.exists():
        raise AigcError(f"{spec}: {path} does not exist")
    return path


def _load_idx(spec: str, arg: str) -> ImageData:
    path = _existing(spec, arg)
    if path.is_dir():
        found = sorted(path.glob("*idx3-ubyte*"))
        if not found:
            raise AigcError(f"{spec}: no *idx3-ubyte[.gz] images file in {path}")
        images_path = next((p for p in found if p.name.startswith("train")), found[0])
    else:
        images_path = path
    labels_path = images_path.with_name(
        images_path.name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1")
    )
    images = read_idx(images_path)
    labels = read_idx(labels_path) if labels_path != images_path and labels_path.exists() else None
    return _from_arrays(spec, images, labels)


def _load_npz(spec: str, arg: str) -> ImageData:
    path = _existing(spec, arg)
    if path.is_dir() or not zipfile.is_zipfile(path):
        raise AigcError(f"{spec}: {path} is not a NumPy .npz archive (np.savez writes one)")
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, OSError
        raise AigcError(f"{spec}: cannot read {path} as .npz ({e})") from None
    image_key = next((k for k in ("images", "x", "x_train", "arr_0") if k in arrays), None)
    if image_key is None:
        raise AigcError(f"{spec}: no 'images' (or x, x_train, arr_0) array; found {sorted(arrays)}")
    label_key = next((k for k in ("labels", "y", "y_train", "arr_1") if k in arrays), None)
    labels = arrays[label_key] if label_key else None
    class_names = None
    if "class_names" in arrays:
        class_names = [str(c) for c in arrays["class_names"]]
    return _from_arrays(spec, arrays[image_key], labels, class_names)


def _load_folder(spec: str, arg: str) -> ImageData:
    root = _existing(spec, arg)
    if not root.is_dir():
        raise AigcError(f"{spec}: {root} is not a folder")
    class_dirs = sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".") and _image_files(d))
    loose = _image_files(root)
    if class_dirs and loose:
        raise AigcError(f"{spec}: {root} has {len(loose)} images at its top and class sub-folders "
                        f"({_folder_names(class_dirs)}): put every image in a class sub-folder, or none in one")
    if class_dirs:
        groups = [(i, _image_files(d)) for i, d in enumerate(class_dirs)]
        class_names = [d.name for d in class_dirs]
        deeper = [d for d in class_dirs if any(e.is_dir() and _image_files(e) for e in d.iterdir())]
        if deeper:
            raise AigcError(f"{spec}: the class folder {deeper[0]} holds folders of images too; a class is one "
                            "folder of image files")
    else:
        groups = [(0, loose)]
        class_names = None
    files = [(f, label) for label, fs in groups for f in fs]
    if not files:
        raise AigcError(f"{spec}: no image files ({', '.join(IMAGE_SUFFIXES)}) in {root}")
    images, channels, first = [], None, files[0][0]
    for f, _ in files:
        img = _decode(spec, f, channels or 0)
        if channels is None:
            channels = 3 if img.shape[-1] >= 3 else 1
            if img.shape[-1] != channels:
                img = _decode(spec, f, channels)
        if images and img.shape != images[0].shape:
            raise AigcError(
                f"{spec}: {f} is {img.shape[0]}x{img.shape[1]}, but {first} is "
                f"{images[0].shape[0]}x{images[0].shape[1]}; all images must share one size"
            )
        images.append(img)
    labels = np.array([label for _, label in files], np.int32) if class_names else None
    return _from_arrays(spec, np.stack(images), labels, class_names)


def _decode(spec: str, path: Path, channels: int) -> np.ndarray:
    try:
        return tf.io.decode_image(tf.io.read_file(str(path)), channels=channels, expand_animations=False).numpy()
    except tf.errors.OpError:  # its text is TensorFlow's op internals
        size = path.stat().st_size if path.exists() else 0
        what = "it is empty" if size == 0 else f"it is not a {path.suffix.lower()} image, or it is damaged"
        raise AigcError(f"{spec}: cannot decode {path}: {what}") from None


def _folder_names(folders: list[Path]) -> str:
    names = ", ".join(f"{d.name}/" for d in folders[:3])
    return names + (f" and {len(folders) - 3} more" if len(folders) > 3 else "")


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _load_tfds(spec: str, arg: str) -> ImageData:
    import tensorflow_datasets as tfds

    ds, info, image_key, split = load_tfds(spec, arg, tfds.features.Image, "image")
    shape = info.features[image_key].shape
    if None in shape or shape[-1] not in (1, 3):
        raise AigcError(f"{spec}: images must have one fixed size with 1 or 3 channels, got {shape}")
    label = info.features["label"] if "label" in info.features else None
    if isinstance(label, tfds.features.ClassLabel):
        class_names = list(label.names)
        examples = ds.map(lambda e: (e[image_key], tf.cast(e["label"], tf.int32)))
    else:
        class_names = []
        examples = ds.map(lambda e: (e[image_key], tf.constant(0, tf.int32)))
    count = int(examples.cardinality())
    if count < 0:
        count = int(examples.reduce(0, lambda n, _: n + 1))
    if count == 0:
        raise AigcError(f"{spec}: split {split!r} is empty")
    return ImageData(spec, examples, count, tuple(shape), class_names)
