"""Datasets for sweeps, as ``tf.data`` pipelines with each benchmark's usual preprocessing.

Names (:data:`DATASETS`):

- ``mnist``: 28x28x1 in [0, 1]. The IDX files in ``data_dir`` (``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
  raw or ``.gz``) or a ``mnist.npz``; without ``data_dir``, ``keras.datasets.mnist``. When
  ``data_dir`` holds only the ``t10k`` files (the 10,000 test digits), they are split in a
  fixed way: the **first 8,000 train, the last 2,000 test**.
- ``cifar10``: 32x32x3 normalised per channel; training adds the standard augmentation
  (4-pixel zero padding, random 32x32 crop, random horizontal flip). The python-format
  batches (``data_batch_1..5``, ``test_batch``) in ``data_dir``, in
  ``data_dir/cifar-10-batches-py`` or in ``data_dir/cifar-10-python.tar.gz``; without
  ``data_dir``, ``keras.datasets.cifar10``.
- ``imagenet``: see :mod:`approxsim.sweep.imagenet` (TFRecords or a JPEG folder tree).
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, no download), scaled to [0, 1];
  a fixed split (shuffled with seed 0): 1,437 train, 360 test.

``limit_train``/``limit_test`` keep the first N examples of each split.
Every multiplier of a sweep sees the same order: epoch ``e`` visits the training set in the
permutation drawn from ``(seed, e)``, and augmentation uses stateless random ops seeded by
``(seed, e, example index)``, so a run resumed at epoch ``e`` sees what it would have seen.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

__all__ = ["DATASETS", "Dataset", "ArrayDataset", "load_dataset", "read_idx"]

MNIST_URLS = ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz (keras.datasets.mnist), "
              "or the four IDX files from https://yann.lecun.com/exdb/mnist/")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


class Dataset:
    """A train/test pair of ``tf.data`` pipelines.

    Attributes:
      name: dataset name.
      input_shape: shape of one example, e.g. ``(28, 28, 1)``.
      num_classes: number of labels (labels are integers ``0..num_classes-1``).
      train_size, test_size: number of examples in each split (``None`` if unknown).
      note: one line saying where the data came from and how it was split.
    """

    name: str
    input_shape: tuple
    num_classes: int
    train_size: Optional[int]
    test_size: Optional[int]
    note: str = ""

    def train(self, batch_size: int, *, seed: int, epoch: int):
        """Batches ``(x, y)`` of the training set for one epoch, in the order fixed by ``(seed, epoch)``."""
        raise NotImplementedError

    def test(self, batch_size: int):
        """Batches ``(x, y)`` of the test set, in file order, without augmentation."""
        raise NotImplementedError


def _with_options(ds):
    import tensorflow as tf

    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.deterministic = True
    return ds.with_options(options)


def element_seed(seed: int, epoch: int, index):
    """The stateless-RNG seed of one training example (shape ``(2,)`` int64)."""
    import tensorflow as tf

    return tf.stack([tf.constant(int(seed) * 1_000_003 + int(epoch), tf.int64), tf.cast(index, tf.int64)])


@dataclass
class ArrayDataset(Dataset):
    """A dataset held in memory as NumPy arrays (MNIST, CIFAR-10, digits).

    ``preprocess(x)`` maps a batch of raw examples to float32; ``augment(x, seed)`` (optional)
    transforms one preprocessed training example with stateless random ops.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    preprocess: Callable
    augment: Optional[Callable] = None
    note: str = ""
    input_shape: tuple = field(init=False)
    train_size: int = field(init=False)
    test_size: int = field(init=False)

    def __post_init__(self):
        self.input_shape = tuple(int(d) for d in self.x_train.shape[1:])
        self.train_size = int(len(self.x_train))
        self.test_size = int(len(self.x_test))
        self.y_train = np.asarray(self.y_train, np.int32).reshape(-1)
        self.y_test = np.asarray(self.y_test, np.int32).reshape(-1)

    def train(self, batch_size: int, *, seed: int, epoch: int):
        import tensorflow as tf

        order = np.random.default_rng([int(seed), int(epoch)]).permutation(self.train_size)
        ds = tf.data.Dataset.from_tensor_slices((self.x_train[order], self.y_train[order], order))
        if self.augment is None:
            ds = ds.batch(batch_size).map(lambda x, y, i: (self.preprocess(x), y),
                                          num_parallel_calls=tf.data.AUTOTUNE)
        else:
            augment, preprocess = self.augment, self.preprocess
            ds = ds.map(lambda x, y, i: (augment(preprocess(x), element_seed(seed, epoch, i)), y),
                        num_parallel_calls=tf.data.AUTOTUNE).batch(batch_size)
        return _with_options(ds.prefetch(tf.data.AUTOTUNE))

    def test(self, batch_size: int):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.x_test, self.y_test)).batch(batch_size)
        ds = ds.map(lambda x, y: (self.preprocess(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        return _with_options(ds.prefetch(tf.data.AUTOTUNE))


# --- MNIST ---------------------------------------------------------------------------------

def read_idx(path) -> np.ndarray:
    """Reads an IDX file (raw or ``.gz``) of unsigned bytes, as MNIST ships them.

    Raises:
      ValueError: not an IDX file of unsigned bytes, or truncated.
    """
    path = os.fspath(path)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes (bad magic number {data[:4].hex()}). "
                         "Pass the MNIST files as downloaded (raw or .gz).")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    body = np.frombuffer(data, np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: the header says {dims} ({int(np.prod(dims))} bytes), "
                         f"the file holds {body.size}. Download it again.")
    return body.reshape(dims)


def _find_idx(data_dir: str, prefix: str, kind: str) -> Optional[str]:
    ext = "idx3-ubyte" if kind == "images" else "idx1-ubyte"
    for sep in ("-", "."):
        for suffix in ("", ".gz"):
            path = os.path.join(data_dir, f"{prefix}-{kind}{sep}{ext}{suffix}")
            if os.path.isfile(path):
                return path
    return None


def _mnist_from_dir(data_dir: str):
    npz = os.path.join(data_dir, "mnist.npz")
    if os.path.isfile(npz):
        with np.load(npz) as f:
            return (f["x_train"], f["y_train"], f["x_test"], f["y_test"]), f"MNIST from {npz}"
    files = {(p, k): _find_idx(data_dir, p, k) for p in ("train", "t10k") for k in ("images", "labels")}
    have_test = files["t10k", "images"] and files["t10k", "labels"]
    have_train = files["train", "images"] and files["train", "labels"]
    if not have_test:
        raise FileNotFoundError(
            f"No MNIST files in {data_dir}. Put t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz "
            "(and, for the full training set, train-images-idx3-ubyte.gz and train-labels-idx1-ubyte.gz; "
            f"raw or .gz) or a mnist.npz there. Download: {MNIST_URLS}. Received: data_dir={data_dir!r}")
    x_test, y_test = read_idx(files["t10k", "images"]), read_idx(files["t10k", "labels"])
    if have_train:
        x_train, y_train = read_idx(files["train", "images"]), read_idx(files["train", "labels"])
        return (x_train, y_train, x_test, y_test), f"MNIST IDX files in {data_dir}"
    n_train = len(x_test) * 4 // 5
    note = (f"MNIST test set only ({len(x_test):,} digits in {data_dir}): "
            f"first {n_train:,} train, last {len(x_test) - n_train:,} test")
    return (x_test[:n_train], y_test[:n_train], x_test[n_train:], y_test[n_train:]), note


def _keras_download(what: str, loader, hint: str):
    try:
        return loader()
    except Exception as e:  # keras raises various errors when offline
        raise FileNotFoundError(
            f"{what} is not cached and could not be downloaded by keras.datasets ({type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}). {hint}") from None


def _mnist(data_dir):
    if data_dir:
        (x_train, y_train, x_test, y_test), note = _mnist_from_dir(data_dir)
    else:
        import keras

        (x_train, y_train), (x_test, y_test) = _keras_download(
            "MNIST", keras.datasets.mnist.load_data,
            f"Download {MNIST_URLS}, put the files in a folder and pass --data-dir FOLDER.")
        note = "MNIST from keras.datasets.mnist"
    x_train, x_test = x_train[..., None], x_test[..., None]

    def preprocess(x):
        import tensorflow as tf

        return tf.cast(x, tf.float32) / 255.0

    return ArrayDataset("mnist", x_train, y_train, x_test, y_test, 10, preprocess, note=note)


# --- CIFAR-10 ------------------------------------------------------------------------------

def _cifar_batches(data_dir: str) -> dict:
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for folder in (data_dir, os.path.join(data_dir, "cifar-10-batches-py")):
        if all(os.path.isfile(os.path.join(folder, n)) for n in names):
            out = {}
            for n in names:
                with open(os.path.join(folder, n), "rb") as f:
                    out[n] = f.read()
            return out
    archive = os.path.join(data_dir, "cifar-10-python.tar.gz")
    if os.path.isfile(archive):
        out = {}
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                base = os.path.basename(member.name)
                if member.isfile() and base in names:
                    out[base] = tar.extractfile(member).read()
        if len(out) == len(names):
            return out
    raise FileNotFoundError(
        f"No CIFAR-10 python batches in {data_dir}. Put data_batch_1 .. data_batch_5 and test_batch there "
        f"(or in {data_dir}/cifar-10-batches-py, or the archive cifar-10-python.tar.gz itself). "
        f"Download: {CIFAR10_URL}. Received: data_dir={data_dir!r}")


def _unpickle_cifar(blob: bytes, name: str):
    d = pickle.load(io.BytesIO(blob), encoding="bytes")
    try:
        data = np.asarray(d[b"data"], np.uint8)
        labels = np.asarray(d[b"labels"], np.int32)
    except KeyError:
        raise ValueError(f"CIFAR-10 batch {name} has no b'data'/b'labels' entries; it is not a python-format "
                         f"CIFAR-10 batch. Download {CIFAR10_URL}.") from None
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


def cifar_augment(x, seed):
    """4-pixel zero padding, a random 32x32 crop and a random horizontal flip (stateless)."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 2)
    x = tf.pad(x, [[4, 4], [4, 4], [0, 0]])
    x = tf.image.stateless_random_crop(x, [32, 32, 3], seed=seeds[0])
    return tf.image.stateless_random_flip_left_right(x, seed=seeds[1])


def _cifar10(data_dir):
    if data_dir:
        blobs = _cifar_batches(data_dir)
        parts = [_unpickle_cifar(blobs[f"data_batch_{i}"], f"data_batch_{i}") for i in range(1, 6)]
        x_train = np.concatenate([p[0] for p in parts])
        y_train = np.concatenate([p[1] for p in parts])
        x_test, y_test = _unpickle_cifar(blobs["test_batch"], "test_batch")
        note = f"CIFAR-10 python batches in {data_dir}"
    else:
        import keras

        (x_train, y_train), (x_test, y_test) = _keras_download(
            "CIFAR-10", keras.datasets.cifar10.load_data,
            f"Download {CIFAR10_URL}, put it (or its extracted batches) in a folder and pass --data-dir FOLDER.")
        note = "CIFAR-10 from keras.datasets.cifar10"
    mean = np.array(CIFAR10_MEAN, np.float32)
    std = np.array(CIFAR10_STD, np.float32)

    def preprocess(x):
        import tensorflow as tf

        return (tf.cast(x, tf.float32) / 255.0 - mean) / std

    return ArrayDataset("cifar10", x_train, y_train, x_test, y_test, 10, preprocess, augment=cifar_augment,
                        note=note)


# --- digits --------------------------------------------------------------------------------

def _digits(data_dir):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        from approxsim.errors import ApproxsimError

        raise ApproxsimError("The digits dataset comes with scikit-learn, which is not installed. "
                             "Install it: pip install scikit-learn") from None

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[..., None]
    order = np.random.default_rng(0).permutation(len(images))
    n_train = len(images) * 4 // 5
    tr, te = order[:n_train], order[n_train:]

    def preprocess(x):
        return x

    return ArrayDataset("digits", images[tr], d.target[tr], images[te], d.target[te], 10, preprocess,
                        note=f"scikit-learn digits (8x8), fixed split: {len(tr):,} train, {len(te):,} test")


# --- registry ------------------------------------------------------------------------------

def _imagenet(data_dir, **options):
    from approxsim.sweep.imagenet import load_imagenet

    return load_imagenet(data_dir, **options)


DATASETS = {"mnist": _mnist, "cifar10": _cifar10, "imagenet": _imagenet, "digits": _digits}


def _limit(n, what):
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
        raise ValueError(f"{what} must be a positive number of examples (or None for all). Received: {what}={n!r}")
    return int(n)


def load_dataset(name: str, data_dir: Optional[str] = None, *, limit_train: Optional[int] = None,
                 limit_test: Optional[int] = None, **options) -> Dataset:
    """Loads a dataset by name.

    Args:
      name: one of :data:`DATASETS`.
      data_dir: folder with the dataset's files (see the module docstring); ``None``: download
        through ``keras.datasets`` where that exists.
      limit_train, limit_test: keep only the first N examples of each split.
      **options: dataset-specific options (``imagenet``: ``image_size``, ``num_classes``, ``label_offset``).

    Returns:
      A :class:`Dataset`.

    Raises:
      ValueError: unknown name or bad limit.
      FileNotFoundError: the files are missing; the message says where to put them and where to get them.
    """
    key = str(name).lower()
    if key not in DATASETS:
        raise ValueError(f"Unknown dataset {name!r}. Choose one of: {', '.join(DATASETS)}. Received: dataset={name!r}")
    limit_train = _limit(limit_train, "limit_train")
    limit_test = _limit(limit_test, "limit_test")
    if data_dir is not None:
        data_dir = os.path.expanduser(os.fspath(data_dir))
        if not os.path.isdir(data_dir):
            raise FileNotFoundError(f"The data folder does not exist. Pass an existing folder as --data-dir. "
                                    f"Received: data_dir={data_dir!r}")
    if options and key != "imagenet":
        raise ValueError(f"Dataset {key!r} takes no options. Received: {options!r}")
    ds = DATASETS[key](data_dir, **options)
    if isinstance(ds, ArrayDataset):
        if limit_train is not None or limit_test is not None:
            ds = ArrayDataset(ds.name, ds.x_train[:limit_train], ds.y_train[:limit_train], ds.x_test[:limit_test],
                              ds.y_test[:limit_test], ds.num_classes, ds.preprocess, ds.augment, ds.note)
            ds.note += f"; kept the first {ds.train_size:,} train and {ds.test_size:,} test examples"
    else:
        ds.set_limits(limit_train, limit_test)
    return ds
