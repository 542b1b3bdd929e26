"""Tables: the operand grid, approxsim's own file format, and ApproxTrain's ``.bin`` files.

approxsim's table file is a NumPy ``.npz`` archive with a header:

* ``magic``: the string ``"approxsim-table"``;
* ``format_version``: 3 (version 1 files, without ``key`` and ``provenance``, and version 2
  files, without integer tables, still load);
* ``mantissa_bits``: ``M``;
* ``sha256``: hex digest of the little-endian float32 table bytes;
* ``name``, ``source``: free text;
* ``key``: the cache key of the model and options that made the table (``""`` if none);
* ``provenance``: JSON of what made it (function, ``M``, source file);
* ``table``: float32 ``(2**M, 2**M)``;
* integer tables (version 3): ``mantissa_bits`` 0, ``int_bits`` ``n``, ``int_signed``, and an
  int32 ``(2**n, 2**n)`` table indexed by the codes' bit patterns (DESIGN.md section 1b).

Files are written to a temporary name and renamed, so a crash never leaves a
half-written table behind.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from approxsim.errors import TableFileError
from approxsim.multiplier import MAX_TABLE_BITS, check_mantissa_bits, check_table

__all__ = ["grid_operands", "save_table", "load_table", "save_int_table", "load_int_table", "decode_approxtrain", "read_approxtrain",
           "encode_approxtrain", "atomic_write_bytes"]

MAGIC = "approxsim-table"
FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)


def grid_operands(mantissa_bits: int) -> np.ndarray:
    """The ``2**M`` operands ``1 + i/2**M`` in [1, 2) that index a table, as float32."""
    side = 1 << mantissa_bits
    return (1.0 + np.arange(side, dtype=np.float64) / side).astype(np.float32)


def _digest(table: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(table, dtype="<f4").tobytes()).hexdigest()


def atomic_write_bytes(path, data: bytes) -> None:
    """Writes ``data`` to ``path`` through a temporary file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_table(path, table, mantissa_bits: int, *, name: str = "", source: str = "", key: str = "",
               provenance=None) -> Path:
    """Saves a table in approxsim's versioned format (atomically).

    Args:
      path: destination; ``.npz`` is appended when missing.
      table: float32 array of shape ``(2**M, 2**M)``.
      mantissa_bits: ``M``, 1..11.
      name: multiplier name to record.
      source: free-text provenance to record.
      key: the cache key of what made the table (the cache checks it on load).
      provenance: a JSON-serialisable dict of what made it.

    Returns:
      The path written.

    Raises:
      ValueError: ``mantissa_bits`` outside 1..11 (or not an int), or a table of another shape.
    """
    mantissa_bits = check_mantissa_bits(mantissa_bits)
    table = check_table(table, mantissa_bits)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    buf = io.BytesIO()
    np.savez(buf, magic=np.array(MAGIC), format_version=np.array(FORMAT_VERSION),
             mantissa_bits=np.array(mantissa_bits), sha256=np.array(_digest(table)),
             name=np.array(name), source=np.array(source), key=np.array(key),
             provenance=np.array(json.dumps(provenance or {})), table=table)
    atomic_write_bytes(path, buf.getvalue())
    return path


def _read_fields(path: Path, fix: str) -> dict:
    """The arrays of an approxsim table archive, its magic and version checked."""
    if not path.is_file():
        raise TableFileError(f"Table file {str(path)!r} does not exist.")
    try:
        with np.load(path, allow_pickle=False) as z:
            if not hasattr(z, "files"):
                raise ValueError("a single array (.npy), not an archive")
            fields = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, TypeError) as e:
        raise TableFileError(
            f"Table file {str(path)!r} is truncated or not an approxsim table ({type(e).__name__}: {e}). {fix}") from None
    missing = {"magic", "format_version", "mantissa_bits", "sha256", "table"} - set(fields)
    if missing or str(fields["magic"]) != MAGIC:
        raise TableFileError(
            f"{str(path)!r} is not an approxsim table file (missing header fields: {sorted(missing) or 'magic'}). {fix}")
    version = int(fields["format_version"])
    if version not in _READABLE_VERSIONS:
        raise TableFileError(
            f"{str(path)!r} has table format version {version}; this approxsim reads versions "
            f"{', '.join(map(str, _READABLE_VERSIONS))}. Upgrade approxsim or rebuild the table.")
    return fields


