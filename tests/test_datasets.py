"""Sweep datasets: MNIST IDX/npz, CIFAR-10 pickles, ImageNet TFRecords and JPEG trees, digits.

CIFAR-10 and ImageNet are tested on small synthetic files written in the real on-disk formats.
"""

import gzip
import os
import pickle
import struct
import tarfile

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from approxsim.sweep.datasets import load_dataset, read_idx  # noqa: E402


def _first_batch(ds):
    return [t.numpy() for t in next(iter(ds))]


def _all_labels(ds):
    return np.concatenate([y.numpy() for _, y in ds])


# --- MNIST ---------------------------------------------------------------------------------

def _write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


@pytest.fixture(scope="module")
def mnist_dir(tmp_path_factory):
    """A tiny MNIST in IDX files: train raw, t10k gzipped."""
    d = tmp_path_factory.mktemp("mnist")
    rng = np.random.default_rng(0)
    _write_idx(d / "train-images-idx3-ubyte", rng.integers(0, 256, (50, 28, 28)), False)
    _write_idx(d / "train-labels-idx1-ubyte", rng.integers(0, 10, 50), False)
    _write_idx(d / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)), True)
    _write_idx(d / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10, True)
    return str(d)


def test_mnist_idx_train_and_test(mnist_dir):
    ds = load_dataset("mnist", mnist_dir)
    assert (ds.train_size, ds.test_size, ds.input_shape, ds.num_classes) == (50, 20, (28, 28, 1), 10)
    x, y = _first_batch(ds.train(16, seed=0, epoch=0))
    assert x.shape == (16, 28, 28, 1) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    np.testing.assert_array_equal(_all_labels(ds.test(8)), np.arange(20) % 10)


def test_mnist_order_depends_on_seed_and_epoch_only(mnist_dir):
    ds = load_dataset("mnist", mnist_dir)
    a = _all_labels(ds.train(7, seed=3, epoch=1))
    np.testing.assert_array_equal(a, _all_labels(ds.train(7, seed=3, epoch=1)))
    assert not np.array_equal(a, _all_labels(ds.train(7, seed=3, epoch=2)))
    assert sorted(a) == sorted(ds.y_train)


def test_shared_mnist_split_is_first_8000_last_2000(shared_dir):
    path = os.path.join(shared_dir, "data", "mnist")
    ds = load_dataset("mnist", path)
    assert (ds.train_size, ds.test_size) == (8000, 2000)
    labels = read_idx(os.path.join(path, "t10k-labels-idx1-ubyte.gz"))
    np.testing.assert_array_equal(ds.y_train, labels[:8000])
    np.testing.assert_array_equal(ds.y_test, labels[8000:])
    assert "first 8,000 train, last 2,000 test" in ds.note
    small = load_dataset("mnist", path, limit_train=100, limit_test=30)
    assert (small.train_size, small.test_size) == (100, 30)
    np.testing.assert_array_equal(small.y_test, labels[8000:8030])


def test_mnist_npz(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "mnist.npz", x_train=rng.integers(0, 256, (12, 28, 28), dtype=np.uint8),
             y_train=np.arange(12) % 10, x_test=rng.integers(0, 256, (4, 28, 28), dtype=np.uint8),
             y_test=np.arange(4))
    ds = load_dataset("mnist", str(tmp_path))
    assert (ds.train_size, ds.test_size) == (12, 4)


def test_mnist_missing_says_where_to_put_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte.*--data-dir|t10k-images-idx3-ubyte"):
        load_dataset("mnist", str(tmp_path))


def test_bad_idx_file(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03" + b"\x00" * 12)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05\x01")
    with pytest.raises(ValueError, match="IDX"):
        load_dataset("mnist", str(tmp_path))


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="Unknown dataset"):
        load_dataset("svhn")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset("mnist", str(tmp_path / "nope"))
    with pytest.raises(ValueError, match="limit_train"):
        load_dataset("digits", limit_train=0)
    with pytest.raises(FileNotFoundError, match="image-net.org"):
        load_dataset("imagenet", str(tmp_path))


# --- CIFAR-10 ------------------------------------------------------------------------------

def _cifar_batch(n, seed):
    rng = np.random.default_rng(seed)
    return {b"batch_label": b"synthetic", b"labels": list(rng.integers(0, 10, n)),
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"filenames": [b"x.png"] * n}


@pytest.fixture(scope="module")
def cifar_dir(tmp_path_factory):
    """Synthetic python-format CIFAR-10 batches (5 x 6 train, 4 test images) in cifar-10-batches-py/."""
    d = tmp_path_factory.mktemp("cifar") / "cifar-10-batches-py"
    d.mkdir()
    for i in range(1, 6):
        with open(d / f"data_batch_{i}", "wb") as f:
            pickle.dump(_cifar_batch(6, i), f)
    with open(d / "test_batch", "wb") as f:
        pickle.dump(_cifar_batch(4, 0), f)
    return d


