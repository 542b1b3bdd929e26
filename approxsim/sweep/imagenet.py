"""ImageNet for sweeps: TFRecords in the standard layout or a class-per-folder JPEG tree.

Accepted layouts of ``data_dir``:

- **TFRecords** as written by TensorFlow's ``build_imagenet_data.py`` (the layout of the TF
  model garden and TPU ResNet recipes): ``train-00000-of-01024`` ... and
  ``validation-00000-of-00128`` ..., each record an ``Example`` with ``image/encoded``
  (JPEG bytes) and ``image/class/label`` (int64, **1..1000**, hence ``label_offset=1``).
- **A JPEG tree**: ``train/<class>/*.JPEG`` and ``val/<class>/*.JPEG`` (or ``validation/``);
  class ``k`` is the k-th class folder name of ``train/`` in sorted order.

Preprocessing is the standard ResNet one: training takes a random crop covering 8%..100% of
the image with aspect ratio 3/4..4/3, resizes it to ``image_size`` and flips it at random
(stateless, seeded per example); evaluation takes the central ``224/256`` of the image and
resizes it. Both normalise with the ImageNet mean and standard deviation.
"""

from __future__ import annotations

import glob
import os
from typing import Optional

import numpy as np

from approxsim.sweep.pipeline import Dataset, element_seed, with_options

__all__ = ["load_imagenet", "ImageNet"]

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
EVAL_CROP = 224 / 256
SHUFFLE_BUFFER = 10_000
JPEG_EXTENSIONS = (".jpeg", ".jpg")
HOWTO = ("Get ImageNet (ILSVRC2012) from https://image-net.org/download.php and either convert it to "
         "TFRecords with TensorFlow's build_imagenet_data.py (files train-*-of-* and validation-*-of-*), "
         "or arrange the JPEGs as train/<class>/*.JPEG and val/<class>/*.JPEG; then pass that folder "
         "as --data-dir.")


def _parse_record(record):
    import tensorflow as tf

    features = tf.io.parse_single_example(record, {
        "image/encoded": tf.io.FixedLenFeature([], tf.string),
        "image/class/label": tf.io.FixedLenFeature([], tf.int64),
    })
    return features["image/encoded"], features["image/class/label"]


def _normalise(image):
    import tensorflow as tf

    return (tf.cast(image, tf.float32) / 255.0 - np.array(MEAN, np.float32)) / np.array(STD, np.float32)


def train_image(jpeg, seed, image_size: int):
    """Random-resized crop and flip of JPEG bytes (stateless with ``seed``), normalised."""
    import tensorflow as tf

    seeds = tf.random.experimental.stateless_split(seed, 2)
    shape = tf.image.extract_jpeg_shape(jpeg)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, bounding_boxes=tf.zeros([1, 0, 4]), seed=seeds[0], min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
    image = tf.image.resize(image, [image_size, image_size], method="bilinear")
    image = tf.image.stateless_random_flip_left_right(image, seed=seeds[1])
    return _normalise(image)


