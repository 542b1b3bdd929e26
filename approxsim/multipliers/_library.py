"""More built-in multipliers: ``trunc{M}``, ``lmul{M}`` (M = 1..11) and ``zeros``.

Each is a C model in the top-level ``multipliers/`` folder (package data
``approxsim.builtin_models``), turned into a table at first use by the same flow
as user models. :func:`builtins` returns the :class:`~approxsim.Multiplier`
objects the registry adds after ``fp32``, ``bf16``, ``mbm{M}`` and ``mitchell{M}``.

* ``trunc{M}``: truncate both operands to M fraction bits, multiply exactly,
  truncate the product to M fraction bits. ``trunc7`` has the same table as
  ``bf16``; ``trunc10`` has the fraction width of IEEE binary16 and TF32.
* ``lmul{M}``: L-Mul (Luo and Sun), ``1 + x + y + 2^-l(M)`` with
  ``l(M) = M`` for M <= 3, 3 for M = 4 and 4 for M > 4; a fraction sum that
  reaches 1 carries into the exponent (significand ``2 (x + y + 2^-l(M))``), as
  the integer adder of the paper does.
* ``zeros``: every table entry is zero (M = 1), so every finite product is a
  signed zero; for tests.

References:
  H. Luo, W. Sun, "Addition is All You Need for Energy-efficient Language
  Models", arXiv:2410.00907, 2024.
  D. Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training",
  arXiv:1905.12322, 2019.
  IEEE Std 754-2019, IEEE Standard for Floating-Point Arithmetic.
"""

from __future__ import annotations

__all__ = ["builtins", "lmul_offset_exponent", "LMUL_REF", "IEEE754_REF", "TF32_REF"]

LMUL_REF = ("H. Luo, W. Sun, \"Addition is All You Need for Energy-efficient Language Models\", "
            "arXiv:2410.00907, 2024.")
IEEE754_REF = "IEEE Std 754-2019, IEEE Standard for Floating-Point Arithmetic."
TF32_REF = ("NVIDIA, \"NVIDIA A100 Tensor Core GPU Architecture\" whitepaper, 2020 "
            "(TensorFloat-32: 10 fraction bits).")
DESIGN_REF = "approxsim DESIGN.md, section 1: the approximate product (zero table entries give signed zeros)."


def lmul_offset_exponent(m: int) -> int:
    """``l(m)`` of L-Mul: the offset added to the fraction sum is ``2**-l(m)``.

    References:
      H. Luo, W. Sun, "Addition is All You Need for Energy-efficient Language
      Models", arXiv:2410.00907, 2024.
    """
    if m <= 3:
        return m
    if m == 4:
        return 3
    return 4


def builtins():
    """The Multiplier objects of this library, tables built lazily from their C models."""
    from approxsim.multiplier import MAX_TABLE_BITS
    from approxsim.multipliers._builtin import BF16_REF, c_model as _c_model

    mults = []
    for m in range(1, MAX_TABLE_BITS + 1):
        note = {7: " (the bf16 table)", 10: " (the binary16/TF32 fraction width)"}.get(m, "")
        refs = (IEEE754_REF, BF16_REF) + ((TF32_REF,) if m == 10 else ())
        mults.append(_c_model(
            f"trunc{m}", "trunc.c", "trunc_mul", m,
            f"truncation: operands and product truncated to {m}-bit mantissas, exact multiply{note}", refs))
    for m in range(1, MAX_TABLE_BITS + 1):
        mults.append(_c_model(
            f"lmul{m}", "lmul.c", "lmul", m,
            f"L-Mul (Luo & Sun): 1 + x + y + 2^-{lmul_offset_exponent(m)}, {m}-bit mantissas", (LMUL_REF,)))
    mults.append(_c_model("zeros", "zeros.c", "zeros", 1,
                          "degenerate all-zero table (M=1) for testing: every finite product is +-0",
                          (DESIGN_REF,)))
    return mults
