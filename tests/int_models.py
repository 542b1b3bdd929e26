"""Independent NumPy references for the built-in integer multiplier C models (tests only).

``multipliers/int_exact.c`` and ``multipliers/int_approx.c`` hold the C models; each function
here is written from the published algorithm (arithmetic on whole operands and rows, floating
point for Mitchell) rather than from the C, so the two can check each other. Every reference
takes int64 arrays of codes (signed ones as negative numbers) and returns the int64 product
(the signed value for signed multipliers).

``MODELS`` maps each multiplier name (the C function's name) to ``dict(file, bits, signed,
signature, reference, citation)``; ``signature`` is the ``tests/c_harness.py`` prototype name.
"""

from __future__ import annotations

import numpy as np

MAHDIANI_2010 = ("H. R. Mahdiani, A. Ahmadi, S. M. Fakhraie, C. Lucas, \"Bio-Inspired Imprecise "
                 "Computational Blocks for Efficient VLSI Implementation of Soft-Computing "
                 "Applications\", IEEE Trans. Circuits and Systems I: Regular Papers, 57(4):850-862, "
                 "2010")
HASHEMI_2015 = ("S. Hashemi, R. I. Bahar, S. Reda, \"DRUM: A Dynamic Range Unbiased Multiplier for "
                "Approximate Applications\", Proc. IEEE/ACM Int. Conf. on Computer-Aided Design "
                "(ICCAD), 2015, pp. 418-425")
MITCHELL_1962 = ("J. N. Mitchell, \"Computer Multiplication and Division Using Binary Logarithms\", "
                 "IRE Trans. Electronic Computers, EC-11(4):512-517, 1962")
KULKARNI_2011 = ("P. Kulkarni, P. Gupta, M. D. Ercegovac, \"Trading Accuracy for Power with an "
                 "Underdesigned Multiplier Architecture\", Proc. 24th Int. Conf. on VLSI Design, "
                 "2011, pp. 346-351")
EXACT = "exact integer product (no approximation)"


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def exact(a, b) -> np.ndarray:
    """``a * b``."""
    return _i64(a) * _i64(b)


def bit_length(x) -> np.ndarray:
    """Number of significant bits of each non-negative ``x`` (0 for 0), via ``frexp``."""
    x = _i64(x)
    _, e = np.frexp(x.astype(np.float64))  # x = m 2^e with 0.5 <= m < 1, so e = bit length
    return np.where(x > 0, e, 0).astype(np.int64)


def bam(a, b, vbl: int, bits: int = 8) -> np.ndarray:
    """Broken-array multiplier, HBL = 0: the rows ``b_j * a * 2^j`` of the array, each with the
    bits of ``a`` that land in columns below ``vbl`` cleared (bit ``a_i`` lands in column ``i + j``).
    ``vbl = 0`` is the exact product."""
    a, b = _i64(a), _i64(b)
    total = np.zeros(np.broadcast(a, b).shape, np.int64)
    for j in range(bits):
        lowest_kept = max(vbl - j, 0)  # bits a_i with i < vbl - j fall right of the break
        row = (a >> lowest_kept) << lowest_kept
        total += ((b >> j) & 1) * (row << j)
    return total


def drum_operand(x, k: int) -> np.ndarray:
    """DRUM's rebuilt operand: ``x`` itself if it has at most ``k`` significant bits, else its
    ``k`` leading bits with the lowest one set to 1, at their original weight."""
    x = _i64(x)
    drop = np.maximum(bit_length(x) - k, 0)
    kept = np.where(drop > 0, (x >> drop) | 1, x)
    return kept << drop


def drum(a, b, k: int) -> np.ndarray:
    """DRUM-k: the exact product of the two rebuilt operands."""
    return drum_operand(a, k) * drum_operand(b, k)


def mitchell_value(a, b) -> np.ndarray:
    """Mitchell's approximation as a real number (float64, which is exact here: every quantity is
    a dyadic rational of at most 17 significant bits): with a = 2^ka (1 + xa), b = 2^kb (1 + xb),
    2^(ka+kb) (1 + xa + xb) if xa + xb < 1, else 2^(ka+kb+1) (xa + xb); 0 if a or b is 0."""
    a, b = _i64(a), _i64(b)
    af, bf = np.maximum(a, 1).astype(np.float64), np.maximum(b, 1).astype(np.float64)
    ka, kb = np.floor(np.log2(af)), np.floor(np.log2(bf))
    xa, xb = af / 2.0 ** ka - 1.0, bf / 2.0 ** kb - 1.0
    x = xa + xb
    approx = np.where(x < 1.0, 2.0 ** (ka + kb) * (1.0 + x), 2.0 ** (ka + kb + 1) * x)
    return np.where((a == 0) | (b == 0), 0.0, approx)