def eval_image(jpeg, image_size: int):
    """Central ``224/256`` crop of JPEG bytes, resized to ``image_size``, normalised."""
    import tensorflow as tf

    shape = tf.image.extract_jpeg_shape(jpeg)
    h, w = shape[0], shape[1]
    side = tf.cast(EVAL_CROP * tf.cast(tf.minimum(h, w), tf.float32), tf.int32)
    window = tf.stack([(h - side + 1) // 2, (w - side + 1) // 2, side, side])
    image = tf.image.decode_and_crop_jpeg(jpeg, window, channels=3)
    return _normalise(tf.image.resize(image, [image_size, image_size], method="bilinear"))


class ImageNet(Dataset):
    """ImageNet from TFRecords or a JPEG tree (see the module docstring)."""

    name = "imagenet"

    def __init__(self, *, train_files=None, test_files=None, train_items=None, test_items=None,
                 num_classes: int, image_size: int, label_offset: int, note: str):
        self._train_files, self._test_files = train_files, test_files
        self._train_items, self._test_items = train_items, test_items
        self.num_classes = int(num_classes)
        self.image_size = int(image_size)
        self.label_offset = int(label_offset)
        self.input_shape = (self.image_size, self.image_size, 3)
        self.note = note
        self._limit_train = self._limit_test = None
        self._set_sizes()

    def _set_sizes(self):
        def size(items, limit):
            if items is None:
                return limit
            return len(items[0]) if limit is None else min(limit, len(items[0]))

        self.train_size = size(self._train_items, self._limit_train)
        self.test_size = size(self._test_items, self._limit_test)

    def set_limits(self, limit_train: Optional[int], limit_test: Optional[int]) -> None:
        """Keeps only the first N examples of each split (file order)."""
        self._limit_train, self._limit_test = limit_train, limit_test
        self._set_sizes()
        if limit_train is not None or limit_test is not None:
            self.note += f"; kept the first {limit_train or 'all'} train and {limit_test or 'all'} test examples"

    def _records(self, files, *, seed=None, epoch=0, limit=None):
        import tensorflow as tf

        files = list(files)
        if seed is not None and limit is None:
            files = [files[i] for i in np.random.default_rng([int(seed), int(epoch), 1]).permutation(len(files))]
        ds = tf.data.Dataset.from_tensor_slices(files)
        ds = ds.interleave(tf.data.TFRecordDataset, cycle_length=min(8, len(files)), deterministic=True,
                           num_parallel_calls=tf.data.AUTOTUNE)
        if limit is not None:
            ds = ds.take(limit)
        ds = ds.map(_parse_record, num_parallel_calls=tf.data.AUTOTUNE)
        offset = self.label_offset
        return ds.map(lambda jpeg, label: (jpeg, tf.cast(label - offset, tf.int32)))

    def _items(self, items, *, seed=None, epoch=0, limit=None):
        import tensorflow as tf

        paths, labels = items
        paths, labels = paths[:limit], labels[:limit]
        if seed is not None:
            order = np.random.default_rng([int(seed), int(epoch)]).permutation(len(paths))
            paths, labels = [paths[i] for i in order], labels[order]
        ds = tf.data.Dataset.from_tensor_slices((list(paths), labels))
        return ds.map(lambda path, label: (tf.io.read_file(path), label), num_parallel_calls=tf.data.AUTOTUNE)

    def train(self, batch_size: int, *, seed: int, epoch: int):
        import tensorflow as tf

        if self._train_files is not None:
            ds = self._records(self._train_files, seed=seed, epoch=epoch, limit=self._limit_train)
            buffer = min(SHUFFLE_BUFFER, self._limit_train or SHUFFLE_BUFFER)
            ds = ds.shuffle(buffer, seed=int(seed) * 1_000_003 + int(epoch), reshuffle_each_iteration=False)
        else:
            ds = self._items(self._train_items, seed=seed, epoch=epoch, limit=self._limit_train)
        size = self.image_size
        ds = ds.enumerate().map(lambda i, xy: (train_image(xy[0], element_seed(seed, epoch, i), size), xy[1]),
                                num_parallel_calls=tf.data.AUTOTUNE)
        return with_options(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))

    def test(self, batch_size: int):
        import tensorflow as tf

        if self._test_files is not None:
            ds = self._records(self._test_files, limit=self._limit_test)
        else:
            ds = self._items(self._test_items, limit=self._limit_test)
        size = self.image_size
        ds = ds.map(lambda jpeg, label: (eval_image(jpeg, size), label), num_parallel_calls=tf.data.AUTOTUNE)
        return with_options(ds.batch(batch_size).prefetch(tf.data.AUTOTUNE))


def _jpeg_tree(folder: str, classes=None):
    if classes is None:
        classes = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    index = {c: k for k, c in enumerate(classes)}
    paths, labels = [], []
    for c in sorted(index):
        sub = os.path.join(folder, c)
        if not os.path.isdir(sub):
            continue
        for f in sorted(os.listdir(sub)):
            if f.lower().endswith(JPEG_EXTENSIONS):
                paths.append(os.path.join(sub, f))
                labels.append(index[c])
    return classes, (paths, np.asarray(labels, np.int32))


def load_imagenet(data_dir, *, image_size: int = 224, num_classes: Optional[int] = None,
                  label_offset: int = 1) -> ImageNet:
    """ImageNet from ``data_dir`` (TFRecords or JPEG tree; see the module docstring).

    Args:
      data_dir: the folder.
      image_size: side of the square network input (224 for ResNet-50).
      num_classes: classes of a TFRecord set (default 1000); a JPEG tree counts its class folders.
      label_offset: subtracted from ``image/class/label`` of TFRecords (1: labels 1..1000).

    Raises:
      FileNotFoundError: neither layout found; the message says how to get one.
    """
    if not data_dir:
        raise FileNotFoundError(f"ImageNet cannot be downloaded automatically. {HOWTO}")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 8:
        raise ValueError(f"image_size must be an integer >= 8. Received: image_size={image_size!r}")
    train_files = sorted(glob.glob(os.path.join(data_dir, "train-*")))
    test_files = sorted(glob.glob(os.path.join(data_dir, "validation-*")))
    if train_files and test_files:
        return ImageNet(train_files=train_files, test_files=test_files, num_classes=num_classes or 1000,
                        image_size=image_size, label_offset=label_offset,
                        note=f"ImageNet TFRecords in {data_dir} ({len(train_files)} train, "
                             f"{len(test_files)} validation files)")
    train_dir = os.path.join(data_dir, "train")
    test_dir = next((os.path.join(data_dir, d) for d in ("val", "validation")
                     if os.path.isdir(os.path.join(data_dir, d))), None)
    if os.path.isdir(train_dir) and test_dir:
        classes, train_items = _jpeg_tree(train_dir)
        _, test_items = _jpeg_tree(test_dir, classes)
        if not train_items[0] or not test_items[0]:
            raise FileNotFoundError(f"The JPEG tree in {data_dir} has no .JPEG/.jpg images under "
                                    f"train/<class>/ or {os.path.basename(test_dir)}/<class>/. {HOWTO}")
        if num_classes is not None and num_classes != len(classes):
            raise ValueError(f"The JPEG tree in {data_dir} has {len(classes)} class folders, but num_classes="
                             f"{num_classes}. Leave num_classes unset. Received: num_classes={num_classes!r}")
        return ImageNet(train_items=train_items, test_items=test_items, num_classes=len(classes),
                        image_size=image_size, label_offset=0,
                        note=f"ImageNet JPEG tree in {data_dir} ({len(classes)} classes, "
                             f"{len(train_items[0]):,} train, {len(test_items[0]):,} validation images)")
    raise FileNotFoundError(f"No ImageNet in {data_dir}: found neither train-*/validation-* TFRecord files "
                            f"nor train/ and val/ class folders. {HOWTO} Received: data_dir={data_dir!r}")
