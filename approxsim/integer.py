"""Integer codes (DESIGN.md section 1b): widths, signedness, ranges, bit patterns and exact sums.

An integer multiplier multiplies ``n``-bit codes, unsigned ``0 .. 2^n - 1`` or two's complement
``-2^(n-1) .. 2^(n-1) - 1``. Its table is indexed by the codes' ``n``-bit patterns (first operand
outer), and sums of products are exact integers: int32 where ``K * max|T|`` cannot overflow it,
else int64, so every backend returns the same integers whatever the order of the sums.
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["IntFormat", "MIN_BITS", "MAX_BITS", "MAX_TABLE_BITS", "check_bits", "sum_dtype"]

MIN_BITS = 2
MAX_BITS = 16
MAX_TABLE_BITS = 12  # a 2^12 x 2^12 int32 table is 64 MiB
_I32 = 2 ** 31 - 1


def check_bits(value, *, hi: int = MAX_BITS, what: str = "bits") -> int:
    """``value`` as an int in ``[MIN_BITS, hi]``, with a clear error otherwise (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not MIN_BITS <= int(value) <= hi:
        raise ValueError(f"{what} must be an integer from {MIN_BITS} to {hi}. Received: {what}={value!r}")
    return int(value)


@dataclasses.dataclass(frozen=True)
class IntFormat:
    """The codes of an integer multiplier: ``bits`` wide, ``signed`` (two's complement) or not."""

    bits: int
    signed: bool

    def __post_init__(self):
        check_bits(self.bits)
        if not isinstance(self.signed, (bool, np.bool_)):
            raise ValueError(f"signed must be True (two's complement codes) or False (unsigned codes). "
                             f"Received: signed={self.signed!r}")

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    @property
    def mask(self) -> int:
        return (1 << self.bits) - 1

    @property
    def name(self) -> str:
        return f"{'' if self.signed else 'u'}int{self.bits}"

    def describe(self) -> str:
        return f"{self.bits}-bit {'signed' if self.signed else 'unsigned'} codes {self.lo}..{self.hi}"

    def codes(self) -> np.ndarray:
        """int64 codes in pattern order: entry p is the code whose ``n``-bit pattern is p."""
        p = np.arange(1 << self.bits, dtype=np.int64)
        return np.where(p > self.hi, p - (1 << self.bits), p) if self.signed else p

    def patterns(self, codes) -> np.ndarray:
        """The ``n``-bit patterns (int64) of codes."""
        return np.asarray(codes, dtype=np.int64) & self.mask

    def from_patterns(self, values, width: int) -> np.ndarray:
        """Values read as ``width``-bit two's complement patterns when signed (a signed circuit
        with an unsigned C return type returns its result's bit pattern), else as they are."""
        v = np.asarray(values, dtype=np.int64)
        if not self.signed:
            return v
        v = v & ((1 << width) - 1)
        return np.where(v >= 1 << (width - 1), v - (1 << width), v)

    def check_codes(self, x, arg: str, xp=np, dtype=np.int32):
        """``x`` as a C-contiguous array of codes of this format, of ``dtype`` (None: the integer
        dtype it has; ``xp``: NumPy, or CuPy for arrays that stay on the GPU; other inputs are first
        copied to the host).

        Raises:
          TypeError: ``x`` does not hold integers (a float array is not quantized).
          ValueError: a code outside ``lo .. hi``.
        """
        on_device = xp is not np and isinstance(x, xp.ndarray)
        if not on_device and hasattr(x, "__cuda_array_interface__"):
            import cupy  # only present when the input is a CuPy array

            x = cupy.asnumpy(x)
        arr = x if on_device else np.asarray(x)
        if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(
                f"`{arg}` must hold integer codes ({self.describe()}) for an integer multiplier. "
                f"Received: {arg}.dtype={arr.dtype}. Quantize real values first (approxsim.quantize, or the "
                "quantized layers), or choose a float multiplier.")
        if arr.size:
            lo, hi = int(arr.min()), int(arr.max())
            if lo < self.lo or hi > self.hi:
                bad = lo if lo < self.lo else hi
                raise ValueError(
                    f"`{arg}` holds the code {bad}, outside the multiplier's {self.describe()}. Quantize to "
                    f"this range (approxsim.quantize with bits={self.bits}, signed={self.signed}), or choose a "
                    f"multiplier of another width. Received: {arg} range [{lo}, {hi}]")
        if on_device:
            return xp.ascontiguousarray(arr, dtype=dtype)
        return np.require(arr, dtype=dtype, requirements="C")


def sum_dtype(terms: int, max_abs: int):
    """int32 when ``terms`` products of magnitude at most ``max_abs`` cannot overflow it, else int64."""
    return np.dtype(np.int32) if int(terms) * int(max_abs) <= _I32 else np.dtype(np.int64)
