"""Speed of integer multipliers on the CPU backend against native TensorFlow fp32, in one process.

Cases, each on Gaussian-quantized operands (codes from a normal distribution around the middle of
the format's range, sigma = range / 8, rounded and clipped, for activations and weights alike):

* GEMM ``size x size x size`` (default 1024^3), ``approxsim.matmul`` against ``tf.linalg.matmul``
  fp32 of the same shape (and NumPy float32 ``@`` for reference);
* a ResNet-like conv layer, forward only: batch 32, 32x32x64 input, 3x3x64 -> 64 filters, SAME
  (``--size`` scales the batch: 32 * size / 1024, at least 1), ``approxsim.conv2d`` against
  ``tf.nn.conv2d`` fp32.

Multipliers: ``mul8u_2AC`` from EvoApproxLib (``../shared/reference/evoapprox/mul8u_2AC.c``,
registered with ``approxsim.multipliers.register_c``; where the file is absent the built-in
unsigned circuit ``mitchell8u`` stands in, and the output says so) and the exact ``int8``.

Rows: the default (what approxsim chooses by itself: method and SIMD level) and then every CPU
method (``exact`` for the exact int8, ``expanded``, ``lookup``) at every SIMD level this host supports. Each row is timed in turns
with TF fp32 (so that the load of a shared machine hits both alike), after a warm-up; the table
gives GMAC/s, best and median milliseconds, TF's median, and the ratio of medians approxsim / TF.
The issue's target: integer GEMM <= 2x the TF fp32 time; each row says whether it is met (conv rows
are held to the same bar, for information).

Usage::

    python benchmarks/bench_int.py [--size 1024] [--repeats 5] [--threads 2] [--quick] [--gemm-only]
                                    [--evo-file PATH] [--markdown]

``--threads`` sets ``APPROXSIM_NUM_THREADS``, TF's intra-op threads and the BLAS threads of NumPy
alike (before any of them is imported). Unless ``APPROXSIM_CACHE`` is set, the multiplier registry
and tables go to a temporary folder, removed at exit, so that the user's registry is left alone.
"""

from __future__ import annotations

import argparse
import atexit
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EVO_FILE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "evoapprox" / "mul8u_2AC.c"
FALLBACK = "mitchell8u"
TARGET = 2.0  # integer GEMM <= 2x TF fp32


def paired_times(fns, repeats):
    """Times of several functions (a list per function), run in turns after a warm-up each."""
    for fn in fns:
        fn()
    times = [[] for _ in fns]
    for _ in range(repeats):
        for fn, ts in zip(fns, times):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
    return times


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


def use_private_cache():
    """Points ``APPROXSIM_CACHE`` at a temporary folder (removed at exit) unless it is set; returns the
    folder in use. Call before importing approxsim."""
    if os.environ.get("APPROXSIM_CACHE"):
        return os.environ["APPROXSIM_CACHE"], False
    tmp = tempfile.mkdtemp(prefix="approxsim-bench-")
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    os.environ["APPROXSIM_CACHE"] = tmp
    return tmp, True


def evo_multiplier(path=EVO_FILE, function="mul8u_2AC", fallback=FALLBACK):
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


def gaussian_codes(rng, fmt, shape):
    """Codes as quantized data looks: normal around the middle of the range, sigma = range / 8, clipped."""
    import numpy as np

    mid = (fmt.lo + fmt.hi) / 2
    return np.clip(np.round(rng.normal(mid, (fmt.hi - fmt.lo) / 8, shape)), fmt.lo, fmt.hi).astype(np.int32)


def exact_products(mult):
    """Whether the table holds the exact products of the codes (what the ``exact`` kernels take)."""
    import numpy as np

    fmt = mult.format
    codes = np.arange(fmt.lo, fmt.hi + 1)
    p = fmt.patterns(codes)
    return np.array_equal(np.asarray(mult.table)[np.ix_(p, p)], np.outer(codes, codes))


