"""Error statistics of a multiplier: bias, MRED, worst case, error probability.

>>> import approxsim
>>> stats = approxsim.analyze("mitchell11")
>>> round(stats["table"]["mean_rel_error"], 4), round(stats["table"]["max_abs_rel_error"], 4)
(-0.0385, 0.1111)

Two sections, each of relative errors ``(approx - exact) / exact`` as fractions:

* ``table``: exhaustive over the ``2**M x 2**M`` grid of operands ``1 + i/2**M``
  (the table's own grid), against the exact product of the grid operands. A
  multiplier without a table (``fp32``, ``direct`` models) is measured on the
  ``M = 11`` grid instead (``grid_bits`` says which grid was used).
* ``random``: ``samples`` pairs of operands with uniformly random full-precision
  (23-bit) significands in [1, 2), against the exact product of the operands as
  given, so the truncation of the inputs to ``M`` bits counts.

"Exact" is the exact product (computed in float64, where it is exact) rounded
once to float32, the IEEE float32 product: every multiplier returns float32, so
the statistics measure the error a multiplier adds to the best float32 answer,
and ``fp32`` has all-zero statistics. The rounding changes any other figure by
less than ``2**-24`` relative. On the table grid (``M <= 11``) the products are
exact in float32 anyway.

Approximate products come from :func:`approxsim.multiply`, so they follow
DESIGN.md section 1 exactly (a zero table entry gives a zero product).

References:
  J. N. Mitchell, "Computer Multiplication and Division Using Binary Logarithms",
  IRE Transactions on Electronic Computers, EC-11(4):512-517, 1962 (mean error
  -3.85%, worst case -1/9 for the logarithmic multiplier).
  J. Liang, J. Han, F. Lombardi, "New Metrics for the Reliability of Approximate
  and Probabilistic Adders", IEEE Transactions on Computers 62(9), 2013 (error
  rate and mean relative error distance, MRED).
"""

from __future__ import annotations

import numpy as np

from approxsim.lut import grid_operands
from approxsim.multiplier import MAX_TABLE_BITS
from approxsim.product import products

__all__ = ["analyze", "analyze_integer", "relative_errors", "summarize", "summary_line", "STAT_KEYS"]

STAT_KEYS = ("mean_rel_error", "mean_abs_rel_error", "max_abs_rel_error", "std_rel_error", "error_probability")
_FRACTION_BITS = 23


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}. Received: {name}={value!r}")
    return int(value)


def _grid_bits(mult) -> int:
    return mult.mantissa_bits if mult.kind == "table" else MAX_TABLE_BITS


def relative_errors(multiplier, *, samples: int = 1_000_000, seed: int = 0) -> dict:
    """The relative errors behind :func:`analyze`, as arrays (for plots and custom statistics).

    Args:
      multiplier: a registered name or a :class:`~approxsim.Multiplier`.
      samples: number of random operand pairs of the ``random`` section.
      seed: seed of the random operands (``numpy.random.default_rng``).

    Returns:
      A dict with ``grid_bits`` (``M`` of the grid), ``grid`` (float64 operands,
      shape ``(2**M,)``), ``table_approx`` and ``table_exact`` (float64, shape
      ``(2**M, 2**M)``: row ``i`` is the first operand), ``table`` (their relative
      errors), and ``a``, ``b``, ``random_approx``, ``random_exact``, ``random``
      (float64, shape ``(samples,)``). ``*_exact`` are the exact products rounded
      once to float32 (the IEEE product).
    """
    from approxsim import multipliers

    mult = multipliers.get(multiplier)
    samples = _check_int("samples", samples, 1)
    seed = _check_int("seed", seed, 0)
    bits = _grid_bits(mult)
    grid32 = grid_operands(bits)
    grid = grid32.astype(np.float64)
    t_exact = _ieee(np.multiply.outer(grid, grid))  # exact: two (bits+1)-bit significands
    t_approx = products(grid32[:, None], grid32[None, :], mult).astype(np.float64)

    rng = np.random.default_rng(seed)
    one = 1 << _FRACTION_BITS
    a = 1.0 + rng.integers(0, one, samples, dtype=np.int64) / one  # exact in float32 and float64
    b = 1.0 + rng.integers(0, one, samples, dtype=np.int64) / one
    r_exact = _ieee(a * b)  # a * b is exact in float64 (48 significant bits)
    r_approx = products(a.astype(np.float32), b.astype(np.float32), mult).astype(np.float64)
    with np.errstate(all="ignore"):
        return {
            "grid_bits": bits, "grid": grid,
            "table_approx": t_approx, "table_exact": t_exact, "table": (t_approx - t_exact) / t_exact,
            "a": a, "b": b, "random_approx": r_approx, "random_exact": r_exact,
            "random": (r_approx - r_exact) / r_exact,
        }


def _ieee(exact: np.ndarray) -> np.ndarray:
    """The float32 rounding (to nearest, ties to even) of exact float64 products, as float64."""
    return exact.astype(np.float32).astype(np.float64)


def _stats(rel: np.ndarray) -> dict:
    flat = rel.ravel()
    abs_rel = np.abs(flat)
    return {
        "mean_rel_error": float(np.mean(flat)),
        "mean_abs_rel_error": float(np.mean(abs_rel)),
        "max_abs_rel_error": float(np.max(abs_rel)),
        "std_rel_error": float(np.std(flat)),
        "error_probability": float(np.count_nonzero(flat) / flat.size),
    }


def _worst(rel: np.ndarray) -> int:
    """Flat index of the largest |error| (NaN counts as largest; first one on ties)."""
    flat = rel.ravel()
    nan = np.isnan(flat)
    if nan.any():
        return int(np.argmax(nan))
    return int(np.argmax(np.abs(flat)))


