"""Reading the datasets' files: MNIST IDX files, CIFAR-10 python batches, scikit-learn's digits.

Each ``load_<name>(data_dir)`` returns an :class:`~approxsim.sweep.pipeline.ArrayDataset` with the
benchmark's usual preprocessing (see :mod:`approxsim.sweep.datasets` for the layouts accepted).
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import tarfile
from typing import Optional

import numpy as np

from approxsim.sweep.pipeline import ArrayDataset

__all__ = ["read_idx", "load_mnist", "load_cifar10", "load_digits", "cifar_augment", "MNIST_URLS", "CIFAR10_URL"]

MNIST_URLS = ("https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz (keras.datasets.mnist), "
              "or the four IDX files from https://yann.lecun.com/exdb/mnist/")
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)


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


def load_mnist(data_dir):
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


def load_cifar10(data_dir):
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

def load_digits(data_dir):
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