def test_cifar10_pipeline(cifar_dir):
    ds = load_dataset("cifar10", str(cifar_dir.parent))
    assert (ds.train_size, ds.test_size, ds.input_shape) == (30, 4, (32, 32, 3))
    raw = _cifar_batch(4, 0)
    expect = raw[b"data"].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(ds.x_test, expect)
    x, y = _first_batch(ds.test(4))
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    np.testing.assert_allclose(x, (expect / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(y, raw[b"labels"])
    a, _ = _first_batch(ds.train(8, seed=0, epoch=0))
    b, _ = _first_batch(ds.train(8, seed=0, epoch=0))
    c, _ = _first_batch(ds.train(8, seed=0, epoch=1))
    assert a.shape == (8, 32, 32, 3) and a.dtype == np.float32
    np.testing.assert_array_equal(a, b)  # augmentation is reproducible
    assert not np.array_equal(a, c)


def test_cifar10_augmentation_is_crop_and_flip(cifar_dir):
    ds = load_dataset("cifar10", str(cifar_dir))
    x, y = _first_batch(ds.train(30, seed=5, epoch=0))
    order = np.random.default_rng([5, 0]).permutation(30)
    src = ds.x_train[order]
    mean, std = np.array([0.4914, 0.4822, 0.4465]), np.array([0.2470, 0.2435, 0.2616])
    pre = ((src / 255.0 - mean) / std).astype(np.float32)
    padded = np.pad(pre, [(0, 0), (4, 4), (4, 4), (0, 0)])
    for k in range(30):  # each output is a 32x32 window of the padded image, maybe mirrored
        found = any(np.allclose(cand, x[k], atol=1e-5)
                    for i in range(9) for j in range(9)
                    for cand in (padded[k, i:i + 32, j:j + 32], padded[k, i:i + 32, j:j + 32][:, ::-1]))
        assert found, k
    np.testing.assert_array_equal(y, ds.y_train[order])


def test_cifar10_from_archive(cifar_dir, tmp_path):
    with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tar:
        tar.add(cifar_dir, arcname="cifar-10-batches-py")
    ds = load_dataset("cifar10", str(tmp_path), limit_train=10)
    assert (ds.train_size, ds.test_size) == (10, 4)


def test_cifar10_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", str(tmp_path))


# --- ImageNet ------------------------------------------------------------------------------

def _jpeg(rng, h, w):
    return tf.io.encode_jpeg(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).numpy()


def _example(jpeg, label):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[jpeg])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
        "image/format": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"JPEG"])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def imagenet_records(tmp_path_factory):
    """Synthetic ImageNet TFRecords: 2 train shards of 6, 1 validation shard of 5; labels 1..4."""
    d = tmp_path_factory.mktemp("imagenet-tfrecords")
    rng = np.random.default_rng(0)
    for name, shards, n in (("train", 2, 6), ("validation", 1, 5)):
        for s in range(shards):
            with tf.io.TFRecordWriter(str(d / f"{name}-{s:05d}-of-{shards:05d}")) as w:
                for k in range(n):
                    w.write(_example(_jpeg(rng, 40 + 3 * k, 56 - 2 * k), 1 + (k % 4)))
    return str(d)


def test_imagenet_tfrecords(imagenet_records):
    ds = load_dataset("imagenet", imagenet_records, image_size=32, num_classes=4)
    assert ds.input_shape == (32, 32, 3) and ds.num_classes == 4
    x, y = _first_batch(ds.train(5, seed=0, epoch=0))
    assert x.shape == (5, 32, 32, 3) and x.dtype == np.float32 and np.isfinite(x).all()
    labels = _all_labels(ds.train(5, seed=0, epoch=0))
    assert len(labels) == 12 and set(labels) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(labels, _all_labels(ds.train(5, seed=0, epoch=0)))
    np.testing.assert_array_equal(_all_labels(ds.test(2)), [0, 1, 2, 3, 0])
    xt, _ = _first_batch(ds.test(5))
    assert xt.shape == (5, 32, 32, 3)
    small = load_dataset("imagenet", imagenet_records, image_size=16, num_classes=4, limit_train=3, limit_test=2)
    assert len(_all_labels(small.train(2, seed=0, epoch=0))) == 3
    assert len(_all_labels(small.test(2))) == 2


@pytest.fixture(scope="module")
def imagenet_tree(tmp_path_factory):
    """Synthetic ImageNet JPEG tree: train/<3 classes>/ 3 images each, val/ 1 each."""
    d = tmp_path_factory.mktemp("imagenet-jpeg")
    rng = np.random.default_rng(1)
    for split, n in (("train", 3), ("val", 1)):
        for c in ("n01440764", "n01443537", "n01484850"):
            (d / split / c).mkdir(parents=True)
            for k in range(n):
                (d / split / c / f"{c}_{k}.JPEG").write_bytes(_jpeg(rng, 36 + k, 48))
    return str(d)


def test_imagenet_jpeg_tree(imagenet_tree):
    ds = load_dataset("imagenet", imagenet_tree, image_size=24)
    assert (ds.num_classes, ds.train_size, ds.test_size) == (3, 9, 3)
    x, _ = _first_batch(ds.train(4, seed=1, epoch=0))
    assert x.shape == (4, 24, 24, 3)
    assert sorted(_all_labels(ds.train(4, seed=1, epoch=0))) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    np.testing.assert_array_equal(_all_labels(ds.test(8)), [0, 1, 2])


# --- digits --------------------------------------------------------------------------------

def test_digits_fixed_split():
    ds = load_dataset("digits")
    assert (ds.train_size, ds.test_size, ds.input_shape) == (1437, 360, (8, 8, 1))
    again = load_dataset("digits")
    np.testing.assert_array_equal(ds.y_test, again.y_test)
    x, _ = _first_batch(ds.test(10))
    assert 0 <= x.min() and x.max() <= 1
