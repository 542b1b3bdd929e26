"""``approxsim check``: trust a new machine. Every usable backend against the reference backend.

For each backend (or the one asked for), and a few multipliers of every kind (tables, the exact
``fp32``, a direct model):

* ``specials``: every pair of special values (zeros, subnormals, infinities, NaN, extremes) as
  single products, through the elementwise product and through the GEMM kernels, bit for bit
  (tables and ``fp32`` against DESIGN.md section 1, direct models against the model itself);
* ``grid`` (tables): every table entry once, with random signs and exponents, bit for bit;
* ``gemm``, ``batched``: random matrix products (transposes, broadcast batches);
* ``conv``, ``conv dx``, ``conv dw``: a strided, padded, dilated and grouped convolution and
  both its gradients;

sums within ``1e-5`` of the sum of the absolute products. ``--speed`` adds a GEMM's rate next to
the machine's native float32 GEMM (TensorFlow's if it is importable, else NumPy's). Prints one
table and returns 1 on any mismatch. Needs neither TensorFlow nor a GPU.
"""

from __future__ import annotations

import time

import numpy as np

from approxsim import multipliers
from approxsim.backends import available_backends, get_backend
from approxsim.geometry import conv_geometry

__all__ = ["run_checks", "add_parser", "SPECIAL_VALUES"]

SPECIAL_VALUES = np.float32([0.0, -0.0, 1e-45, -1e-40, 1.1754942e-38, 1.1754944e-38, -2.0 ** -126, 1.0, -1.5,
                             1.9999999, 3.0, 2.0 ** 64, -2.0 ** -64, 3.4028235e38, -3.4028235e38, 2.0 ** 127,
                             np.inf, -np.inf, np.nan])
TOLERANCE = 1e-5


def _same(got, want) -> bool:
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    nan = np.isnan(want)
    return got.shape == want.shape and np.array_equal(np.isnan(got), nan) and \
        np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def _close(got, want, scale):
    """``(ok, worst relative error)``: within TOLERANCE of the sum of |products|; NaN and Inf where the reference has them."""
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    if got.shape != want.shape:
        return False, float("inf")
    special = ~np.isfinite(want)
    if not np.array_equal(np.isnan(got), np.isnan(want)) or not np.array_equal(got[special & ~np.isnan(want)],
                                                                                 want[special & ~np.isnan(want)]):
        return False, float("inf")
    ok = ~special
    err = np.abs(got[ok] - want[ok]) / (np.asarray(scale, np.float64)[ok] + 1e-30)
    worst = float(err.max()) if err.size else 0.0
    return worst <= TOLERANCE, worst


def _abs_multiplier(mult):
    if mult.kind != "table":
        return mult
    return multipliers.Multiplier(f"{mult.name}_abs", mult.mantissa_bits, np.abs(mult.table))


def _cases(quick: bool):
    """``(name, call(kernels, absolute) -> result, multiply-adds or None)`` of the sum checks."""
    rng = np.random.default_rng(7)
    m, k, n = (48, 96, 40) if quick else (130, 600, 90)
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    ba, bb = rng.standard_normal((3, 1, k, 17)).astype(np.float32), rng.standard_normal((2, 29, k)).astype(np.float32)
    geom = conv_geometry((2, 11, 10, 6), (3, 3, 3, 8), strides=(2, 1), padding="SAME", dilations=(1, 2), groups=2)
    x, w, dy = (rng.standard_normal(s).astype(np.float32)
                for s in (geom.input_shape, geom.filter_shape, geom.output_shape))

    def absolute(flag, *arrays):
        return [np.abs(v) if flag else v for v in arrays]

    return [
        ("gemm", lambda K, f: K.matmul(*absolute(f, a, b)), m * k * n),
        ("batched", lambda K, f: K.matmul(*absolute(f, ba, bb), transpose_a=True, transpose_b=True), 6 * 17 * 29 * k),
        ("conv", lambda K, f: K.conv2d(*absolute(f, x, w), geom), None),
        ("conv dx", lambda K, f: K.conv2d_input_grad(*absolute(f, dy, w), geom), None),
        ("conv dw", lambda K, f: K.conv2d_filter_grad(*absolute(f, x, dy), geom), None),
    ]