def variants(quick, exact):
    """``(method, simd)`` of each row: ``(None, None)`` the default, then each method at each level
    (``exact`` only for a table of exact products)."""
    from approxsim.backends import cpu

    rows = [(None, None)]
    if not quick:
        methods = ("exact", "expanded", "lookup") if exact else ("expanded", "lookup")
        rows += [(m, s) for m in methods for s in cpu.supported_simd()]
    return rows


def run_variant(method, simd, fn):
    """``fn`` under a forced method/SIMD level (``None``: approxsim's own choice), restoring the settings.

    The level goes through ``$APPROXSIM_SIMD``: every op re-applies that variable
    (``get_backend`` -> ``cpu.check_settings``), which would undo a bare ``_cpu.set_simd_level``.
    """
    from approxsim import _cpu
    from approxsim.backends import cpu

    saved = os.environ.get("APPROXSIM_SIMD")
    if simd is not None:
        os.environ["APPROXSIM_SIMD"] = simd
    if method is not None:
        _cpu.force_method(method)
    try:
        cpu.check_settings()
        return fn()
    finally:
        _cpu.force_method("auto")
        if saved is None:
            os.environ.pop("APPROXSIM_SIMD", None)
        else:
            os.environ["APPROXSIM_SIMD"] = saved
        cpu.check_settings()