def _meta(fields: dict) -> dict:
    try:
        provenance = json.loads(str(fields.get("provenance", "{}")))
    except ValueError:
        provenance = {}
    return {"name": str(fields.get("name", "")), "source": str(fields.get("source", "")),
            "key": str(fields.get("key", "")), "provenance": provenance}


def load_table(path):
    """Loads a table saved by :func:`save_table`.

    Returns:
      ``(table, mantissa_bits, meta)`` where ``meta`` holds ``name``, ``source``, ``key`` and
      ``provenance`` (a dict).

    Raises:
      TableFileError: the file is missing, truncated, corrupt, of another format
        or version, or its table has the wrong size or checksum.
    """
    path = Path(path)
    fix = "Rebuild it (approxsim register ...) or save it again with approxsim.lut.save_table()."
    fields = _read_fields(path, fix)
    if "int_bits" in fields:
        raise TableFileError(f"{str(path)!r} holds an integer table; load it with approxsim.lut.load_int_table().")
    m = int(fields["mantissa_bits"])
    table = fields["table"]
    if not 1 <= m <= MAX_TABLE_BITS:
        raise TableFileError(f"{str(path)!r} declares mantissa_bits={m}; tables have 1..{MAX_TABLE_BITS}. "
                             f"The file is damaged. {fix}")
    side = 1 << m
    if table.dtype != np.float32 or table.shape != (side, side):
        raise TableFileError(
            f"{str(path)!r} declares mantissa_bits={m} but holds a {table.dtype} table of shape "
            f"{table.shape}; expected float32 ({side}, {side}). {fix}")
    if _digest(table) != str(fields["sha256"]):
        raise TableFileError(f"{str(path)!r} fails its checksum: the table is corrupt. {fix}")
    return check_table(table, m), m, _meta(fields)


def _int_digest(table: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(table, dtype="<i4").tobytes()).hexdigest()


def save_int_table(path, table, fmt, *, name: str = "", source: str = "", key: str = "", provenance=None) -> Path:
    """Saves an integer table (int32 ``(2^n, 2^n)``, DESIGN.md section 1b) atomically, in the format
    of :func:`save_table` with ``mantissa_bits = 0`` and the fields ``int_bits`` and ``int_signed``.

    Raises:
      ValueError: a table that does not fit ``fmt`` (an :class:`approxsim.integer.IntFormat`).
    """
    from approxsim.int_multiplier import check_int_table

    table = check_int_table(table, fmt)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    buf = io.BytesIO()
    np.savez(buf, magic=np.array(MAGIC), format_version=np.array(FORMAT_VERSION), mantissa_bits=np.array(0),
             int_bits=np.array(fmt.bits), int_signed=np.array(bool(fmt.signed)), sha256=np.array(_int_digest(table)),
             name=np.array(name), source=np.array(source), key=np.array(key),
             provenance=np.array(json.dumps(provenance or {})), table=table)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_int_table(path):
    """Loads a table saved by :func:`save_int_table`.

    Returns:
      ``(table, fmt, meta)``: the int32 table, its :class:`approxsim.integer.IntFormat`, and ``meta``
      as :func:`load_table`.

    Raises:
      TableFileError: the file is missing, truncated, corrupt, a float table, or fails its checksum.
    """
    from approxsim.integer import IntFormat
    from approxsim.int_multiplier import check_int_table

    path = Path(path)
    fix = "Rebuild it (approxsim register ...)."
    fields = _read_fields(path, fix)
    if "int_bits" not in fields:
        raise TableFileError(f"{str(path)!r} holds a float table, not an integer one. {fix}")
    try:
        fmt = IntFormat(int(fields["int_bits"]), bool(fields["int_signed"]))
    except (KeyError, ValueError) as e:
        raise TableFileError(f"{str(path)!r} has a damaged integer header ({e}). {fix}") from None
    table = fields["table"]
    side = 1 << fmt.bits
    if table.dtype != np.int32 or table.shape != (side, side):
        raise TableFileError(f"{str(path)!r} declares {fmt.describe()} but holds a {table.dtype} table of shape "
                             f"{table.shape}; expected int32 ({side}, {side}). {fix}")
    if _int_digest(table) != str(fields["sha256"]):
        raise TableFileError(f"{str(path)!r} fails its checksum: the table is corrupt. {fix}")
    return check_int_table(table, fmt), fmt, _meta(fields)


