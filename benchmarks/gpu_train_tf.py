"""End-to-end training speed on a TensorFlow GPU: stock Keras against approxsim (CUDA backend).

For a user with TensorFlow, a GPU, CuPy and NVRTC (``pip install 'approxsim[cuda12]' tensorflow``):

    TF_FORCE_GPU_ALLOW_GROWTH=true python benchmarks/gpu_train_tf.py            # LeNet-5 and a small ResNet
    TF_FORCE_GPU_ALLOW_GROWTH=true python benchmarks/gpu_train_tf.py --quick    # a few steps, to check

It trains the same model (same initial weights, synthetic data of MNIST / CIFAR-10 shapes) with
stock ``Dense``/``Conv2D`` layers and with approxsim's ``AMDense``/``AMConv2D`` (``fp32`` and
``mbm7``, backend ``cuda``), and prints a Markdown table of milliseconds per training step and
the ratio to stock, to paste into BENCHMARKS.md with the date and the GPU. ApproxTrain reports
about 8x slower than native TF for its approximate training; this is the number to compare.

``TF_FORCE_GPU_ALLOW_GROWTH=true`` keeps TensorFlow from reserving all GPU memory, so that CuPy
can allocate the tables (activations are allocated by TensorFlow).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")

import numpy as np  # noqa: E402


def lenet(layers, mult):
    import keras

    conv, dense = layers
    kw = {} if mult is None else {"multiplier": mult, "backend": "cuda"}
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        conv(6, 5, padding="same", activation="relu", **kw),
        keras.layers.MaxPooling2D(),
        conv(16, 5, activation="relu", **kw),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        dense(120, activation="relu", **kw),
        dense(84, activation="relu", **kw),
        dense(10, **kw),
    ])


def small_resnet(layers, mult):
    import keras

    conv, dense = layers
    kw = {} if mult is None else {"multiplier": mult, "backend": "cuda"}
    inp = keras.Input((32, 32, 3))
    x = conv(32, 3, padding="same", activation="relu", **kw)(inp)
    for filters, stride in ((32, 1), (64, 2), (128, 2)):
        y = conv(filters, 3, strides=stride, padding="same", activation="relu", **kw)(x)
        y = conv(filters, 3, padding="same", **kw)(y)
        if stride != 1 or x.shape[-1] != filters:
            x = conv(filters, 1, strides=stride, **kw)(x)
        x = keras.layers.Activation("relu")(keras.layers.Add()([x, y]))
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, dense(10, **kw)(x))


def time_training(build, layers, mult, data, batch, steps, weights):
    import keras
    import tensorflow as tf

    model = build(layers, mult)
    if weights is not None:
        model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), jit_compile=False)
    x, y = data
    ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True).repeat()
    it = iter(ds)
    for _ in range(3):  # warm-up: tracing, kernel compilation, table upload
        model.train_on_batch(*next(it))
    start = time.perf_counter()
    for _ in range(steps):
        loss = model.train_on_batch(*next(it))
    float(np.asarray(loss).ravel()[0])  # waits for the last step
    return (time.perf_counter() - start) / steps * 1e3, model.get_weights()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args(argv)

    import keras
    import tensorflow as tf

    import approxsim
    from approxsim.backends import backend_status
    from approxsim.layers import AMConv2D, AMDense

    gpus = tf.config.list_physical_devices("GPU")
    ok, reason = backend_status("cuda")
    if not gpus or not ok:
        print(f"Needs a TensorFlow GPU and approxsim's CUDA backend. GPUs seen by TF: {gpus}; cuda backend: {reason}",
              file=sys.stderr)
        return 1
    steps = args.steps or (5 if args.quick else 50)
    print(f"# approxsim {approxsim.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, {reason}")
    rng = np.random.default_rng(0)
    cases = [("LeNet-5 (MNIST shapes)", lenet, 128, (28, 28, 1)),
             ("ResNet-8 (CIFAR-10 shapes)", small_resnet, 128, (32, 32, 3))]
    print("\n| model | batch | stock ms/step | approxsim fp32 ms/step | approxsim mbm7 ms/step | "
          "ratio fp32 | ratio mbm7 |\n|---|---|---|---|---|---|---|")
    for name, build, batch, shape in cases:
        data = (rng.standard_normal((batch * 8,) + shape).astype(np.float32),
                rng.integers(0, 10, batch * 8).astype(np.int32))
        stock, weights = time_training(build, (keras.layers.Conv2D, keras.layers.Dense), None, data, batch,
                                       steps, None)
        t32, _ = time_training(build, (AMConv2D, AMDense), "fp32", data, batch, steps, weights)
        t7, _ = time_training(build, (AMConv2D, AMDense), "mbm7", data, batch, steps, weights)
        print(f"| {name} | {batch} | {stock:.2f} | {t32:.2f} | {t7:.2f} | {t32 / stock:.2f}x | {t7 / stock:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
