"""LeNet-5 from AMConv2D/AMDense with mbm7 learns real MNIST digits in one epoch."""

import gzip
import os

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import approxsim  # noqa: E402
from approxsim.layers import AMConv2D, AMDense  # noqa: E402


def load_mnist_test_set(folder):
    """The 10,000 MNIST test digits from their IDX files: images (N, 28, 28, 1) in [0, 1], labels."""
    with gzip.open(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
    with gzip.open(os.path.join(folder, "t10k-labels-idx1-ubyte.gz")) as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images.astype(np.float32) / 255.0, labels.astype(np.int32)


def lenet5(multiplier):
    seeds = iter(range(1, 10))

    def init():
        return keras.initializers.GlorotUniform(seed=next(seeds))

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        AMConv2D(6, 5, padding="same", activation="relu", kernel_initializer=init(), multiplier=multiplier),
        keras.layers.MaxPooling2D(),
        AMConv2D(16, 5, activation="relu", kernel_initializer=init(), multiplier=multiplier),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        AMDense(120, activation="relu", kernel_initializer=init(), multiplier=multiplier),
        AMDense(84, activation="relu", kernel_initializer=init(), multiplier=multiplier),
        AMDense(10, kernel_initializer=init(), multiplier=multiplier),
    ])


def test_lenet5_mbm7_one_epoch_on_8000_digits(shared_dir):
    if "cpu" not in approxsim.available_backends() and "cuda" not in approxsim.available_backends():
        pytest.skip("needs the cpu or cuda backend (the NumPy reference is far too slow for training)")
    folder = os.path.join(shared_dir, "data", "mnist")
    if not os.path.isfile(os.path.join(folder, "t10k-images-idx3-ubyte.gz")):
        pytest.skip(f"no MNIST IDX files in {folder}")
    x, y = load_mnist_test_set(folder)
    order = np.random.default_rng(0).permutation(8000)  # fixed split: 8,000 train, the last 2,000 held out
    model = lenet5("mbm7")
    model.compile(optimizer=keras.optimizers.Adam(2e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x[:8000][order], y[:8000][order], batch_size=16, epochs=1, shuffle=False, verbose=0)
    _, accuracy = model.evaluate(x[8000:], y[8000:], verbose=0)
    assert accuracy >= 0.95, accuracy
