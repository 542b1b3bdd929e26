"""The integer kinds of multiplier (DESIGN.md section 1b): ``IntTableMultiplier`` (an int32
table over the codes' bit patterns, up to 12 bits) and ``IntDirectMultiplier`` (a C model
compiled into the kernels, up to 16 bits), on the common base :class:`IntegerMultiplier`."""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from approxsim.multiplier import Multiplier

__all__ = ["IntegerMultiplier", "IntTableMultiplier", "IntDirectMultiplier", "check_int_table"]


class IntegerMultiplier(Multiplier):
    """The base of the integer kinds (DESIGN.md section 1b): products of ``bits``-wide codes.

    Attributes:
      bits: the code width ``n``.
      signed: two's complement codes (else unsigned).
      format: the :class:`approxsim.integer.IntFormat` of the codes.
      max_abs: a bound on ``|f(a, b)|``, which decides when sums need int64.
    """

    kind = "integer"
    mantissa_bits = None
    is_integer = True

    def _init_int(self, name, bits, signed, description, references, source, aliases):
        from approxsim.integer import IntFormat

        self._init_common(name, description, references, source, aliases)
        self.format = IntFormat(bits, signed)
        self.bits, self.signed = self.format.bits, bool(self.format.signed)

    def products(self, a, b):  # pragma: no cover - interface
        """int64 products ``f(a, b)`` of same-shape arrays of codes."""
        raise NotImplementedError

    def _width(self) -> str:
        return f"{self.format.name}, {self.kind}"

    def __hash__(self):
        return hash((self.name, self.bits, self.signed))

    def __eq__(self, other):
        if not isinstance(other, Multiplier):
            return NotImplemented
        return (type(self) is type(other) and self.name == other.name and self.format == other.format
                and self._same_arithmetic(other))


def check_int_table(table, fmt, *, what: str = "table") -> np.ndarray:
    """Validates an integer table (``(2^n, 2^n)`` of integers that fit int32); read-only int32."""
    arr = np.asarray(table)
    side = 1 << fmt.bits
    if arr.shape != (side, side):
        raise ValueError(f"A {what} of {fmt.describe()} must have shape ({side}, {side}). Received: shape={arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"A {what} of an integer multiplier must hold integers. Received: dtype={arr.dtype}")
    if arr.size and (int(arr.min()) < -2 ** 31 or int(arr.max()) > 2 ** 31 - 1):
        raise ValueError(f"A {what} of an integer multiplier must fit int32. Received: range "
                         f"[{int(arr.min())}, {int(arr.max())}]")
    out = np.array(arr, dtype=np.int32, order="C", copy=True)
    out.setflags(write=False)
    return out


class IntTableMultiplier(IntegerMultiplier):
    """An integer multiplier with a table: ``T[pa][pb] = f(a, b)`` for the codes' ``n``-bit
    patterns ``pa``, ``pb`` (``n`` <= 12), int32.

    Args:
      name: registry name.
      bits, signed: the codes (see :class:`approxsim.integer.IntFormat`).
      table: the ``(2^n, 2^n)`` table, or ``table_factory`` to build it at first use.
    """

    kind = "int-table"

    def __init__(self, name, bits, signed, table=None, *, table_factory=None, description: str = "",
                 references: Sequence[str] = (), source: str = "", aliases: Sequence[str] = ()):
        from approxsim.integer import MAX_TABLE_BITS as INT_TABLE_BITS
        from approxsim.integer import check_bits

        check_bits(bits, hi=INT_TABLE_BITS, what="bits of an integer table")
        if table is None and table_factory is None:
            raise ValueError(f"Integer multiplier {name!r} needs a table or a table_factory.")
        self._init_int(name, bits, signed, description, references, source, aliases)
        self._table = None if table is None else check_int_table(table, self.format)
        self._factory = table_factory

    @property
    def table(self) -> np.ndarray:
        """The int32 table, built (and cached) on first access."""
        return self._built_table(lambda t, what: check_int_table(t, self.format, what=what))

    @property
    def max_abs(self) -> int:
        return self.derived("max_abs", lambda: int(np.abs(self.table.astype(np.int64)).max()))

    def products(self, a, b):
        fmt = self.format
        return self.table[fmt.patterns(a), fmt.patterns(b)].astype(np.int64)

    @property
    def fingerprint(self) -> str:
        return self.derived("fingerprint", lambda: f"int-table-sha256:{self.format.name}:" + hashlib.sha256(
            np.ascontiguousarray(self.table, dtype="<i4").tobytes()).hexdigest()[:16])

    def _same_arithmetic(self, other) -> bool:
        return np.array_equal(self.table, other.table)


class IntDirectMultiplier(IntegerMultiplier):
    """An integer C model compiled into the kernels and called on the codes (no table; any width
    up to 16 bits).

    Attributes:
      direct: the compiled model (:class:`approxsim.direct.DirectModel` with an integer signature).
    """

    kind = "int-direct"

    def __init__(self, name, bits, signed, *, direct, description: str = "", references: Sequence[str] = (),
                 source: str = "", aliases: Sequence[str] = ()):
        self._init_int(name, bits, signed, description, references, source, aliases)
        self.direct = direct

    @property
    def max_abs(self) -> int:
        return int(self.direct.result_bound)

    def products(self, a, b):
        a, b = np.broadcast_arrays(np.asarray(a), np.asarray(b))
        out = self.direct.multiply(np.ascontiguousarray(a, dtype=np.int32), np.ascontiguousarray(b, dtype=np.int32))
        return np.asarray(out, dtype=np.int64).reshape(a.shape)

    @property
    def fingerprint(self) -> str:
        return self.direct.fingerprint

    def _same_arithmetic(self, other) -> bool:
        return self.direct == other.direct
