"""An independent, scalar, pure-Python implementation of DESIGN.md section 1.

Written from the specification with exact rational arithmetic (``fractions``),
sharing no code with approxsim, so tests can check approxsim against it.
"""

import math
import struct
from fractions import Fraction

import numpy as np


def f2u(x: float) -> int:
    return struct.unpack("<I", struct.pack("<f", x))[0]


def u2f(u: int) -> float:
    return struct.unpack("<f", struct.pack("<I", u & 0xFFFFFFFF))[0]


def classify(u: int) -> str:
    exp = (u >> 23) & 0xFF
    frac = u & 0x7FFFFF
    if exp == 0xFF:
        return "nan" if frac else "inf"
    if exp == 0:
        return "zero" if frac == 0 else "subnormal"
    return "normal"


def approx_mul(a: float, b: float, table, m: int) -> float:
    """``a (*) b`` for float32 values ``a``, ``b`` (Python floats holding float32 values)."""
    ua, ub = f2u(a), f2u(b)
    ca, cb = classify(ua), classify(ub)
    negative = bool((ua ^ ub) >> 31)
    if ca == "nan" or cb == "nan":
        return math.nan
    if ca == "inf" or cb == "inf":
        other = cb if ca == "inf" else ca
        if other in ("zero", "subnormal"):
            return math.nan
        return -math.inf if negative else math.inf
    if ca in ("zero", "subnormal") or cb in ("zero", "subnormal"):
        return -0.0 if negative else 0.0
    i = (ua & 0x7FFFFF) >> (23 - m)
    j = (ub & 0x7FFFFF) >> (23 - m)
    ea = ((ua >> 23) & 0xFF) - 127
    eb = ((ub >> 23) & 0xFF) - 127
    t = float(table[i][j])
    if math.copysign(1.0, t) < 0:
        negative = not negative
    v = abs(Fraction(t)) * Fraction(2) ** (ea + eb)
    if v >= Fraction(2) ** 128:
        return -math.inf if negative else math.inf
    if v < Fraction(2) ** -126:
        return -0.0 if negative else 0.0
    out = float(v)
    assert Fraction(np.float32(out).item()) == v, "not exactly representable: the spec says exact"
    return -out if negative else out


def special_values() -> np.ndarray:
    """Operands covering every case of section 1 and its boundaries, as float32."""
    vals = [0.0, -0.0, math.inf, -math.inf, math.nan,
            u2f(0x00000001), u2f(0x807FFFFF), u2f(0x00400000),  # subnormals
            u2f(0x00800000), -u2f(0x00800000),  # smallest normal 2^-126
            u2f(0x7F7FFFFF), -u2f(0x7F7FFFFF),  # largest finite
            u2f(0x7FC00001), u2f(0xFF800001)]  # NaNs with payloads, negative NaN
    for e in (-126, -125, -64, -63, -62, -1, 0, 1, 62, 63, 64, 65, 126, 127):
        for frac in (1.0, 1.5, 1.9999998807907104, 1.0000001192092896, 1.3):
            v = np.float32(frac * 2.0 ** e).item()
            vals += [v, -v]
    return np.array(vals, dtype=np.float32)


def special_pairs():
    """All pairs of :func:`special_values`, as two flat float32 arrays."""
    v = special_values()
    a, b = np.meshgrid(v, v, indexing="ij")
    return a.ravel(), b.ravel()


def oracle_products(a, b, table, m) -> np.ndarray:
    """:func:`approx_mul` over flat arrays, as float32."""
    tl = np.asarray(table).tolist()
    return np.array([approx_mul(x, y, tl, m) for x, y in zip(np.asarray(a).tolist(), np.asarray(b).tolist())],
                    dtype=np.float32)


def same_bits(x, y, *, signed_zero=True, any_nan=False) -> np.ndarray:
    """Elementwise: identical float32 bit patterns (NaN payloads compared unless any_nan)."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    y = np.ascontiguousarray(y, dtype=np.float32)
    eq = x.view(np.uint32) == y.view(np.uint32)
    if any_nan:
        eq |= np.isnan(x) & np.isnan(y)
    if not signed_zero:
        eq |= (x == 0) & (y == 0)
    return eq
