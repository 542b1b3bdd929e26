"""Speed of direct multipliers: GMAC/s of mbm23 (model compiled into the kernels) vs mbm7 (table).

Measures, on the CPU, a matrix product and a convolution (forward and both
gradients) with:

* ``mbm23``: direct, the model inlined into approxsim's threaded C loops;
* ``mitchell23``: direct, a cheaper model;
* ``mbm7``: table, on the ``cpu`` backend (the C++ extension) when it is usable,
  else on the reference backend;
* native float32: NumPy's BLAS matmul, and TensorFlow's matmul/conv when TensorFlow
  imports, as the baselines ratios are taken against.

GMAC/s = multiply-accumulates per second / 1e9 (best of ``--repeats``). With
``--gpu`` (and CuPy plus a GPU) the direct CUDA kernels are measured too.

Usage: ``python benchmarks/bench_direct.py [--size 256] [--repeats 3] [--markdown]``
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import time

import numpy as np


def _best(fn, repeats):
    fn()  # warm-up: compiles kernels, builds tables
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def _machine():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=256, help="matmul M = N = K (default 256)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-tf", action="store_true", help="skip the TensorFlow baseline")
    parser.add_argument("--gpu", action="store_true", help="also time the direct CUDA kernels")
    parser.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    args = parser.parse_args(argv)

    from approxsim import multipliers
    from approxsim.backends import backend_status, get_backend
    from approxsim.direct import num_threads
    from approxsim.geometry import conv_geometry

    rng = np.random.default_rng(0)
    s = args.size
    a = rng.standard_normal((s, s)).astype(np.float32)
    b = rng.standard_normal((s, s)).astype(np.float32)
    x = rng.standard_normal((8, 32, 32, 32)).astype(np.float32)
    w = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    geom = conv_geometry(x.shape, w.shape, padding="SAME")
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    mm_macs = s ** 3
    conv_macs = geom.n * geom.oh * geom.ow * geom.cout * geom.kh * geom.kw * geom.cin_per_group

    table_backend = "cpu" if backend_status("cpu")[0] else "reference"
    be = get_backend(table_backend)
    rows = []  # (what, multiplier, where, matmul GMAC/s, conv fwd+grads GMAC/s)

    def conv3(fn):
        return lambda: (fn("conv2d", x, w), fn("conv2d_input_grad", dy, w), fn("conv2d_filter_grad", x, dy))

    for name in ("mbm23", "mitchell23"):
        d = multipliers.get(name).direct
        t_mm = _best(lambda: d.matmul(a, b), args.repeats)
        t_cv = _best(conv3(lambda op, p, q: getattr(d, op)(p, q, geom)), args.repeats)
        rows.append((f"{name} (direct)", f"cpu, {num_threads()} threads", mm_macs / t_mm / 1e9,
                     3 * conv_macs / t_cv / 1e9))
    mbm7 = multipliers.get("mbm7")
    t_mm = _best(lambda: be.matmul(a, b, mbm7), args.repeats)
    t_cv = _best(conv3(lambda op, p, q: getattr(be, op)(p, q, geom, mbm7)), args.repeats)
    rows.append(("mbm7 (table)", f"backend {table_backend}", mm_macs / t_mm / 1e9, 3 * conv_macs / t_cv / 1e9))
    t_np = _best(lambda: a @ b, args.repeats)
    rows.append(("fp32 native", "NumPy BLAS", mm_macs / t_np / 1e9, float("nan")))
    if not args.no_tf:
        try:
            os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
            import tensorflow as tf

            ta, tb, tx, tw, tdy = (tf.constant(v) for v in (a, b, x, w, dy))

            def tf_conv():
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch(tx)
                    tape.watch(tw)
                    y = tf.nn.conv2d(tx, tw, 1, "SAME")
                return [g.numpy() for g in tape.gradient(y, [tx, tw], output_gradients=tdy)] + [y.numpy()]

            t_tf = _best(lambda: tf.linalg.matmul(ta, tb).numpy(), args.repeats)
            t_tfc = _best(tf_conv, args.repeats)
            rows.append(("fp32 native", f"TensorFlow {tf.__version__}", mm_macs / t_tf / 1e9,
                         3 * conv_macs / t_tfc / 1e9))
        except ImportError:
            pass
    if args.gpu:
        try:
            import cupy as cp

            d = multipliers.get("mbm23").direct
            ga, gb = cp.asarray(a), cp.asarray(b)
            gx, gw, gdy = cp.asarray(x), cp.asarray(w), cp.asarray(dy)

            def sync(fn):
                return lambda: (fn(), cp.cuda.Device().synchronize())

            t_mm = _best(sync(lambda: d.cuda_matmul(ga, gb)), args.repeats)
            t_cv = _best(sync(lambda: (d.cuda_conv2d(gx, gw, geom), d.cuda_conv2d_input_grad(gdy, gw, geom),
                                       d.cuda_conv2d_filter_grad(gx, gdy, geom))), args.repeats)
            rows.append(("mbm23 (direct)", "cuda", mm_macs / t_mm / 1e9, 3 * conv_macs / t_cv / 1e9))
        except Exception as e:  # no CuPy or no GPU: say so
            print(f"GPU not measured: {e}")

    ref = rows[2]
    print(f"matmul {s}x{s}x{s} ({mm_macs / 1e6:.1f} M MACs); conv {geom.input_shape} * {geom.filter_shape} SAME, "
          f"forward + input grad + filter grad ({3 * conv_macs / 1e6:.1f} M MACs)")
    header = "| multiplier | where | matmul GMAC/s | conv GMAC/s | vs mbm7 table (matmul, conv) |"
    lines = [header, "|---|---|---|---|---|"]
    for what, where, mm, cv in rows:
        conv = "-" if np.isnan(cv) else f"{cv:.3f}"
        conv_ratio = "-" if np.isnan(cv) else f"{cv / ref[3]:.2f}x"
        lines.append(f"| {what} | {where} | {mm:.3f} | {conv} | {mm / ref[2]:.2f}x, {conv_ratio} |")
    print("\n".join(lines))
    if args.markdown:
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
        print("\n## Direct multipliers\n")
        print(f"Date: {time.strftime('%Y-%m-%d %H:%M %Z')}. Machine: {_machine()}. `uptime`: {load}.\n")
        print(f"`python benchmarks/bench_direct.py --size {s}`: matmul {s}^3, conv 8x32x32x32 * 3x3x32x32 SAME "
              "(forward + both gradients). Best of "
              f"{args.repeats}.\n")
        print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
