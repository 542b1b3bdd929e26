"""Multipliers: one type per kind of arithmetic.

* :class:`ExactMultiplier`: the exact IEEE float32 product (``fp32``); no table.
* :class:`TableMultiplier`: a ``2^M x 2^M`` float32 table indexed by the operands' top ``M``
  mantissa bits (DESIGN.md section 1).
* :class:`DirectMultiplier`: a C/C++ model compiled into the kernels and called on the real
  operands (no table; any mantissa width).
* the integer kinds, in :mod:`approxsim.int_multiplier`: integer circuits on ``n``-bit codes
  (DESIGN.md section 1b), by table (``n <= 12``) or compiled into the kernels.

Backends bind a multiplier to their kernels by its type (``Backend.bind``), so adding a
kind means adding a class here and its kernels in each backend. ``Multiplier(name, M,
table)`` still builds the right kind from its arguments.
"""

from __future__ import annotations

import hashlib
import threading
from typing import Callable, Optional, Sequence

import numpy as np

__all__ = ["Multiplier", "ExactMultiplier", "TableMultiplier", "DirectMultiplier", "MAX_TABLE_BITS",
           "check_mantissa_bits"]

MAX_TABLE_BITS = 11


def check_mantissa_bits(value, *, lo: int = 1, hi: int = MAX_TABLE_BITS, what: str = "mantissa_bits",
                        context: str = "") -> int:
    """``value`` as an int in ``[lo, hi]``; bools, floats and strings are refused with a clear error."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not lo <= int(value) <= hi:
        raise ValueError(f"{what} must be an integer from {lo} to {hi}{context}. Received: {what}={value!r}")
    return int(value)


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


def _check_name(name) -> str:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise ValueError(f"A multiplier name must be a non-empty string without spaces. Received: name={name!r}")
    return name


class Multiplier:
    """An approximate multiplier, as approxsim simulates it (the base of every kind).

    ``Multiplier(name, mantissa_bits, table)`` builds the kind its arguments describe:
    ``mantissa_bits=None`` without a table is :class:`ExactMultiplier`, a table (or
    ``table_factory``) is :class:`TableMultiplier`, ``direct=`` is :class:`DirectMultiplier`.

    Attributes:
      name: registry name, e.g. ``"mbm7"``.
      mantissa_bits: ``M``, the operand mantissa bits (``None``: full width).
      description: one line saying what the multiplier is.
      references: citations of the papers that define it.
      source: where it comes from (a C file, an ApproxTrain file, ...).
      aliases: other names that resolve to it.
      kind: ``"exact"``, ``"table"`` or ``"direct"``.
    """

    kind = "abstract"
    table = None
    direct = None
    is_integer = False  # integer codes (IntegerMultiplier) rather than float operands

    def __new__(cls, *args, **kwargs):
        if cls is Multiplier:
            return super().__new__(cls._kind_of(*args, **kwargs))
        return super().__new__(cls)

    @staticmethod
    def _kind_of(name=None, mantissa_bits=None, table=None, *, direct=None, table_factory=None, **kwargs):
        """The float kind ``Multiplier(...)`` builds from its arguments."""
        if direct is not None:
            return DirectMultiplier
        if mantissa_bits is None and table is None and table_factory is None:
            return ExactMultiplier
        return TableMultiplier

    def _init_common(self, name, description, references, source, aliases):
        self.name = _check_name(name)
        self.description = description
        self.references = tuple(references)
        self.source = source
        self.aliases = tuple(aliases)
        self._lock = threading.RLock()
        self._derived = {}

    @property
    def is_exact(self) -> bool:
        """True for the exact IEEE float32 product."""
        return False

    _table = True  # kinds with a table keep it here (None until built; see _built_table)

    @property
    def table_is_built(self) -> bool:
        """Whether nothing needs compiling or evaluating before the first product."""
        return self._table is not None

    def _built_table(self, check):
        """The table, built by the kind's ``table_factory`` on first access and validated by ``check(table,
        what)``; one build however many threads ask at once."""
        if self._table is None:
            with self._lock:
                if self._table is None:
                    self._table = check(self._factory(), f"table of {self.name!r}")
        return self._table

    def derived(self, key: str, build: Callable[[], object]):
        """A value computed once from the multiplier (a backend's own form of it) and cached here."""
        value = self._derived.get(key)
        if value is None:
            with self._lock:
                value = self._derived.get(key)
                if value is None:
                    value = self._derived[key] = build()
        return value

    def products(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        """float32 products ``a (*) b`` of same-shape float32 arrays: the NumPy oracle of this kind."""
        raise NotImplementedError

    @property
    def fingerprint(self) -> str:  # pragma: no cover - interface
        """A short digest of the arithmetic (table checksum, or model source hash)."""
        raise NotImplementedError

    def _width(self) -> str:
        return self.kind if self.mantissa_bits is None else f"M={self.mantissa_bits}, {self.kind}"

    def __repr__(self):
        return f"Multiplier({self.name!r}, {self._width()})"

    def __eq__(self, other):
        if not isinstance(other, Multiplier):
            return NotImplemented
        return (type(self) is type(other) and self.name == other.name
                and self.mantissa_bits == other.mantissa_bits and self._same_arithmetic(other))

    def _same_arithmetic(self, other) -> bool:  # pragma: no cover - interface
        raise NotImplementedError

    def __hash__(self):
        return hash((self.name, self.mantissa_bits))


class ExactMultiplier(Multiplier):
    """The exact IEEE float32 product (``fp32``): no table; kernels use plain multiply-adds."""

    kind = "exact"

    def __init__(self, name="fp32", mantissa_bits=None, table=None, *, description: str = "",
                 references: Sequence[str] = (), source: str = "", aliases: Sequence[str] = ()):
        if mantissa_bits is not None or table is not None:
            raise ValueError(
                "An exact multiplier (mantissa_bits=None) takes no table. "
                f"Pass mantissa_bits=1..{MAX_TABLE_BITS} with a table. Received: name={name!r}")
        self._init_common(name, description, references, source, aliases)
        self.mantissa_bits = None

    @property
    def is_exact(self) -> bool:
        return True

    def products(self, a, b):
        with np.errstate(all="ignore"):
            return np.multiply(a, b, dtype=np.float32)

    @property
    def fingerprint(self) -> str:
        return "ieee-fp32"

    def _same_arithmetic(self, other) -> bool:
        return True


class TableMultiplier(Multiplier):
    """A table multiplier: ``T[i][j] = model(1 + i/2^M, 1 + j/2^M)``, ``M`` in 1..11.

    Attributes:
      table: float32 ``(2**M, 2**M)``; built on first access when the multiplier comes
        from a C model (``table_factory``).
    """

    kind = "table"

    def __init__(self, name, mantissa_bits, table=None, *, description: str = "", references: Sequence[str] = (),
                 source: str = "", aliases: Sequence[str] = (),
                 table_factory: Optional[Callable[[], np.ndarray]] = None):
        if mantissa_bits is None:
            raise ValueError(
                "An exact multiplier (mantissa_bits=None) takes no table. "
                f"Pass mantissa_bits=1..{MAX_TABLE_BITS} with a table. Received: name={name!r}")
        mantissa_bits = check_mantissa_bits(mantissa_bits, context=" for a table multiplier")
        if table is None and table_factory is None:
            raise ValueError(f"Multiplier {name!r} needs a table or a table_factory.")
        self._init_common(name, description, references, source, aliases)
        self.mantissa_bits = mantissa_bits
        self._table = None if table is None else check_table(table, mantissa_bits)
        self._factory = table_factory

    @property
    def table(self) -> np.ndarray:
        """The float32 table, built (and cached) on first access."""
        return self._built_table(lambda t, what: check_table(t, self.mantissa_bits, what=what))

    @property
    def structure(self):
        """The table's structure (:func:`approxsim.structure.detect`, verified entry by entry), found once
        with the table: ``linear-sum`` tables take the CPU's lookup-free kernels."""
        from approxsim.structure import detect

        return self.derived("structure", lambda: detect(self.table))

    def products(self, a, b):
        from approxsim.product import approx_product, split_table

        split = self.derived("reference_split", lambda: split_table(self.table))
        return approx_product(a, b, self.table, self.mantissa_bits, split=split)

    @property
    def fingerprint(self) -> str:
        return self.derived("fingerprint", lambda: "table-sha256:" + hashlib.sha256(
            np.ascontiguousarray(self.table, dtype="<f4").tobytes()).hexdigest()[:16])

    def _same_arithmetic(self, other) -> bool:
        return np.array_equal(self.table.view(np.uint32), other.table.view(np.uint32))


class DirectMultiplier(Multiplier):
    """A C/C++ model compiled into the kernels and called on the real operands (no table).

    Attributes:
      direct: the compiled model (:class:`approxsim.direct.DirectModel`), whose CPU and CUDA
        kernels the backends call.
    """

    kind = "direct"

    def __init__(self, name, mantissa_bits=None, table=None, *, direct, description: str = "",
                 references: Sequence[str] = (), source: str = "", aliases: Sequence[str] = (),
                 table_factory=None):
        if table is not None or table_factory is not None:
            raise ValueError(f"A direct multiplier takes no table. Received: name={name!r}")
        if mantissa_bits is not None:
            mantissa_bits = check_mantissa_bits(mantissa_bits, hi=23, context=" (or None) for a direct multiplier")
        self._init_common(name, description, references, source, aliases)
        self.mantissa_bits = mantissa_bits
        self.direct = direct

    def products(self, a, b):
        a, b = np.broadcast_arrays(a, b)
        out = self.direct.multiply(np.ascontiguousarray(a), np.ascontiguousarray(b))
        return np.asarray(out, dtype=np.float32).reshape(a.shape)

    @property
    def fingerprint(self) -> str:
        digest = getattr(self.direct, "fingerprint", None)
        return digest if isinstance(digest, str) else f"direct:{type(self.direct).__name__}"

    def _same_arithmetic(self, other) -> bool:
        return self.direct == other.direct
