"""Keras training-step time: stock Keras against approxsim layers with fp32 and with mbm7.

Models: LeNet-5 on 28x28x1 and an MLP 784-300-100-10, batch 128, Adam. For each,
the median time of one ``train_on_batch`` step, three ways, and for the approxsim
runs the split between the kernels (time inside the backend's matmul/conv
calls, measured by wrapping them) and everything else (TensorFlow, Keras,
``tf.numpy_function`` transfers, the optimizer).

    python benchmarks/bench_keras.py [--steps 30] [--backend cpu] [--markdown]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


class KernelTimer:
    """Wraps a backend's four methods and records when they run.

    ``seconds`` is the wall time during which at least one kernel ran (TF runs
    independent ``numpy_function`` calls, such as the two gradients, concurrently).
    """

    METHODS = ("matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad")

    def __init__(self, backend):
        self.backend = backend
        self.intervals = []
        self._lock = threading.Lock()

    def __enter__(self):
        for name in self.METHODS:
            original = getattr(self.backend, name)

            def timed(*args, _f=original, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    with self._lock:
                        self.intervals.append((t0, time.perf_counter()))

            setattr(self.backend, name, timed)
        return self

    def __exit__(self, *exc):
        for name in self.METHODS:
            delattr(self.backend, name)  # back to the class's method

    @property
    def seconds(self):
        total, end = 0.0, float("-inf")
        for t0, t1 in sorted(self.intervals):
            if t1 > end:
                total += t1 - max(t0, end)
                end = t1
        return total


def lenet5(factory):
    import keras

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        factory("Conv2D", 6, 5, padding="same", activation="relu"),
        keras.layers.MaxPooling2D(),
        factory("Conv2D", 16, 5, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        factory("Dense", 120, activation="relu"),
        factory("Dense", 84, activation="relu"),
        factory("Dense", 10),
    ])


def mlp(factory):
    import keras

    return keras.Sequential([keras.Input((784,)), factory("Dense", 300, activation="relu"),
                             factory("Dense", 100, activation="relu"), factory("Dense", 10)])


def make_factory(multiplier, backend, backward="approx"):
    import keras

    from approxsim.layers import AMConv2D, AMDense

    def factory(kind, *args, **kwargs):
        if multiplier is None:
            return getattr(keras.layers, kind)(*args, **kwargs)
        cls = {"Conv2D": AMConv2D, "Dense": AMDense}[kind]
        return cls(*args, multiplier=multiplier, backend=backend, backward=backward, **kwargs)

    return factory


def time_interleaved(models, x, y, steps, backend_obj):
    """Median step and kernel seconds of each model, the models taking turns (fair under varying load)."""
    import keras

    for model in models.values():
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(3):  # trace and warm up
            model.train_on_batch(x, y)
    times = {label: [] for label in models}
    kernel = {label: [] for label in models}
    for _ in range(steps):
        for label, model in models.items():
            with KernelTimer(backend_obj) as timer:
                t0 = time.perf_counter()
                model.train_on_batch(x, y)
                times[label].append(time.perf_counter() - t0)
            kernel[label].append(timer.seconds)
    return {label: (statistics.median(times[label]), statistics.median(kernel[label])) for label in models}


def machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--backend", default=None, help="approxsim backend (default: auto)")
    parser.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    args = parser.parse_args(argv)

    import tensorflow as tf

    import approxsim

    be = approxsim.get_backend(args.backend)
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rng = np.random.default_rng(0)
    rows = []
    for model_name, build, shape in (("LeNet-5", lenet5, (28, 28, 1)), ("MLP 784-300-100-10", mlp, (784,))):
        x = rng.random((args.batch,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, args.batch).astype(np.int32)
        ways = (("stock Keras", None, None), ("approxsim fp32", "fp32", "approx"),
                ("approxsim mbm7", "mbm7", "approx"), ("approxsim mbm7, backward=exact", "mbm7", "exact"))
        models = {label: build(make_factory(mult, be.name, backward)) for label, mult, backward in ways}
        results = time_interleaved(models, x, y, args.steps, be)
        base = results["stock Keras"][0]
        for label, (step, kern) in results.items():
            rows.append((model_name, label, step * 1e3, step / base, kern * 1e3, (step - kern) * 1e3))

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    header = ("| model | way | step ms | x stock | kernel ms | overhead ms |\n"
              "|---|---|---:|---:|---:|---:|")
    table = "\n".join(f"| {m} | {w} | {s:.1f} | {r:.2f} | {k:.1f} | {o:.1f} |" if w != "stock Keras" else
                      f"| {m} | {w} | {s:.1f} | 1.00 | - | - |" for m, w, s, r, k, o in rows)
    if args.markdown:
        print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {machine()}; backend: {be.name}; "
              f"TF {tf.__version__}; batch {args.batch}, median of {args.steps} steps.\n"
              f"Load (`uptime`) before: `{load_before}`; after: `{load}`\n"
              "kernel ms: wall time inside the backend's matmul/conv calls (overlapping calls counted once); "
              "overhead ms: the rest of the step (TF, Keras, numpy_function hand-over, exact fp32 ops, "
              "optimizer).\n")
    print(header)
    print(table)
    if not args.markdown:
        print(f"\nbackend {be.name}; {machine()}; before: {load_before}; after: {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