def _rows_for(backend, mult, quick, ref):
    """``(case, ok, worst relative error, GMAC/s or None)`` for one multiplier on one backend."""
    rows = []
    kernels, ref_k = backend.bind(mult), ref.bind(mult)
    va, vb = np.meshgrid(SPECIAL_VALUES, SPECIAL_VALUES, indexing="ij")
    want = ref_k.multiply(va, vb)
    ok = _same(kernels.multiply(va, vb), want) and \
        _same(kernels.matmul(SPECIAL_VALUES[:, None], SPECIAL_VALUES[None, :]), want + np.float32(0))
    rows.append(("specials", ok, 0.0 if ok else float("inf"), None))  # (a one-term sum turns -0 into +0)
    if mult.kind == "table":  # every table entry once, with random signs and exponents
        rng = np.random.default_rng(11)
        side = 1 << mult.mantissa_bits
        frac = (np.arange(side, dtype=np.uint32) << np.uint32(23 - mult.mantissa_bits))
        exps = rng.integers(64, 190, size=(2, side)).astype(np.uint32) << np.uint32(23)
        signs = rng.integers(0, 2, size=(2, side)).astype(np.uint32) << np.uint32(31)
        ga, gb = ((frac | exps[i] | signs[i]).view(np.float32) for i in range(2))
        want = ref_k.matmul(ga[:, None], gb[None, :])
        ok = _same(kernels.matmul(ga[:, None], gb[None, :]), want) and \
            _same(kernels.multiply(ga[:, None], gb[None, :]), want)
        rows.append(("grid", ok, 0.0 if ok else float("inf"), None))
    abs_k = ref.bind(_abs_multiplier(mult))
    for name, call, macs in _cases(quick):
        call(kernels, False)  # first use: tables, compiled kernels, threads
        start = time.perf_counter()
        got = call(kernels, False)
        seconds = time.perf_counter() - start
        ok, worst = _close(got, call(ref_k, False), call(abs_k, True))
        rows.append((name, ok, worst, macs / seconds / 1e9 if macs and seconds > 0 else None))
    return rows


def _speed(backend, quick):
    """GEMM rate of mbm7 on this backend and of the native float32 GEMM, measured in one run."""
    size = 256 if quick else 1024
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal((size, size)).astype(np.float32) for _ in range(2))
    kernels = backend.bind(multipliers.get("mbm7"))
    kernels.matmul(a, b)  # warm up (tables, threads)
    best = min(_timed(lambda: kernels.matmul(a, b)) for _ in range(3))
    try:
        import tensorflow as tf

        ta, tb = tf.constant(a), tf.constant(b)
        native, label = (lambda: tf.linalg.matmul(ta, tb).numpy()), "tf.matmul"
    except ImportError:
        native, label = (lambda: a @ b), "numpy matmul"
    native()
    ref = min(_timed(native) for _ in range(3))
    macs = size ** 3
    return macs / best / 1e9, macs / ref / 1e9, label, size


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_checks(*, backends=None, quick=False, speed=False, out=print) -> int:
    """Runs the checks and prints the table; returns 0, or 1 on any mismatch.

    Args:
      backends: names to check (default: every usable backend other than the reference).
      quick: smaller cases and fewer multipliers (under a minute on two cores).
      speed: add the GEMM rate against the native float32 GEMM.
      out: where lines go.
    """
    names = backends or [n for n in available_backends() if n != "reference"]
    ref = get_backend("reference")
    mults = ["mbm7", "fp32", "mbm23"] if quick else ["mbm7", "mitchell3", "bf16", "mitchell11", "fp32", "mbm23"]
    rows, failed = [], False
    for name in names:
        backend = get_backend(name)
        for mult_name in mults:
            mult = multipliers.get(mult_name)
            for case, ok, worst, rate in _rows_for(backend, mult, quick, ref):
                failed |= not ok
                rows.append((name, f"{mult_name} {case}", "ok" if ok else "MISMATCH",
                             "bit-exact" if case in ("specials", "grid") and ok else f"{worst:.2e}",
                             "" if rate is None else f"{rate:.3f}"))
        if speed:
            mine, native, label, size = _speed(backend, quick)
            rows.append((name, f"speed: mbm7 GEMM {size}^3", f"{native / mine:.1f}x {label}", "",
                         f"{mine:.3f} ({native:.1f} native)"))
    head = ("backend", "case", "result", "max error", "GMAC/s")
    widths = [max(len(str(r[i])) for r in [head] + rows) for i in range(len(head))]
    for row in [head] + rows:
        out("  ".join(str(v).ljust(wd) for v, wd in zip(row, widths)).rstrip())
    out(f"{'FAILED' if failed else 'passed'}: {sum(r[2] == 'MISMATCH' for r in rows)} mismatches in {len(rows)} "
        f"checks on {', '.join(names) or 'no backend'} (tolerance {TOLERANCE:g} of the sum of |products|)")
    return 1 if failed else 0


def _cmd_check(args) -> int:
    return run_checks(backends=[args.backend] if args.backend else None, quick=args.quick, speed=args.speed)


def add_parser(sub) -> None:
    p = sub.add_parser("check", help="check every usable backend against the reference (run this on a new machine)")
    p.add_argument("--backend", help="only this backend (cpu, cuda); default: every usable one")
    p.add_argument("--quick", action="store_true", help="smaller cases, fewer multipliers (under a minute)")
    p.add_argument("--speed", action="store_true", help="also a GEMM's rate against the native float32 GEMM")
    p.set_defaults(func=_cmd_check)