def mitchell(a, b) -> np.ndarray:
    """Mitchell's multiplier: :func:`mitchell_value` truncated toward zero."""
    return np.trunc(mitchell_value(a, b)).astype(np.int64)


def kulkarni(a, b, bits: int = 8) -> np.ndarray:
    """Kulkarni's underdesigned multiplier: the exactly added 2 x 2 block products of all pairs of
    2-bit digits, each block exact except 3 * 3 -> 7."""
    a, b = _i64(a), _i64(b)
    total = np.zeros(np.broadcast(a, b).shape, np.int64)
    for i in range(0, bits, 2):
        da = (a >> i) & 3
        for j in range(0, bits, 2):
            db = (b >> j) & 3
            block = np.where((da == 3) & (db == 3), 7, da * db)
            total += block << (i + j)
    return total


def _entry(file, bits, signed, signature, reference, citation):
    return dict(file=file, bits=bits, signed=signed, signature=signature, reference=reference,
                citation=citation)


MODELS = {
    "int8": _entry("int_exact.c", 8, True, "s8", exact, EXACT),
    "uint8": _entry("int_exact.c", 8, False, "u8", exact, EXACT),
    "int16": _entry("int_exact.c", 16, True, "s16", exact, EXACT),
    "int4": _entry("int_exact.c", 4, True, "u64", exact, EXACT),
    "uint4": _entry("int_exact.c", 4, False, "u64", exact, EXACT),
    "bam8u_v4": _entry("int_approx.c", 8, False, "u8", lambda a, b: bam(a, b, 4), MAHDIANI_2010),
    "bam8u_v6": _entry("int_approx.c", 8, False, "u8", lambda a, b: bam(a, b, 6), MAHDIANI_2010),
    "bam8u_v8": _entry("int_approx.c", 8, False, "u8", lambda a, b: bam(a, b, 8), MAHDIANI_2010),
    "drum8u_k4": _entry("int_approx.c", 8, False, "u8", lambda a, b: drum(a, b, 4), HASHEMI_2015),
    "drum8u_k6": _entry("int_approx.c", 8, False, "u8", lambda a, b: drum(a, b, 6), HASHEMI_2015),
    "mitchell8u": _entry("int_approx.c", 8, False, "u8", mitchell, MITCHELL_1962),
    "kulkarni8u": _entry("int_approx.c", 8, False, "u8", kulkarni, KULKARNI_2011),
}


def codes(bits: int, signed: bool) -> np.ndarray:
    """All codes of a width, in the order of their bit patterns (0, 1, ..., then negatives)."""
    pat = np.arange(1 << bits, dtype=np.int64)
    return np.where(pat >= 1 << (bits - 1), pat - (1 << bits), pat) if signed else pat


def sign_extend(x, bits: int) -> np.ndarray:
    """The low ``bits`` bits of ``x`` read as two's complement."""
    low = _i64(x) & ((1 << bits) - 1)
    return np.where(low >= 1 << (bits - 1), low - (1 << bits), low)


def table(name: str) -> np.ndarray:
    """The reference's ``(2^n, 2^n)`` table of a model of ``n <= 12`` bits, pattern-indexed."""
    m = MODELS[name]
    c = codes(m["bits"], m["signed"])
    a, b = np.meshgrid(c, c, indexing="ij")
    return m["reference"](a, b)


def error_metrics(approx, a, b) -> dict:
    """DESIGN.md 1b's error figures of ``approx`` against ``a * b`` over the given pairs (all
    ``2^(2n)`` of them for the published definitions), plus the signed mean error."""
    approx, ex = _i64(approx), exact(a, b)
    e = approx - ex
    nz = ex != 0
    rel = e[nz] / np.abs(ex[nz])
    full = e.size  # 2^(2n) for an exhaustive table
    return dict(MAE=np.abs(e).mean(), MAE_pct=100 * np.abs(e).mean() / full, WCE=int(np.abs(e).max()),
                WCE_pct=100 * np.abs(e).max() / full, EP_pct=100 * np.count_nonzero(e) / e.size,
                MSE=(e.astype(np.float64) ** 2).mean(), ME=e.mean(), MRE_pct=100 * np.abs(rel).mean(),
                WCRE_pct=100 * np.abs(rel).max(), min_rel=rel.min(), max_rel=rel.max(),
                mean_rel=rel.mean())
