"""The :class:`Multiplier` value: a name, a mantissa width and a table."""

from __future__ import annotations

import threading
from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["Multiplier", "MAX_TABLE_BITS"]

MAX_TABLE_BITS = 11


def check_table(table, mantissa_bits: int, *, what: str = "table") -> np.ndarray:
    """Validates a table and returns it as a read-only C-contiguous float32 array."""
    arr = np.asarray(table)
    side = 1 << mantissa_bits
    if arr.shape != (side, side):
        raise ValueError(
            f"A {what} for mantissa_bits={mantissa_bits} must have shape ({side}, {side}). "
            f"Received: shape={arr.shape}")
    arr = np.array(arr, dtype=np.float32, order="C", copy=True)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise ValueError(
            f"A {what} must hold finite values; entry [{i}][{j}] is {float(arr[i, j])!r} "
            f"(operands {1 + i / side!r} and {1 + j / side!r}). Fix the model so it returns a "
            "finite product for every pair of operands in [1, 2).")
    arr.setflags(write=False)
    return arr


class Multiplier:
    """An approximate floating-point multiplier, as approxsim simulates it.

    Attributes:
      name: registry name, e.g. ``"mbm7"``.
      mantissa_bits: ``M``, the operand mantissa bits the table is indexed by
        (1..11), or ``None`` for the exact ``fp32`` product.
      table: float32 array of shape ``(2**M, 2**M)`` with
        ``table[i][j] = model(1 + i/2**M, 1 + j/2**M)``, or ``None`` for ``fp32``.
        Built on first access when the multiplier comes from a C model.
      description: one line saying what the multiplier is.
      references: citations of the papers that define it.
      source: where the table comes from (a C file, an ApproxTrain file, ...).
      aliases: other names that resolve to this multiplier.
      direct: for ``kind == "direct"`` multipliers (no table, mantissas of 12..23 bits), the
        compiled model that the kernels call on the real operands; ``None`` otherwise.
    """

    def __init__(self, name: str, mantissa_bits: Optional[int], table=None, *,
                 description: str = "", references: Sequence[str] = (), source: str = "",
                 aliases: Sequence[str] = (), table_factory: Optional[Callable[[], np.ndarray]] = None,
                 direct=None):
        if not isinstance(name, str) or not name or any(c.isspace() for c in name):
            raise ValueError(f"A multiplier name must be a non-empty string without spaces. Received: name={name!r}")
        self.direct = direct
        if direct is not None:
            if table is not None or table_factory is not None:
                raise ValueError(f"A direct multiplier takes no table. Received: name={name!r}")
            # direct (issue 8): no table, so M may be None (full width) or up to 23 bits
            if mantissa_bits is not None and (isinstance(mantissa_bits, bool)
                                              or not isinstance(mantissa_bits, (int, np.integer))
                                              or not 1 <= int(mantissa_bits) <= 23):
                raise ValueError("mantissa_bits of a direct multiplier must be None or an integer from 1 to 23. "
                                 f"Received: mantissa_bits={mantissa_bits!r}")
        elif mantissa_bits is None:
            if table is not None or table_factory is not None:
                raise ValueError(
                    "An exact multiplier (mantissa_bits=None) takes no table. "
                    f"Pass mantissa_bits=1..{MAX_TABLE_BITS} with a table. Received: name={name!r}")
        else:
            if isinstance(mantissa_bits, bool) or not isinstance(mantissa_bits, (int, np.integer)) \
                    or not 1 <= int(mantissa_bits) <= MAX_TABLE_BITS:
                raise ValueError(
                    f"mantissa_bits must be an integer from 1 to {MAX_TABLE_BITS} for a table multiplier. "
                    f"Received: mantissa_bits={mantissa_bits!r}")
            mantissa_bits = int(mantissa_bits)
            if table is None and table_factory is None:
                raise ValueError(f"Multiplier {name!r} needs a table or a table_factory.")
        self.name = name
        self.mantissa_bits = None if mantissa_bits is None else int(mantissa_bits)
        self.description = description
        self.references = tuple(references)
        self.source = source
        self.aliases = tuple(aliases)
        self._table = None if table is None else check_table(table, mantissa_bits)
        self._factory = table_factory
        self._lock = threading.RLock()
        self._derived = {}

    @property
    def kind(self) -> str:
        """``"exact"`` (IEEE float32 product), ``"table"`` (LUT) or ``"direct"`` (model run in the kernels)."""
        if self.direct is not None:
            return "direct"
        return "exact" if self.mantissa_bits is None else "table"

    @property
    def is_exact(self) -> bool:
        """True for the exact IEEE float32 product (no table)."""
        return self.kind == "exact"

    @property
    def table(self) -> Optional[np.ndarray]:
        """The float32 table, built (and cached) on first access."""
        if self._table is None and self._factory is not None:
            with self._lock:
                if self._table is None:
                    self._table = check_table(self._factory(), self.mantissa_bits,
                                              what=f"table of {self.name!r}")
        return self._table

    def derived(self, key: str, build: Callable[[], object]):
        """A value computed once from the table (a backend's own form of it) and cached here."""
        value = self._derived.get(key)
        if value is None:
            with self._lock:
                value = self._derived.get(key)
                if value is None:
                    value = self._derived[key] = build()
        return value

    @property
    def table_is_built(self) -> bool:
        """Whether the table is in memory (no compiler will run to read it)."""
        return self._table is not None or self.mantissa_bits is None

    def __repr__(self):
        m = self.kind if self.mantissa_bits is None else f"M={self.mantissa_bits}, {self.kind}"
        return f"Multiplier({self.name!r}, {m})"

    def __eq__(self, other):
        if not isinstance(other, Multiplier):
            return NotImplemented
        if self.name != other.name or self.mantissa_bits != other.mantissa_bits:
            return False
        if self.kind != other.kind:
            return False
        if self.kind == "exact":
            return True
        if self.kind == "direct":
            return self.direct == other.direct
        return np.array_equal(self.table.view(np.uint32), other.table.view(np.uint32))

    def __hash__(self):
        return hash((self.name, self.mantissa_bits))