def analyze(multiplier, *, samples: int = 1_000_000, seed: int = 0) -> dict:
    """Statistics of a multiplier's relative error, on its table grid and on random operands.

    Args:
      multiplier: a registered name (``"mitchell7"``) or a :class:`~approxsim.Multiplier`.
      samples: number of random operand pairs of the ``random`` section.
      seed: seed of the random operands; the same seed gives the same statistics.

    Returns:
      For an integer multiplier, :func:`analyze_integer`'s dict. Otherwise a JSON-ready dict::

        {"multiplier": name, "kind": "table" | "exact" | "direct", "mantissa_bits": M or None,
         "table": {mean_rel_error, mean_abs_rel_error, max_abs_rel_error, std_rel_error,
                   error_probability, "grid_bits": M,
                   "worst_case": {"i", "j", "a", "b", "approx", "exact", "rel_error"}},
         "random": {the same five statistics, "samples", "seed",
                    "worst_case": {"a", "b", "approx", "exact", "rel_error"}}}

      All errors are fractions (not percent): ``mean_rel_error`` is the signed
      bias, ``mean_abs_rel_error`` the MRED, ``std_rel_error`` the population
      standard deviation, ``error_probability`` the fraction of products that
      differ from the exact one. ``table`` uses the table's grid ``1 + i/2**M``
      (``i`` indexes the first operand, ``j`` the second); for ``fp32`` and direct
      multipliers, which have no table, it uses the ``M = 11`` grid.

    Raises:
      approxsim.UnknownMultiplierError: no multiplier of that name.
      ValueError: ``samples`` < 1 or ``seed`` < 0.

    References:
      J. N. Mitchell, "Computer Multiplication and Division Using Binary
      Logarithms", IRE Trans. Electronic Computers, EC-11(4), 1962.
      J. Liang, J. Han, F. Lombardi, "New Metrics for the Reliability of
      Approximate and Probabilistic Adders", IEEE Trans. Computers 62(9), 2013.
    """
    from approxsim import multipliers

    mult = multipliers.get(multiplier)
    if mult.is_integer:
        return analyze_integer(mult, samples=samples, seed=seed)
    return summarize(mult, relative_errors(mult, samples=samples, seed=seed), samples=samples, seed=seed)


def analyze_integer(mult, *, samples: int = 1_000_000, seed: int = 0) -> dict:
    """EvoApproxLib's error figures of an integer multiplier (:mod:`approxsim.int_metrics`):
    exhaustive over its table, sampled (``samples`` random pairs and the extreme ones, ``seed``)
    for a direct model without one.

    Returns:
      ``{"multiplier", "kind", "bits", "signed", "metrics": {MAE, MAE%, WCE, WCE%, EP%, MSE, MRE%,
      WCRE%, mean_error, pairs, exhaustive}}``.
    """
    from approxsim import int_metrics

    samples = _check_int("samples", samples, 1)
    seed = _check_int("seed", seed, 0)
    if mult.kind == "int-table":
        metrics = int_metrics.error_metrics(mult.table, mult.bits, mult.signed)
    else:
        metrics = int_metrics.sampled_error_metrics(mult.products, mult.bits, mult.signed, samples=samples, seed=seed)
    return {"multiplier": mult.name, "kind": mult.kind, "bits": mult.bits, "signed": mult.signed,
            "metrics": metrics}


def summarize(mult, err: dict, *, samples: int, seed: int) -> dict:
    """:func:`analyze`'s dict from :func:`relative_errors`' arrays (so a caller computes them once)."""
    grid = err["grid"]
    k = _worst(err["table"])
    i, j = divmod(k, grid.size)
    table = _stats(err["table"])
    table["grid_bits"] = err["grid_bits"]
    table["worst_case"] = {
        "i": int(i), "j": int(j), "a": float(grid[i]), "b": float(grid[j]),
        "approx": float(err["table_approx"][i, j]), "exact": float(err["table_exact"][i, j]),
        "rel_error": float(err["table"][i, j]),
    }
    k = _worst(err["random"])
    rand = _stats(err["random"])
    rand["samples"] = int(samples)
    rand["seed"] = int(seed)
    rand["worst_case"] = {
        "a": float(err["a"][k]), "b": float(err["b"][k]), "approx": float(err["random_approx"][k]),
        "exact": float(err["random_exact"][k]), "rel_error": float(err["random"][k]),
    }
    return {"multiplier": mult.name, "kind": mult.kind, "mantissa_bits": mult.mantissa_bits,
            "table": table, "random": rand}


def _pct(x: float) -> str:
    return f"{100 * x:+.3g}%"


def summary_line(mult, *, samples: int = 100_000, seed: int = 0) -> str:
    """One line of error statistics, as ``approxsim register`` prints it.

    Args:
      mult: a registered name or a :class:`~approxsim.Multiplier`.
      samples: random operand pairs used for the ``random`` figures.
      seed: their seed.

    Returns:
      For ``mitchell7``: ``"error on the 128x128 grid: mean -3.85%, MRED 3.85%, worst -11.1%
      at 1.5 x 1.5; random operands: mean -4.37%, MRED 4.37%"``.
    """
    s = analyze(mult, samples=samples, seed=seed)
    t, r = s["table"], s["random"]
    side = 1 << t["grid_bits"]
    w = t["worst_case"]
    return (f"error on the {side}x{side} grid: mean {_pct(t['mean_rel_error'])}, "
            f"MRED {100 * t['mean_abs_rel_error']:.3g}%, worst {_pct(w['rel_error'])} at "
            f"{w['a']:.6g} x {w['b']:.6g}; random operands: mean {_pct(r['mean_rel_error'])}, "
            f"MRED {100 * r['mean_abs_rel_error']:.3g}%")