def measure(args, mults):
    import numpy as np
    import tensorflow as tf

    import approxsim
    from approxsim import _cpu, multipliers

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    rng = np.random.default_rng(0)
    n = args.size
    batch = max(1, 32 * n // 1024)
    cases = []  # (case, macs, approxsim fn(mult), tf fn)

    fa = rng.standard_normal((n, n)).astype(np.float32)
    fb = rng.standard_normal((n, n)).astype(np.float32)
    ta, tb = tf.constant(fa), tf.constant(fb)
    tf_gemm = lambda: tf.linalg.matmul(ta, tb).numpy()  # noqa: E731
    np_gemm = lambda: fa @ fb  # noqa: E731
    cases.append((f"GEMM {n}^3", n ** 3, tf_gemm,
                  lambda m, a, b: approxsim.matmul(a, b, multiplier=m, backend="cpu"),
                  lambda fmt: (gaussian_codes(rng, fmt, (n, n)), gaussian_codes(rng, fmt, (n, n)))))
    if not args.gemm_only:
        fx = rng.standard_normal((batch, 32, 32, 64)).astype(np.float32)
        fw = (rng.standard_normal((3, 3, 64, 64)) * 0.05).astype(np.float32)
        tx, tw = tf.constant(fx), tf.constant(fw)
        cases.append((f"conv fwd {batch}x32x32x64 3x3x64x64 SAME", batch * 32 * 32 * 9 * 64 * 64,
                      lambda: tf.nn.conv2d(tx, tw, 1, "SAME").numpy(),
                      lambda m, x, w: approxsim.conv2d(x, w, strides=1, padding="SAME", multiplier=m, backend="cpu"),
                      lambda fmt: (gaussian_codes(rng, fmt, (batch, 32, 32, 64)),
                                   gaussian_codes(rng, fmt, (3, 3, 64, 64)))))

    refs = {}
    tf_t, np_t = paired_times([tf_gemm, np_gemm], args.repeats)
    refs["TF fp32 tf.linalg.matmul"] = (n ** 3, tf_t)
    refs["NumPy float32 matmul"] = (n ** 3, np_t)

    rows = []
    for name in mults:
        mult = multipliers.get(name)
        for case, macs, tf_fn, ax_fn, make in cases:
            a, b = make(mult.format)
            for method, simd in variants(args.quick, exact_products(mult)):
                def fn(mult=mult, a=a, b=b, ax_fn=ax_fn):
                    return ax_fn(mult, a, b)

                def timed(method=method, simd=simd, fn=fn):
                    # the warm-up call of paired_times notes the method and level that ran
                    def call():
                        out = fn()
                        ran.append((_cpu.last_method(), _cpu.simd_level()))
                        return out

                    ran = []
                    return paired_times([tf_fn, call], args.repeats), ran[0]

                (tf_t, ax_t), (ran_method, ran_simd) = run_variant(method, simd, timed)
                label = "default (auto)" if method is None else f"forced {method} @ {simd}"
                rows.append(dict(case=case, mult=name, variant=label, method=ran_method, simd=ran_simd, macs=macs,
                                 best=min(ax_t), median=statistics.median(ax_t), tf=statistics.median(tf_t),
                                 tf_best=min(tf_t)))
                if case.startswith("conv"):
                    refs.setdefault(f"TF fp32 tf.nn.conv2d, {case}", (macs, tf_t))
    return rows, refs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1024, help="GEMM size n (n x n x n); default 1024")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per row after a warm-up; default 5")
    parser.add_argument("--threads", type=int, default=2,
                        help="threads of approxsim, TF (intra-op) and NumPy's BLAS alike; default 2")
    parser.add_argument("--quick", action="store_true", help="the default (auto) rows only")
    parser.add_argument("--gemm-only", action="store_true", help="skip the conv layer")
    parser.add_argument("--evo-file", type=Path, default=EVO_FILE,
                        help=f"the EvoApproxLib source of mul8u_2AC (default {EVO_FILE}; absent: {FALLBACK} instead)")
    parser.add_argument("--markdown", action="store_true", help="print a BENCHMARKS.md section")
    args = parser.parse_args(argv)
    if args.size < 1 or args.repeats < 1 or args.threads < 1:
        parser.error("--size, --repeats and --threads must be positive")

    for var in ("APPROXSIM_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    cache, private = use_private_cache()

    import tensorflow as tf

    from approxsim import _cpu
    from approxsim.backends import cpu

    evo, evo_note = evo_multiplier(args.evo_file)
    mults = [evo, "int8"]

    load_before = load()
    rows, refs = measure(args, mults)
    load_after = load()

    header = [f"{time.strftime('%Y-%m-%d %H:%M %Z')}, {machine()}",
              f"SIMD: default {_cpu.simd_level()}, host supports {', '.join(cpu.supported_simd())}; "
              f"{args.threads} thread(s) for approxsim, TF {tf.__version__} (intra-op) and NumPy",
              f"multipliers: {evo_note}; int8 (built-in, exact); Gaussian-quantized operands",
              f"{load_before} before, {load_after} after; best and median of {args.repeats} after a warm-up; "
              f"cache {'temporary ' if private else ''}{cache}",
              f"target: integer GEMM <= {TARGET:g}x TF fp32 time (ratio of medians; conv rows held to the same bar "
              "for information)"]
    lines = ["| case | multiplier | row | method | SIMD | GMAC/s | best ms | median ms | TF fp32 median ms "
             "| ratio (approxsim / TF) | target |",
             "|---|---|---|---|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        ratio = r["median"] / r["tf"]
        ok = "met" if ratio <= TARGET else "NOT met"
        lines.append(f"| {r['case']} | {r['mult']} | {r['variant']} | {r['method']} | {r['simd']} | "
                     f"{r['macs'] / r['median'] / 1e9:.2f} | {r['best'] * 1e3:.1f} | {r['median'] * 1e3:.1f} | "
                     f"{r['tf'] * 1e3:.1f} | {ratio:.2f}x | {ok} |")
    ref_lines = ["| reference | GMAC/s | best ms | median ms |", "|---|---:|---:|---:|"]
    for name, (macs, ts) in refs.items():
        med = statistics.median(ts)
        ref_lines.append(f"| {name} | {macs / med / 1e9:.2f} | {min(ts) * 1e3:.1f} | {med * 1e3:.1f} |")
    summary = []
    for r in rows:
        if r["variant"].startswith("default") and r["case"].startswith("GEMM"):
            ratio = r["median"] / r["tf"]
            summary.append(f"{r['mult']} {ratio:.2f}x ({'met' if ratio <= TARGET else 'NOT met'})")

    sep = "\n\n" if args.markdown else "\n"
    print(("  \n" if args.markdown else "\n").join(header), end=sep)
    print("\n".join(lines), end=sep)
    print("\n".join(ref_lines), end=sep)
    print(f"Target integer GEMM <= {TARGET:g}x TF fp32, default rows: " + "; ".join(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
