"""Error statistics of an integer multiplier, as EvoApproxLib defines and publishes them.

An ``n``-bit integer multiplier ``f`` (DESIGN.md section 1b) multiplies codes ``a``, ``b`` that are
unsigned ``0 .. 2^n - 1`` or two's complement ``-2^(n-1) .. 2^(n-1) - 1``. Its error on a pair is
``e = f(a, b) - a*b``, and over the ``2^(2n)`` pairs (or a sample of them):

* ``MAE``  = mean ``|e|``, and ``MAE%`` = 100 MAE / 2^(2n);
* ``WCE``  = max ``|e|`` (worst-case error), and ``WCE%`` = 100 WCE / 2^(2n);
* ``EP%``  = 100 * the share of pairs with ``e != 0`` (error probability);
* ``MSE``  = mean ``e^2``;
* ``MRE%`` = 100 * mean ``|e| / |a*b|`` and ``WCRE%`` = 100 * max ``|e| / |a*b|``, both over the
  pairs with ``a*b != 0`` (the relative error of a pair with an exact product of 0 is undefined);
* ``mean_error`` = mean ``e`` (the bias, which the published figures leave out).

Signed circuits use the same ``2^(2n)`` denominators in MAE% and WCE% (not the range of their
products). These are the definitions of EvoApproxLib, whose C models carry the figures in their
header comments (``// MAE% = 0.037 %``); computed exhaustively they reproduce those figures. See
V. Mrazek, R. Hrbacek, Z. Vasicek, L. Sekanina, "EvoApprox8b: Library of approximate adders and
multipliers for circuit design and benchmarking of approximation methods", Design, Automation &
Test in Europe (DATE) 2017, pp. 258-261.

:func:`error_metrics` works on a table of products (``n <= 12``: ``2^24`` pairs at most) row
chunk by row chunk, in bounded memory, with exact integer sums of ``e``, ``|e|`` and ``e^2``
(the means are then correctly rounded floats). :func:`sampled_error_metrics` estimates the same
figures for wider circuits from random pairs plus the extreme ones. :func:`error_map` and
:func:`error_histogram` give the data of the two plots of :mod:`approxsim.plots` (the error over
the operand codes, and its distribution).
"""

from __future__ import annotations

import math
import os
import re
from fractions import Fraction
from typing import Callable

import numpy as np

from approxsim.integer import MAX_BITS, MAX_TABLE_BITS, MIN_BITS, IntFormat, check_bits

__all__ = ["METRIC_KEYS", "codes", "error_metrics", "sampled_error_metrics", "format_metrics", "error_map",
           "error_histogram", "published_figures"]

#: The published figures, in the order EvoApproxLib's tables and :func:`format_metrics` use.
METRIC_KEYS = ("MAE", "MAE%", "WCE", "WCE%", "EP%", "MSE", "MRE%", "WCRE%")

_MAX_PRODUCT = 2 ** 49  # |f| bound: errors stay below 2^50, so the exact block sums below fit int64
_CHUNK = 1 << 20     # pairs per chunk (8 MiB per int64 array)
_BLOCK = 1 << 12     # elements per int64 partial sum: 2^12 * 2^50 < 2^63
_SPLIT = 25          # |e| = h 2^25 + l, with h, l < 2^25, so h*h, h*l, l*l < 2^50
_MAX_MAP_SIDE = 256  # error maps of more codes are reduced over blocks
_HIST_BINS = 200     # histograms of a wider error range use this many integer-aligned bins


# --------------------------------------------------------------------------------------- inputs

def _check_bits(bits, hi: int) -> int:
    return check_bits(bits, hi=hi)


def _check_signed(signed) -> bool:
    IntFormat(MIN_BITS, signed)  # the one check of signedness
    return bool(signed)


def _check_values(arr: np.ndarray, what: str, fix: str) -> None:
    """Refuses non-integer dtypes and values beyond +-2^49 (the errors must fit the exact sums)."""
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{what} must hold integers, not {arr.dtype}; {fix}.")
    if arr.size and (int(arr.min()) < -_MAX_PRODUCT or int(arr.max()) > _MAX_PRODUCT):
        raise ValueError(f"{what} holds values beyond +-2^49 (min {int(arr.min())}, max "
                         f"{int(arr.max())}), which no multiplier of at most 16-bit codes returns; "
                         f"check that it holds products, read as signed values for a signed circuit.")


def _check_table(table, bits, signed) -> tuple[np.ndarray, int, bool]:
    bits = _check_bits(bits, MAX_TABLE_BITS)
    signed = _check_signed(signed)
    arr = np.asarray(table)
    side = 1 << bits
    if arr.shape != (side, side):
        raise ValueError(f"A {bits}-bit table must have shape ({side}, {side}): one row per first "
                         f"operand and one column per second operand, indexed by their bit patterns. "
                         f"Received: table.shape={arr.shape}; pass the matching bits or the full table.")
    _check_values(arr, "table", "pass the products as an integer array (e.g. table.astype(np.int64) "
                                "when the values are whole numbers)")
    return arr, bits, signed


