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

import os
from typing import Optional

import numpy as np

from approxsim.sweep.pipeline import ArrayDataset, Dataset
from approxsim.sweep.readers import load_cifar10, load_digits, load_mnist, read_idx

__all__ = ["DATASETS", "Dataset", "ArrayDataset", "load_dataset", "read_idx"]


# --- registry ------------------------------------------------------------------------------

def _imagenet(data_dir, **options):
    from approxsim.sweep.imagenet import load_imagenet

    return load_imagenet(data_dir, **options)


DATASETS = {"mnist": load_mnist, "cifar10": load_cifar10, "imagenet": _imagenet, "digits": load_digits}


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
