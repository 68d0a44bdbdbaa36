import gzip

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import make_images

from aigc_keras.data import load_images
from aigc_keras.data.idx import read_idx, write_idx
from aigc_keras.errors import AigcError
from aigc_keras.imaging import encode_png


def write_png(path, image):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_png(image))


def test_idx_round_trip_raw_and_gzip(tmp_path):
    images, labels = make_images(n=5)
    for name in ("x-idx3-ubyte", "x-idx3-ubyte.gz"):
        write_idx(tmp_path / name, images[..., 0])
        np.testing.assert_array_equal(read_idx(tmp_path / name), images[..., 0])
    write_idx(tmp_path / "f.idx", np.array([[1.5, -2.0]], np.float32))
    np.testing.assert_array_equal(read_idx(tmp_path / "f.idx"), [[1.5, -2.0]])


def test_idx_rejects_bad_magic_and_truncation(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01\x00\x00\x00\x01\x00")
    with pytest.raises(AigcError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    write_idx(tmp_path / "ok", np.zeros((4, 3), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "ok").read_bytes()[:-2])
    with pytest.raises(AigcError, match="data bytes"):
        read_idx(tmp_path / "short")
    (tmp_path / "corrupt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(AigcError, match="cannot read IDX"):
        read_idx(tmp_path / "corrupt.gz")


def test_embedded_mnist_reads_the_shipped_files():
    data = load_images("mnist")
    assert (data.num_examples, data.image_shape, data.num_classes) == (60000, (28, 28, 1), 10)
    image, label = next(iter(data.examples))
    assert image.dtype == tf.uint8 and int(label) == 5  # the first MNIST training digit is a 5


def test_idx_folder_with_labels(tmp_path):
    images, labels = make_images(n=10)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", images[..., 0])
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels.astype(np.uint8))
    data = load_images(f"idx:{tmp_path}")
    assert (data.num_examples, data.image_shape, data.class_names) == (10, (16, 16, 1), ["0", "1"])
    got = np.stack([lbl.numpy() for _, lbl in data.examples])
    np.testing.assert_array_equal(got, labels)
    assert load_images(f"idx:{tmp_path / 'train-images-idx3-ubyte.gz'}").num_classes == 2


def test_folder_with_class_subfolders_and_flat(tmp_path):
    images, labels = make_images(n=6, channels=3)
    for i, (img, label) in enumerate(zip(images, labels)):
        write_png(tmp_path / "classes" / ["cat", "dog"][label] / f"{i}.png", img)
        write_png(tmp_path / "flat" / f"{i}.png", img)
    data = load_images(f"folder:{tmp_path / 'classes'}")
    assert data.class_names == ["cat", "dog"] and data.image_shape == (16, 16, 3)
    pixels = {tuple(np.asarray(x).ravel()[:8]): int(y) for x, y in data.examples}
    assert pixels == {tuple(img.ravel()[:8]): int(lbl) for img, lbl in zip(images, labels)}
    flat = load_images(f"folder:{tmp_path / 'flat'}")
    assert flat.num_examples == 6 and flat.num_classes == 0


def test_folder_errors_name_the_spec(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AigcError, match=r"folder:.*empty: no image files"):
        load_images(f"folder:{tmp_path / 'empty'}")
    write_png(tmp_path / "mixed" / "a.png", np.zeros((16, 16, 1), np.uint8))
    write_png(tmp_path / "mixed" / "b.png", np.zeros((8, 8, 1), np.uint8))
    with pytest.raises(AigcError, match=r"folder:.*b\.png is 8x8, but .*a\.png is 16x16"):
        load_images(f"folder:{tmp_path / 'mixed'}")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"not a png")
    with pytest.raises(AigcError, match=r"folder:.*cannot decode"):
        load_images(f"folder:{tmp_path / 'broken'}")


def test_npz_scaling_and_errors(tmp_path):
    images, labels = make_images(n=4)
    np.savez(tmp_path / "unit.npz", x=images / 255.0, y=labels)
    data = load_images(f"npz:{tmp_path / 'unit.npz'}")
    np.testing.assert_array_equal(np.stack([x for x, _ in data.examples.as_numpy_iterator()]), images)
    np.savez(tmp_path / "wide.npz", images=images * 3.0)
    with pytest.raises(AigcError, match=r"npz:.*float images must lie in \[0, 1\] or \[-1, 1\]"):
        load_images(f"npz:{tmp_path / 'wide.npz'}")
    np.savez(tmp_path / "flat.npz", images=np.zeros((4, 256), np.uint8))
    with pytest.raises(AigcError, match=r"npz:.*images must be \[N, H, W\]"):
        load_images(f"npz:{tmp_path / 'flat.npz'}")
    np.savez(tmp_path / "nolabels.npz", pixels=images)
    with pytest.raises(AigcError, match="no 'images'"):
        load_images(f"npz:{tmp_path / 'nolabels.npz'}")
    np.savez(tmp_path / "count.npz", images=images, labels=labels[:3])
    with pytest.raises(AigcError, match="3 labels for 4 images"):
        load_images(f"npz:{tmp_path / 'count.npz'}")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(AigcError, match="junk.npz is not a NumPy .npz archive"):
        load_images(f"npz:{tmp_path / 'junk.npz'}")


@pytest.mark.parametrize(
    "spec, message",
    [
        ("cifar", "unknown dataset spec 'cifar'"),
        ("mnist:test", "unknown dataset spec"),
        ("npz:", "needs a value"),
        ("npz:/no/such/file.npz", "does not exist"),
        ("idx:/no/such/dir", "does not exist"),
    ],
)
def test_bad_specs(spec, message):
    with pytest.raises(AigcError, match=message):
        load_images(spec)


def test_pipeline_scales_batches_and_stacks(images_npz):
    data = load_images(images_npz)
    x, y = next(iter(data.batches(32, seed=0, num_epochs=1)))
    assert x.shape == (32, 16, 16, 1) and y.shape == (32,)
    assert x.dtype == tf.float32 and -1.0 <= float(tf.reduce_min(x)) and float(tf.reduce_max(x)) <= 1.0
    assert data.steps_per_epoch(40) == 2  # 96 images: the partial third batch is dropped
    epoch = np.concatenate([x.numpy() for x, _ in data.batches(40, seed=0, num_epochs=1)]).reshape(80, -1)
    assert len({row.tobytes() for row in epoch}) == 80  # an epoch draws without replacement
    x, y = next(iter(data.batches(16, seed=0, num_epochs=1, per_step=3)))
    assert x.shape == (16, 3, 16, 16, 1) and y.shape == (16, 3)
    assert data.steps_per_epoch(16, 3) == 2
    # The three stacked batches are disjoint images from one shuffled pass.
    flat = x.numpy().reshape(48, -1)
    assert len({row.tobytes() for row in flat}) == 48
    with pytest.raises(AigcError, match="fewer than one step"):
        data.batches(64, seed=0, num_epochs=1, per_step=2)


def test_validation_holds_every_class_of_class_sorted_data(tmp_path):
    """A folder of class sub-folders is read class by class: the last 20 % would be the last class."""
    images = np.arange(100, dtype=np.uint8).reshape(100, 1, 1, 1).repeat(8, 1).repeat(8, 2)  # image i is all i
    np.savez(tmp_path / "sorted.npz", images=images, labels=np.repeat(np.arange(5), 20).astype(np.int32))
    data = load_images(f"npz:{tmp_path / 'sorted.npz'}")
    train, validation = data.split(0.2)
    (val_images, val_labels), (train_images, _) = validation.arrays(), train.arrays()
    assert (train.num_examples, validation.num_examples) == (len(train_images), len(val_images)) == (80, 20)
    assert set(val_labels.tolist()) == {0, 1, 2, 3, 4}
    assert sorted(val_images[:, 0, 0, 0].tolist() + train_images[:, 0, 0, 0].tolist()) == list(range(100))
    np.testing.assert_array_equal(data.split(0.2)[1].arrays()[0], val_images)  # the same on every call


def test_pipeline_order_depends_on_seed_and_epoch_only(images_npz):
    data = load_images(images_npz)
    ds = data.batches(16, seed=1, num_epochs=2)
    first_epochs = [x.numpy() for x, _ in ds]  # two epochs of six batches
    again = [x.numpy() for x, _ in ds]  # a second iterator sees the same order
    assert len(first_epochs) == 12
    np.testing.assert_array_equal(first_epochs, again)
    assert not np.array_equal(first_epochs[0], first_epochs[6])  # each epoch is reshuffled
    resumed = next(iter(data.batches(16, seed=1, num_epochs=1, start_epoch=1)))[0].numpy()
    np.testing.assert_array_equal(resumed, first_epochs[6])
    other_seed = next(iter(data.batches(16, seed=2, num_epochs=1)))[0].numpy()
    assert not np.array_equal(other_seed, first_epochs[0])


PIPELINE_MEMORY = """
import sys
import numpy as np
from aigc_keras.data import load_images
data = load_images(sys.argv[1])
rss = lambda: int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) * 1024
before = rss()
next(iter(data.batches(64, seed=0, num_epochs=int(sys.argv[2]))))
print(rss() - before)
"""


def test_pipeline_memory_does_not_grow_with_epochs(tmp_path):
    """Opening the pipeline for many epochs costs about what one epoch does (it once copied the
    examples into every epoch: 48 MB per MNIST epoch, and 1,000 epochs ran out of 24 GB)."""
    import subprocess
    import sys

    images = np.random.default_rng(0).integers(0, 256, (10_000, 28, 28, 1), np.uint8)  # 7.8 MB
    path = tmp_path / "big.npz"
    np.savez(path, images=images, labels=np.zeros(10_000, np.int32))

    def growth(epochs):
        out = subprocess.run([sys.executable, "-c", PIPELINE_MEMORY, f"npz:{path}", str(epochs)],
                             capture_output=True, text=True, check=True)
        return int(out.stdout.split()[-1])

    assert growth(60) < growth(1) + 3 * images.nbytes  # the bug: + 59 copies, 460 MB


def test_a_pipeline_of_a_hundred_thousand_epochs_opens(images_npz):
    """A small dataset trained for a step budget is thousands of epochs; a chain of that many
    concatenated epochs took minutes to build and crashed (SIGSEGV) when its iterator opened. In a child,
    which may crash."""
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", PIPELINE_MEMORY, images_npz, "100000"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]


def test_tfds_spec_with_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=12, data_dir=str(tmp_path)):
        data = load_images("tfds:mnist")
    assert (data.num_examples, data.image_shape, data.num_classes) == (12, (28, 28, 1), 10)
    x, y = next(iter(data.batches(4, seed=0, num_epochs=1)))
    assert x.shape == (4, 28, 28, 1) and y.dtype == tf.int32


def test_tfds_unknown_name(tmp_path):
    with tfds.testing.mock_data(num_examples=2, data_dir=str(tmp_path)):
        with pytest.raises(AigcError, match="TFDS has no dataset named 'no_such_dataset'"):
            load_images("tfds:no_such_dataset")


def test_gzip_idx_written_by_writer_is_real_gzip(tmp_path):
    write_idx(tmp_path / "a.gz", np.arange(6, dtype=np.uint8).reshape(2, 3))
    with gzip.open(tmp_path / "a.gz") as f:
        assert f.read()[:4] == b"\x00\x00\x08\x02"
