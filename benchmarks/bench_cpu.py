"""Speed of the CPU backend against native TensorFlow, in one process.

Measures, each as the median of 5 runs after a warm-up, the time ratio to TF fp32 on as many
threads, and which GEMM method ran (``expanded``, ``linear``, ``lookup``; ``(transposed)`` where
the driver swapped the operands of a few-column GEMM) at which SIMD level:

* approximate GEMM at 512^3 and 1024^3, M = 3, 7, 11 (``mitchell3``; ``mbm7``, ``mitchell7``,
  ``bf16``; ``mbm11``, ``mitchell11``) on 1 and 2 threads, against ``tf.matmul``;
* the ResNet layer: conv2d forward + input gradient + filter gradient, batch 32,
  32x32x64 -> 64 filters, 3x3, SAME, ``mbm7``, against TF's three ops;
* a depthwise 3x3 convolution, batch 32, 56x56x128, forward and both gradients, ``mbm7``,
  against ``tf.nn.depthwise_conv2d`` and its two gradient ops.

Usage::

    python benchmarks/bench_cpu.py [--quick] [--markdown]

Each thread count runs in its own child process (TensorFlow's intra-op pool is fixed per
process), where TF and approxsim take turns at every repetition so that the load of a shared
machine hits both alike. ``APPROXSIM_SIMD=avx2`` measures the AVX2 path on an AVX-512 host.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

REPEATS = 5


def paired_medians(fns, repeats=REPEATS):
    """Median times of several functions, run in turns so that load changes hit them alike."""
    for fn in fns:
        fn()  # warm-up
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return [statistics.median(ts) for ts in times]


def measure(threads, sizes, mults, conv):
    """TF and approxsim timings in this process, both on ``threads`` threads, taking turns; with the
    GEMM methods that ran."""
    os.environ["APPROXSIM_NUM_THREADS"] = str(threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    import approxsim
    from approxsim import _cpu

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    out = {}

    def with_methods(fns):
        """Runs each approxsim call once, noting its method, then returns a function of them all."""
        methods = []
        for fn in fns:
            fn()
            methods.append(_cpu.last_method())
        return (lambda: [fn() for fn in fns]), " / ".join(dict.fromkeys(methods))

    for n in sizes:
        a = rng.standard_normal((n, n)).astype(np.float32)
        b = rng.standard_normal((n, n)).astype(np.float32)
        ta, tb = tf.constant(a), tf.constant(b)
        for m in mults:
            ax, method = with_methods([lambda: approxsim.matmul(a, b, multiplier=m, backend="cpu")])
            tf_t, ax_t = paired_medians([lambda: tf.matmul(ta, tb).numpy(), ax])
            out[f"GEMM {n}^3 {m}"] = dict(macs=n ** 3, ax=ax_t, tf=tf_t, method=method)
    if conv:
        x = rng.standard_normal((32, 32, 32, 64)).astype(np.float32)
        w = (rng.standard_normal((3, 3, 64, 64)) * 0.05).astype(np.float32)
        dy = rng.standard_normal((32, 32, 32, 64)).astype(np.float32)
        tx, tw, tdy = tf.constant(x), tf.constant(w), tf.constant(dy)
        kw = dict(strides=1, padding="SAME", multiplier="mbm7", backend="cpu")

        def tf_trio():
            tf.nn.conv2d(tx, tw, 1, "SAME").numpy()
            tf.compat.v1.nn.conv2d_backprop_input(tx.shape, tw, tdy, [1, 1, 1, 1], "SAME").numpy()
            tf.compat.v1.nn.conv2d_backprop_filter(tx, tw.shape, tdy, [1, 1, 1, 1], "SAME").numpy()

        ax, method = with_methods([lambda: approxsim.conv2d(x, w, **kw),
                                   lambda: approxsim.conv2d_input_grad(dy, w, x.shape, **kw),
                                   lambda: approxsim.conv2d_filter_grad(x, dy, w.shape, **kw)])
        tf_t, ax_t = paired_medians([tf_trio, ax])
        out["conv trio (fwd+dx+dw) 32x32x64->64 3x3, mbm7"] = dict(macs=3 * 32 * 32 * 32 * 9 * 64 * 64, ax=ax_t,
                                                                    tf=tf_t, method=method)

        x = rng.standard_normal((32, 56, 56, 128)).astype(np.float32)
        w = (rng.standard_normal((3, 3, 128, 1)) * 0.3).astype(np.float32)
        dy = rng.standard_normal((32, 56, 56, 128)).astype(np.float32)
        tx, tw, tdy = tf.constant(x), tf.constant(w), tf.constant(dy)
        kw = dict(strides=1, padding="SAME", groups=128, multiplier="mbm7", backend="cpu")
        wg = w.reshape(3, 3, 1, 128)  # approxsim's grouped layout: (kh, kw, cin / groups, cout)

        def tf_depthwise():
            tf.nn.depthwise_conv2d(tx, tw, [1, 1, 1, 1], "SAME").numpy()
            tf.nn.depthwise_conv2d_backprop_input(tx.shape, tw, tdy, [1, 1, 1, 1], "SAME").numpy()
            tf.nn.depthwise_conv2d_backprop_filter(tx, tw.shape, tdy, [1, 1, 1, 1], "SAME").numpy()

        ax, method = with_methods([lambda: approxsim.conv2d(x, wg, **kw),
                                   lambda: approxsim.conv2d_input_grad(dy, wg, x.shape, **kw),
                                   lambda: approxsim.conv2d_filter_grad(x, dy, wg.shape, **kw)])
        tf_t, ax_t = paired_medians([tf_depthwise, ax])
        out["depthwise 3x3 (fwd+dx+dw) 56x56x128, mbm7"] = dict(macs=3 * 32 * 56 * 56 * 9 * 128, ax=ax_t,
                                                                 tf=tf_t, method=method)
    return out


def machine():
    model = platform.processor() or platform.machine()
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return f"{model}, {os.cpu_count()} cores"


def load():
    try:
        return "load average " + ", ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "load unknown"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="M=7 only, 1024^3 and the conv trio, 2 threads")
    parser.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # the measurements of one thread count, in a fresh process
        print(json.dumps(measure(**json.loads(args.child))))
        return 0

    sizes = [1024] if args.quick else [512, 1024]
    mults = ["mbm7", "mbm11"] if args.quick else ["mitchell3", "mbm7", "mitchell7", "bf16", "mbm11", "mitchell11"]
    thread_counts = [2] if args.quick else [1, 2]

    def child(spec):
        env = dict(os.environ, APPROXSIM_NUM_THREADS=str(spec.get("threads", 1)))
        res = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True,
                             text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(res.stderr)
        return json.loads(res.stdout.strip().splitlines()[-1])

    from approxsim import _cpu
    from approxsim.backends import cpu

    cpu.check_settings()  # $APPROXSIM_SIMD here as in the children, so that the header names the level that ran
    load_before = load()
    rows = []
    for t in thread_counts:
        res = child(dict(threads=t, sizes=sizes, mults=mults, conv=t == max(thread_counts)))
        rows += [(name, t, r) for name, r in res.items()]
    load_after = load()

    header = (f"{time.strftime('%Y-%m-%d %H:%M')}, {machine()}, SIMD {_cpu.simd_level()}; "
              f"{load_before} before, {load_after} after; median of {REPEATS}")
    lines = ["| case | threads | method | GMAC/s | approxsim ms | TF fp32 ms | ratio (approxsim / TF) |",
             "|---|---|---|---|---|---|---|"]
    for name, t, r in rows:
        lines.append(f"| {name} | {t} | {r['method']} | {r['macs'] / r['ax'] / 1e9:.2f} | {r['ax'] * 1e3:.1f} | "
                     f"{r['tf'] * 1e3:.1f} | {r['ax'] / r['tf']:.2f}x |")
    print(header + ("\n" if args.markdown else ""))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