def codes(bits: int, signed: bool) -> np.ndarray:
    """The codes of ``bits``-bit operands in pattern order (:meth:`approxsim.integer.IntFormat.codes`).

    Raises:
      ValueError: ``bits`` is not an integer from 2 to 16, or ``signed`` is not a bool.
    """
    return IntFormat(_check_bits(bits, MAX_BITS), _check_signed(signed)).codes()


# ---------------------------------------------------------------------------------- accumulation

def _exact_sum(x: np.ndarray) -> int:
    """The exact sum of a 1-D int64 array whose entries are below 2^50 in magnitude."""
    whole = x.size - x.size % _BLOCK
    total = int(x[whole:].sum())
    if whole:
        total += sum(x[:whole].reshape(-1, _BLOCK).sum(axis=1).tolist())
    return total


def _exact_sum_of_squares(m: np.ndarray) -> int:
    """The exact sum of ``m**2`` for a 1-D int64 array of magnitudes below 2^50."""
    if m.size == 0 or int(m.max()) < 1 << _SPLIT:
        return _exact_sum(m * m)
    h, lo = m >> _SPLIT, m & ((1 << _SPLIT) - 1)
    # (h 2^25 + l)^2 = h^2 2^50 + h l 2^26 + l^2
    return ((_exact_sum(h * h) << 2 * _SPLIT) + (_exact_sum(h * lo) << (_SPLIT + 1))
            + _exact_sum(lo * lo))


class _Accumulator:
    """Running exact sums of the errors of a stream of pairs."""

    def __init__(self):
        self.pairs = self.sum_e = self.sum_abs = self.sum_sq = self.nonzero = self.wce = 0
        self.rel_sums: list[float] = []
        self.rel_pairs = 0
        self.wcre = 0.0

    def add(self, products: np.ndarray, exact: np.ndarray) -> None:
        e = (products.astype(np.int64, copy=False) - exact).ravel()
        m = np.abs(e)
        self.pairs += e.size
        self.sum_e += _exact_sum(e)
        self.sum_abs += _exact_sum(m)
        self.sum_sq += _exact_sum_of_squares(m)
        self.nonzero += int(np.count_nonzero(e))
        if e.size:
            self.wce = max(self.wce, int(m.max()))
        ex = exact.ravel()
        keep = ex != 0
        if keep.any():
            rel = m[keep] / np.abs(ex[keep]).astype(np.float64)
            self.rel_sums.append(float(rel.sum()))
            self.rel_pairs += rel.size
            self.wcre = max(self.wcre, float(rel.max()))

    def metrics(self, bits: int, exhaustive: bool) -> dict:
        n, denom = self.pairs, 1 << (2 * bits)
        mre = 100.0 * math.fsum(self.rel_sums) / self.rel_pairs if self.rel_pairs else math.nan
        return {
            "MAE": float(Fraction(self.sum_abs, n)),
            "MAE%": float(Fraction(100 * self.sum_abs, n * denom)),
            "WCE": float(self.wce),
            "WCE%": float(Fraction(100 * self.wce, denom)),
            "EP%": float(Fraction(100 * self.nonzero, n)),
            "MSE": float(Fraction(self.sum_sq, n)),
            "MRE%": mre,
            "WCRE%": 100.0 * self.wcre if self.rel_pairs else math.nan,
            "mean_error": float(Fraction(self.sum_e, n)),
            "pairs": n,
            "exhaustive": exhaustive,
        }


