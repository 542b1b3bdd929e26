"""Keras training-step time: stock Keras against approxsim layers with fp32, mbm7 and integer multipliers.

Models: LeNet-5 on 28x28x1 and an MLP 784-300-100-10, batch 128, Adam. For each,
the median time of one ``train_on_batch`` step, each way, and for the approxsim
runs the split between the kernels (time inside the backend's matmul/conv
calls, measured by wrapping them) and everything else (TensorFlow, Keras,
``tf.numpy_function`` transfers, the optimizer).

Ways (``--multipliers``, stock Keras always runs as the baseline): ``fp32``, ``mbm7``,
``mbm7:exact`` (``backward="exact"``), and the integer multipliers ``mul8u_2AC`` (EvoApproxLib,
registered from ``../shared/reference/evoapprox/mul8u_2AC.c``; where the file is absent the built-in
``mitchell8u`` stands in, and the output says so) and ``int8``: quantization-aware training
(quantized forward through the integer multiplier, straight-through gradients). Any other
registered multiplier name works too (``name:exact`` for exact gradients).

The issue's target: the LeNet-5 QAT step with ``mul8u_2AC`` <= 3x the stock fp32 Keras step on 2
CPU threads; the output says whether it is met. ``--threads`` sets ``APPROXSIM_NUM_THREADS`` and
TF's intra-op threads alike (default: leave both as they are); ``--inter-op`` sets TF's inter-op
threads, how many independent ops TF runs side by side (default: TF's own, one per CPU): with 1,
every op (stock and approxsim alike) runs alone on the ``--threads`` threads, so that a 2-thread
step uses 2 cores and no more (with TF's default, two ops of 2 threads each can share 2 cores).
Unless ``APPROXSIM_CACHE`` is set,
the multiplier registry and tables go to a temporary folder, removed at exit.

    python benchmarks/bench_keras.py [--steps 30] [--backend cpu] [--threads 2] [--inter-op 1] [--markdown]
                                     [--models lenet5,mlp] [--multipliers fp32,mbm7,mbm7:exact,mul8u_2AC,int8]
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

EVO_FILE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "evoapprox" / "mul8u_2AC.c"
EVO_NAME = "mul8u_2AC"
FALLBACK = "mitchell8u"
TARGET = 3.0  # LeNet-5 QAT step with mul8u_2AC <= 3x the stock fp32 Keras step (2 CPU threads)
DEFAULT_WAYS = "fp32,mbm7,mbm7:exact,mul8u_2AC,int8"


class KernelTimer:
    """Wraps the four methods of the bound kernels and records when they run.

    The ops call ``backend.bind(multiplier).<method>`` (:class:`approxsim.backends.base.Kernels`,
    float and integer kernels alike), not the backend's own ``matmul``/``conv2d``, so the class's
    methods are wrapped while the timer is active. ``seconds`` is the wall time during which at
    least one kernel ran (TF runs independent ``numpy_function`` calls, such as the two
    gradients, concurrently). CUDA tensors that go through DLPack are not counted.
    """

    METHODS = ("matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad")

    def __init__(self, backend):
        from approxsim.backends.base import Kernels

        self.backend = backend
        self.kernels_class = Kernels
        self.intervals = []
        self._lock = threading.Lock()
        self._originals = {}

    def __enter__(self):
        for name in self.METHODS:
            original = self.kernels_class.__dict__[name]
            self._originals[name] = original

            def timed(*args, _f=original, **kwargs):
                t0 = time.perf_counter()
                try:
                    return _f(*args, **kwargs)
                finally:
                    with self._lock:
                        self.intervals.append((t0, time.perf_counter()))

            setattr(self.kernels_class, name, timed)
        return self

    def __exit__(self, *exc):
        for name, original in self._originals.items():
            setattr(self.kernels_class, name, original)  # back to the class's method

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


def use_private_cache():
    """Points ``APPROXSIM_CACHE`` at a temporary folder (removed at exit) unless it is set; returns
    ``(folder, temporary)``. Call before importing approxsim."""
    if os.environ.get("APPROXSIM_CACHE"):
        return os.environ["APPROXSIM_CACHE"], False
    tmp = tempfile.mkdtemp(prefix="approxsim-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.environ["APPROXSIM_CACHE"] = tmp
    return tmp, True


def evo_multiplier(path=EVO_FILE, function=EVO_NAME, fallback=FALLBACK):
    """``(name, note)``: the EvoApproxLib circuit, registered if needed, else the built-in ``fallback``."""
    import approxsim
    from approxsim import multipliers

    try:
        multipliers.get(function)
        return function, f"{function} (already registered)"
    except approxsim.UnknownMultiplierError:
        pass
    if not Path(path).is_file():
        return fallback, f"{fallback} (FALLBACK: {path} is absent, so {function} was not measured)"
    multipliers.register_c(path, function=function, bits=8, signed=False)
    return function, f"{function} (EvoApproxLib, registered from {path})"


def parse_ways(spec, evo_file):
    """``[(label, multiplier, backward)]`` of ``--multipliers`` (stock Keras first), and notes."""
    from approxsim import multipliers

    ways, notes = [("stock Keras", None, None)], []
    for token in (t.strip() for t in spec.split(",")):
        if not token:
            continue
        name, _, backward = token.partition(":")
        backward = backward or "approx"
        if name == EVO_NAME:
            name, note = evo_multiplier(evo_file)
            notes.append(note)
        mult = multipliers.get(name)  # an unknown name stops here, with the registry's suggestions
        label = f"approxsim {name}"
        if mult.is_integer:
            label += " QAT" + (f", backward={backward}" if backward not in ("approx", "ste") else "")
        elif backward != "approx":
            label += f", backward={backward}"
        if token.partition(":")[0] == EVO_NAME and name != EVO_NAME:
            label += f" (stand-in for {EVO_NAME})"
        ways.append((label, name, backward))
    return ways, notes


def positive_int(text):
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be positive. Received: {text}")
    return value


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--backend", default=None, help="approxsim backend (default: auto)")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="APPROXSIM_NUM_THREADS and TF intra-op threads (default: as set; the target is for 2)")
    parser.add_argument("--inter-op", type=positive_int, default=None,
                        help="TF inter-op threads: independent ops run side by side (default: TF's own)")
    parser.add_argument("--models", default="lenet5,mlp", help="comma-separated: lenet5, mlp (default both)")
    parser.add_argument("--multipliers", default=DEFAULT_WAYS,
                        help=f"comma-separated approxsim ways, NAME or NAME:exact (default {DEFAULT_WAYS}); "
                             "stock Keras always runs")
    parser.add_argument("--evo-file", type=Path, default=EVO_FILE,
                        help=f"the EvoApproxLib source of {EVO_NAME} (absent: {FALLBACK} instead)")
    parser.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    args = parser.parse_args(argv)
    all_models = {"lenet5": ("LeNet-5", lenet5, (28, 28, 1)), "mlp": ("MLP 784-300-100-10", mlp, (784,))}
    chosen = [m.strip().lower() for m in args.models.split(",") if m.strip()]
    if not chosen or any(m not in all_models for m in chosen):
        parser.error(f"--models takes a comma-separated list of {', '.join(all_models)}. Received: {args.models!r}")
    if args.threads is not None:
        os.environ["APPROXSIM_NUM_THREADS"] = str(args.threads)
    cache, private = use_private_cache()

    import tensorflow as tf

    import approxsim

    if args.threads is not None:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    if args.inter_op is not None:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op)
    be = approxsim.get_backend(args.backend)
    ways, notes = parse_ways(args.multipliers, args.evo_file)
    ax_threads = os.environ.get("APPROXSIM_NUM_THREADS") or f"default ({os.cpu_count()} CPUs)"
    tf_threads = tf.config.threading.get_intra_op_parallelism_threads() or f"default ({os.cpu_count()} CPUs)"
    tf_inter = tf.config.threading.get_inter_op_parallelism_threads() or f"default ({os.cpu_count()} CPUs)"
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    rng = np.random.default_rng(0)
    rows = []
    for model_name, build, shape in (all_models[m] for m in chosen):
        x = rng.random((args.batch,) + shape, dtype=np.float32)
        y = rng.integers(0, 10, args.batch).astype(np.int32)
        models = {label: build(make_factory(mult, be.name, backward)) for label, mult, backward in ways}
        results = time_interleaved(models, x, y, args.steps, be)
        base = results["stock Keras"][0]
        for label, (step, kern) in results.items():
            rows.append((model_name, label, step * 1e3, step / base, kern * 1e3, (step - kern) * 1e3))

    targets = []
    for model_name, label, step, ratio, _, _ in rows:
        if model_name != "LeNet-5" or " QAT" not in label:
            continue
        if label == f"approxsim {EVO_NAME} QAT":
            role = "the issue's target"
        elif f"stand-in for {EVO_NAME}" in label:
            role = f"stand-in: {EVO_NAME} not measured"
        else:
            role = "same bar, for information"
        targets.append(f"{label.removeprefix('approxsim ')}: {ratio:.2f}x stock, "
                       f"{'met' if ratio <= TARGET else 'NOT met'} ({role})")

    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    header = ("| model | way | step ms | x stock | kernel ms | overhead ms |\n"
              "|---|---|---:|---:|---:|---:|")
    table = "\n".join(f"| {m} | {w} | {s:.1f} | {r:.2f} | {k:.1f} | {o:.1f} |" if w != "stock Keras" else
                      f"| {m} | {w} | {s:.1f} | 1.00 | - | - |" for m, w, s, r, k, o in rows)
    threads = f"threads: approxsim {ax_threads}, TF intra-op {tf_threads}, inter-op {tf_inter} (the target is for 2)"
    mult_notes = f"; multipliers: {'; '.join(notes)}" if notes else ""
    cache_note = f"cache {'temporary ' if private else ''}{cache}"
    if args.markdown:
        print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}; machine: {machine()}; backend: {be.name}; "
              f"TF {tf.__version__}; batch {args.batch}, median of {args.steps} steps.\n"
              f"{threads}{mult_notes}; {cache_note}\n"
              f"Load (`uptime`) before: `{load_before}`; after: `{load}`\n"
              "kernel ms: wall time inside the backend's matmul/conv calls (overlapping calls counted once); "
              "overhead ms: the rest of the step (TF, Keras, numpy_function hand-over, exact fp32 ops, "
              "optimizer).\n")
    print(header)
    print(table)
    if targets:
        print(f"\nTarget (LeNet-5 QAT step with {EVO_NAME} <= {TARGET:g}x stock "
              "fp32 Keras, 2 CPU threads):")
        print("\n".join(f"{'- ' if args.markdown else '  '}{t}" for t in targets))
    if not args.markdown:
        print(f"\nbackend {be.name}; {machine()}; {threads}{mult_notes}; {cache_note}; "
              f"before: {load_before}; after: {load}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
