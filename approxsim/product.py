"""The approximate product of DESIGN.md section 1, elementwise, in NumPy.

This is the oracle: short, vectorised and written straight from the
specification. Every backend is tested against it.
"""

from __future__ import annotations

import numpy as np

__all__ = ["products", "approx_product", "split_table"]

_SIGN = np.uint32(0x80000000)
_FRAC = np.uint32(0x007FFFFF)
_QNAN = np.uint32(0x7FC00000)
_INF = np.uint32(0x7F800000)


def split_table(table: np.ndarray):
    """Sign bits, fraction fields and unbiased exponents of every table entry.

    Subnormal entries are normalised; zero entries get an exponent so small that
    every product of them flushes to zero.
    """
    t = np.ascontiguousarray(table, dtype=np.float32).ravel()
    bits = t.view(np.uint32)
    sign = bits & _SIGN
    mant, exp = np.frexp(np.abs(t).astype(np.float64))  # |t| = mant * 2^exp, mant in [0.5, 1)
    sig = (2.0 * mant).astype(np.float32)  # in [1, 2), exact for every float32 entry
    frac = sig.view(np.uint32) & _FRAC
    uexp = exp.astype(np.int64) - 1
    uexp[t == 0] = -100000
    return sign, frac, uexp


def approx_product(a: np.ndarray, b: np.ndarray, table: np.ndarray, mantissa_bits: int, *,
                   split=None) -> np.ndarray:
    """Approximate products of same-shape float32 arrays ``a`` and ``b``.

    Args:
      a: float32 array, first operand (selects the table row).
      b: float32 array of the same shape, second operand (selects the column).
      table: float32 array of shape ``(2**M, 2**M)``.
      mantissa_bits: ``M``.
      split: ``split_table(table)``, when the caller has it already.

    Returns:
      float32 array of the products, bit-exact per DESIGN.md section 1.
    """
    m = int(mantissa_bits)
    ua = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
    ub = np.ascontiguousarray(b, dtype=np.float32).view(np.uint32)
    ea = (ua >> 23) & 0xFF
    eb = (ub >> 23) & 0xFF
    sign = (ua ^ ub) & _SIGN
    index = ((ua & _FRAC) >> (23 - m)).astype(np.int64) << m
    index |= ((ub & _FRAC) >> (23 - m)).astype(np.int64)
    t_sign, t_frac, t_exp = split_table(table) if split is None else split
    e = t_exp[index] + ea.astype(np.int64) + eb.astype(np.int64) - 254
    out = sign ^ t_sign[index]
    normal = (e >= -126) & (e < 128)
    out = np.where(normal, out | ((e + 127).clip(0, 255).astype(np.uint32) << 23) | t_frac[index], out)
    out = np.where(e >= 128, out | _INF, out)
    # Step 2: zero or subnormal operand -> signed zero.
    out = np.where((ea == 0) | (eb == 0), sign, out)
    # Step 1: infinities and NaNs.
    inf_a = (ea == 0xFF) & ((ua & _FRAC) == 0)
    inf_b = (eb == 0xFF) & ((ub & _FRAC) == 0)
    nan_a = (ea == 0xFF) & ((ua & _FRAC) != 0)
    nan_b = (eb == 0xFF) & ((ub & _FRAC) != 0)
    out = np.where(inf_a | inf_b, sign | _INF, out)
    out = np.where((inf_a & (eb == 0)) | (inf_b & (ea == 0)) | nan_a | nan_b, _QNAN, out)
    return out.astype(np.uint32).view(np.float32)


def products(a: np.ndarray, b: np.ndarray, mult) -> np.ndarray:
    """float32 products ``a (*) b`` of broadcastable float32 arrays, for any kind of multiplier.

    ``exact``: the IEEE float32 product. ``table``: :func:`approx_product`. ``direct``: the
    compiled model, called on the operands. (Each kind's ``Multiplier.products``.)
    """
    a, b = np.broadcast_arrays(a, b)
    return mult.products(np.ascontiguousarray(a), np.ascontiguousarray(b)).reshape(a.shape)
