"""The ``tf.data`` side of sweep datasets: the :class:`Dataset` interface and in-memory datasets.

Every multiplier of a sweep sees the same order: epoch ``e`` visits the training set in the
permutation drawn from ``(seed, e)``, and augmentation uses stateless random ops seeded by
``(seed, e, example index)``, so a run resumed at epoch ``e`` sees what it would have seen.
Pipelines shard by data under ``tf.distribute`` and are deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

__all__ = ["Dataset", "ArrayDataset", "with_options", "element_seed"]


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


def with_options(ds):
    """The pipeline with the options every sweep dataset uses (data sharding, determinism)."""
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
        return with_options(ds.prefetch(tf.data.AUTOTUNE))

    def test(self, batch_size: int):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices((self.x_test, self.y_test)).batch(batch_size)
        ds = ds.map(lambda x, y: (self.preprocess(x), y), num_parallel_calls=tf.data.AUTOTUNE)
        return with_options(ds.prefetch(tf.data.AUTOTUNE))