_BIN_M = re.compile(r"_(\d+)\.bin$", re.IGNORECASE)


def decode_approxtrain(raw: np.ndarray, mantissa_bits: int) -> np.ndarray:
    """Decodes ApproxTrain's uint8 table: bit 7 = carry, bits 0..M-1 = output mantissa.

    ``T[i][j] = (1 + mant / 2**M) * (2 if carry else 1)``, row-major, first operand outer.
    """
    raw = np.asarray(raw, dtype=np.uint8).reshape(1 << mantissa_bits, 1 << mantissa_bits)
    mant = (raw & ((1 << mantissa_bits) - 1)).astype(np.float32)
    carry = (raw >> 7) & 1
    return ((1.0 + mant / np.float32(1 << mantissa_bits)) * np.where(carry, 2.0, 1.0)).astype(np.float32)


def encode_approxtrain(table: np.ndarray, mantissa_bits: int) -> np.ndarray:
    """The inverse of :func:`decode_approxtrain` for tables in [1, 4) on the M-bit grid."""
    t = np.asarray(table, dtype=np.float64)
    carry = t >= 2.0
    sig = np.where(carry, t / 2.0, t)
    mant = (sig - 1.0) * (1 << mantissa_bits)
    if np.any(sig < 1.0) or np.any(mant != np.floor(mant)) or np.any(mant >= (1 << mantissa_bits)):
        raise ValueError("Only tables with values (1 + k/2^M) * {1, 2} can be written in ApproxTrain's format.")
    return (mant.astype(np.uint8) | (carry.astype(np.uint8) << 7)).astype(np.uint8)


def read_approxtrain(path, mantissa_bits=None) -> tuple[np.ndarray, int]:
    """Reads an ApproxTrain ``.bin`` table; ``M`` from ``_M.bin`` in the name unless given.

    Returns:
      ``(table, mantissa_bits)`` with the decoded float32 table.
    """
    path = Path(path)
    if mantissa_bits is None:
        match = _BIN_M.search(path.name)
        if not match:
            raise ValueError(
                f"Cannot tell the mantissa width of {path.name!r}: ApproxTrain files are named "
                "like MBM_7.bin. Pass mantissa_bits=M. Received: mantissa_bits=None")
        mantissa_bits = int(match.group(1))
    mantissa_bits = check_mantissa_bits(mantissa_bits)
    if not path.is_file():
        raise TableFileError(f"ApproxTrain table {str(path)!r} does not exist.")
    raw = np.fromfile(path, dtype=np.uint8)
    expected = 1 << (2 * mantissa_bits)
    if raw.size != expected:
        raise TableFileError(
            f"{str(path)!r} holds {raw.size} bytes; an ApproxTrain table with M={mantissa_bits} "
            f"holds 2^(2M) = {expected}. The file is truncated, or M is wrong.")
    return decode_approxtrain(raw, mantissa_bits), mantissa_bits