def _row_chunks(side: int):
    rows = max(1, _CHUNK // side)
    for start in range(0, side, rows):
        yield slice(start, min(start + rows, side))


def _errors_by_chunk(table: np.ndarray, c: np.ndarray):
    """``(f, a*b)`` for row chunks of the table, as int64 arrays."""
    for rows in _row_chunks(c.size):
        yield table[rows].astype(np.int64, copy=False), np.multiply.outer(c[rows], c)


# ------------------------------------------------------------------------------------- metrics

def error_metrics(table: np.ndarray, bits: int, signed: bool) -> dict:
    """EvoApproxLib's error figures of a multiplier, over all ``2^(2n)`` pairs of its table.

    Args:
      table: the ``(2^n, 2^n)`` integer array of products ``f(a, b)``, indexed by the operands'
        ``n``-bit patterns, first operand outer (DESIGN.md 1b). A signed circuit's entries are
        its signed products (sign-extend a circuit that returns the result's bit pattern).
      bits: the operand width ``n``, 2 to 12.
      signed: whether the codes are two's complement.

    Returns:
      A dict of floats ``MAE``, ``MAE%``, ``WCE``, ``WCE%``, ``EP%``, ``MSE``, ``MRE%``,
      ``WCRE%`` (defined in the module docstring) and ``mean_error``, plus ``pairs`` (the int
      ``2^(2n)``) and ``exhaustive`` (True). Sums are exact, so each mean is the correctly rounded
      float of the exact one (MRE% and WCRE% are float64 sums of float64 ratios).

    Raises:
      ValueError: ``bits`` out of 2..12 or not an int, ``signed`` not a bool, the table of
        another shape than ``(2^n, 2^n)``, of a non-integer dtype, or with values beyond +-2^49.
    """
    arr, bits, signed = _check_table(table, bits, signed)
    c = codes(bits, signed)
    acc = _Accumulator()
    for products, exact in _errors_by_chunk(arr, c):
        acc.add(products, exact)
    return acc.metrics(bits, exhaustive=True)


def _check_count(value, what: str, lo: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or int(value) < lo:
        raise ValueError(f"{what} must be an integer >= {lo}. Received: {what}={value!r}")
    return int(value)


def sampled_error_metrics(products: Callable[[np.ndarray, np.ndarray], np.ndarray], bits: int,
                          signed: bool, samples: int = 10 ** 6, seed: int = 0) -> dict:
    """EvoApproxLib's error figures estimated from random pairs, for circuits without a table.

    The pairs are ``samples`` uniformly random pairs of codes plus every pair of the extreme codes
    (the minimum, -1 when signed, 0, 1 and the maximum), so WCE and WCRE see the corners. The
    figures keep their definitions, including the ``2^(2n)`` denominators of MAE% and WCE%; WCE and
    WCRE are then lower bounds of the exhaustive ones.

    Args:
      products: ``products(a, b)`` returns ``f(a[i], b[i])`` for int64 arrays of codes (signed
        ones negative), as an integer array of the same shape (signed products when signed).
      bits: the operand width ``n``, 2 to 16.
      signed: whether the codes are two's complement.
      samples: the number of random pairs, at least 1.
      seed: the seed of the NumPy random generator (the same seed gives the same figures).

    Returns:
      The dict of :func:`error_metrics` with ``exhaustive`` False and ``pairs`` the number of
      pairs used (``samples`` plus 9 unsigned or 25 signed extreme pairs).

    Raises:
      ValueError: bad ``bits``, ``signed``, ``samples`` or ``seed``; ``products`` not callable,
        or returning an array of another shape, a non-integer dtype or values beyond +-2^49.
    """
    bits = _check_bits(bits, MAX_BITS)
    signed = _check_signed(signed)
    samples = _check_count(samples, "samples", 1)
    seed = _check_count(seed, "seed", 0)
    if not callable(products):
        raise ValueError(f"products must be a function products(a_codes, b_codes) -> int array. "
                         f"Received: {products!r}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    ext = np.array(sorted({lo, -1, 0, 1, hi} if signed else {0, 1, hi}), dtype=np.int64)
    rng = np.random.default_rng(seed)
    acc = _Accumulator()

    def run(a: np.ndarray, b: np.ndarray) -> None:
        out = np.asarray(products(a, b))
        if out.shape != a.shape:
            raise ValueError(f"products(a, b) must return one product per pair: shape {a.shape}. "
                             f"Received: shape {out.shape}")
        _check_values(out, "The result of products(a, b)", "return an integer array (e.g. int64)")
        acc.add(out, a * b)

    ea, eb = np.meshgrid(ext, ext, indexing="ij")
    run(ea.ravel(), eb.ravel())
    for start in range(0, samples, _CHUNK):
        k = min(_CHUNK, samples - start)
        run(rng.integers(lo, hi, size=k, dtype=np.int64, endpoint=True),
            rng.integers(lo, hi, size=k, dtype=np.int64, endpoint=True))
    return acc.metrics(bits, exhaustive=False)


def format_metrics(metrics: dict) -> str:
    """The figures of :func:`error_metrics` or :func:`sampled_error_metrics` as an aligned text block.

    Args:
      metrics: the dict those functions return.

    Returns:
      One line per figure (MAE, MAE%, WCE, WCE%, EP%, MSE, MRE%, WCRE%, then the mean error), and a
      last line saying over how many pairs, exhaustively or sampled. No trailing newline.

    Raises:
      ValueError: ``metrics`` is not such a dict (a key is missing).
    """
    need = METRIC_KEYS + ("mean_error", "pairs", "exhaustive")
    missing = [k for k in need if not isinstance(metrics, dict) or k not in metrics]
    if missing:
        raise ValueError(f"metrics must be the dict error_metrics or sampled_error_metrics returns; "
                         f"missing: {', '.join(missing)}")

    def num(v) -> str:
        v = float(v)
        return str(int(v)) if v.is_integer() and abs(v) < 1e15 else f"{v:.10g}"

    rows = [(k, num(metrics[k]) + (" %" if k.endswith("%") else "")) for k in METRIC_KEYS]
    rows.append(("mean error", num(metrics["mean_error"])))
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    pairs = int(metrics["pairs"])
    lines.append(f"exhaustive over {pairs} pairs" if metrics["exhaustive"] else f"sampled {pairs} pairs")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ plot data

def error_map(table: np.ndarray, bits: int, signed: bool) -> tuple[np.ndarray, np.ndarray, int]:
    """The errors ``f(a, b) - a*b`` ordered by code value on both axes (``a`` rows, ``b`` columns), at
    most 256 x 256: over ``f x f`` blocks of codes, the error of largest magnitude (sign kept).

    Returns:
      ``(emap, codes, f)``: the int64 map, the codes in pattern order, and the block size ``f``.

    Raises:
      ValueError: as :func:`error_metrics`.
    """
    arr, bits, signed = _check_table(table, bits, signed)
    c = codes(bits, signed)
    side = c.size
    order = np.argsort(c, kind="stable")
    oc = c[order]
    f = max(1, side // _MAX_MAP_SIDE)
    out = np.empty((side // f, side // f), dtype=np.int64)
    for i in range(side // f):
        rows = order[i * f:(i + 1) * f]
        e = arr[rows][:, order].astype(np.int64) - np.multiply.outer(c[rows], oc)
        if f == 1:
            out[i] = e[0]
            continue
        blocks = e.reshape(f, side // f, f).transpose(1, 0, 2).reshape(side // f, f * f)
        pick = np.abs(blocks).argmax(axis=1)
        out[i] = blocks[np.arange(side // f), pick]
    return out, c, f


def error_histogram(table: np.ndarray, bits: int, signed: bool) -> tuple[np.ndarray, np.ndarray]:
    """Counts of the errors ``f(a, b) - a*b`` over all pairs: one-integer bins when the errors span at
    most 200 values, else 200 equal bins of integer width.

    Returns:
      ``(edges, counts)``: float64 bin edges (at half-integers) and int64 counts.

    Raises:
      ValueError: as :func:`error_metrics`.
    """
    arr, bits, signed = _check_table(table, bits, signed)
    c = codes(bits, signed)
    emin, emax = None, None
    for products, exact in _errors_by_chunk(arr, c):
        e = products - exact
        lo, hi = int(e.min()), int(e.max())
        emin = lo if emin is None else min(emin, lo)
        emax = hi if emax is None else max(emax, hi)
    width = max(1, -(-(emax - emin + 1) // _HIST_BINS))
    nbins = -(-(emax - emin + 1) // width)
    edges = emin - 0.5 + width * np.arange(nbins + 1, dtype=np.float64)
    counts = np.zeros(nbins, dtype=np.int64)
    for products, exact in _errors_by_chunk(arr, c):
        idx = ((products - exact).ravel() - emin) // width
        counts += np.bincount(idx, minlength=nbins)
    return edges, counts


# ------------------------------------------------------------------------- published figures

_FIGURE_LINE = re.compile(r"//\s*([A-Za-z][A-Za-z0-9_]*%?)\s*=\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)"
                          r"\s*(\S*)\s*$")


def published_figures(path) -> dict:
    """The figures an EvoApproxLib C model states in its header comment, as floats.

    EvoApproxLib files open with lines such as ``// MAE% = 0.037 %``, ``// MSE = 27962.037e2``,
    ``// PDK45_PWR = 0.311 mW``, ``// PDK45_AREA = 508.3 um2`` and ``// PDK45_DELAY = 1.39 ns``
    (the error figures of the module docstring, and power, area and delay synthesised for the
    45 nm PDK, in mW, um2 and ns). Only the comments before the first line of code are read, so
    a ``// X = 1`` further down the file is not taken for a figure.

    Args:
      path: the C or C++ file.

    Returns:
      ``{name: value}`` with the names as written (``"MAE%"``, ``"PDK45_PWR"``, ...); empty when
      the header states none (a model that is not EvoApproxLib's).

    Raises:
      FileNotFoundError: no such file.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No such C file to read the published figures from. Received: path={path!r}")
    figures = {}
    in_block = False
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            text = line.strip()
            if in_block or text.startswith("/*"):
                in_block = "*/" not in text
                continue
            if not text:
                continue
            if not text.startswith("//"):
                break  # the first line of code ends the header
            match = _FIGURE_LINE.match(text)
            if match:
                figures.setdefault(match.group(1), float(match.group(2)))
    return figures
