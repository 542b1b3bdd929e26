"""The multiplier registry: built-ins, user C/C++ models and ApproxTrain tables.

>>> from approxsim import multipliers
>>> multipliers.available()[:3]
['fp32', 'bf16', 'mbm1']
>>> multipliers.get("MBM_7").name
'mbm7'

Built-in multipliers are C files in the package (``approxsim.builtin_models``),
turned into tables by the same flow as user models (:func:`register_c`), at first
use, and cached. User multipliers registered with :func:`register_c` are recorded
in the cache folder and stay registered in later processes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Optional, Union

from approxsim import compile as _compile
from approxsim._resources import data_dir
from approxsim.errors import TableFileError, UnknownMultiplierError
from approxsim.lut import atomic_write_bytes, load_table, read_approxtrain
from approxsim.multiplier import MAX_TABLE_BITS, Multiplier

__all__ = ["Multiplier", "available", "get", "register", "unregister", "register_c", "from_approxtrain",
           "builtin_source_dir"]

MITCHELL_REF = ("J. N. Mitchell, \"Computer Multiplication and Division Using Binary Logarithms\", "
                "IRE Transactions on Electronic Computers, EC-11(4):512-517, 1962.")
MBM_REF = ("M. S. Saadat, H. Zhou, C.-S. Lee, H. Sohn, \"Minimally Biased Multipliers for Approximate "
           "Integer and Floating-Point Multiplication\", IEEE TCAD 37(11):2623-2635, 2018.")
APPROXTRAIN_REF = ("J. Gong, H. Saadat, H. Gamaarachchi, H. Javaid, X. S. Hu, S. Parameswaran, "
                   "\"ApproxTrain: Fast Simulation of Approximate Multipliers for DNN Training and "
                   "Inference\", IEEE TCAD 42(11), 2023.")
BF16_REF = ("D. Kalamkar et al., \"A Study of BFLOAT16 for Deep Learning Training\", arXiv:1905.12322, 2019.")

_lock = threading.RLock()
_registry: dict[str, Multiplier] = {}
_aliases: dict[str, str] = {}
_user_loaded = False


def builtin_source_dir() -> Path:
    """Folder holding the C sources of the built-in multipliers."""
    return data_dir("approxsim.builtin_models", "multipliers")


def _c_model(name: str, file: str, function: str, m: int, description: str, references, aliases=()):
    def factory():
        table, _ = _compile.build_table(builtin_source_dir() / file, function=function, mantissa_bits=m, name=name)
        return table

    return Multiplier(name, m, description=description, references=references, aliases=aliases,
                      source=f"builtin:{file}:{function}", table_factory=factory)


def _add(mult: Multiplier) -> None:
    _registry[mult.name] = mult
    for alias in mult.aliases:
        _aliases[alias] = mult.name


def _install_builtins() -> None:
    _add(Multiplier("fp32", None, description="exact IEEE float32 product (no table)",
                    references=("IEEE Std 754-2019, IEEE Standard for Floating-Point Arithmetic.",)))
    _add(_c_model("bf16", "bf16.c", "bf16", 7,
                  "bfloat16: truncate both operands to bf16, multiply in fp32, truncate the product to bf16",
                  (BF16_REF, APPROXTRAIN_REF), aliases=("ACC_7",)))
    for m in range(1, MAX_TABLE_BITS + 1):
        _add(_c_model(f"mbm{m}", "mbm.c", "mbm", m,
                      f"minimally biased multiplier, {m}-bit mantissas", (MBM_REF, APPROXTRAIN_REF),
                      aliases=(f"MBM_{m}",)))
    for m in range(1, MAX_TABLE_BITS + 1):
        _add(_c_model(f"mitchell{m}", "mitchell.c", "mitchell", m,
                      f"Mitchell's logarithmic multiplier, {m}-bit mantissas", (MITCHELL_REF, APPROXTRAIN_REF),
                      aliases=(f"MIT_{m}",)))
    from approxsim.multipliers import _direct, _library

    for mult in [*_library.builtins(), *_direct.builtins()]:
        _add(mult)


_install_builtins()
_BUILTIN_NAMES = frozenset(_registry)


# --- persistence of user multipliers -------------------------------------------------------

def _registry_file() -> Path:
    return _compile.cache_dir() / "registry.json"


@contextlib.contextmanager
def _file_lock():
    path = _compile.cache_dir() / ".registry.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_records() -> dict:
    path = _registry_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        return dict(data.get("multipliers", {}))
    except (OSError, ValueError, AttributeError):
        return {}


def _write_records(records: dict) -> None:
    atomic_write_bytes(_registry_file(), json.dumps({"version": 1, "multipliers": records}, indent=2).encode())


def _from_record(name: str, rec: dict) -> Multiplier:
    if rec.get("mode") == "direct":  # issue 8: a model run in the kernels, no table
        from approxsim.multipliers import _direct

        return _direct.from_record(name, rec)
    table_file = Path(rec["table"])

    def factory():
        try:
            return load_table(table_file)[0]
        except TableFileError:  # the cached table is gone or damaged: rebuild it from the kept source
            copy = Path(rec.get("source_copy", ""))
            if not copy.is_file():
                raise
            return _compile.build_table(copy, function=rec["function"], mantissa_bits=int(rec["mantissa_bits"]),
                                        name=name)[0]

    return Multiplier(name, int(rec["mantissa_bits"]), description=rec.get("description", ""),
                      references=tuple(rec.get("references", ())), source=rec.get("source", ""),
                      table_factory=factory)


def _load_user(*, refresh: bool = False) -> None:
    """Adds the persisted user multipliers; ``refresh`` re-reads records other processes wrote since."""
    global _user_loaded
    if _user_loaded and not refresh:
        return
    for name, rec in _read_records().items():
        if name not in _BUILTIN_NAMES and name not in _registry:
            try:
                _add(_from_record(name, rec))
            except (KeyError, ValueError):
                continue
    _user_loaded = True


# --- public API ----------------------------------------------------------------------------

def available() -> list[str]:
    """Names of every registered multiplier: built-ins first, then user ones (sorted)."""
    with _lock:
        _load_user(refresh=True)
        builtin = [n for n in _registry if n in _BUILTIN_NAMES]
        return builtin + sorted(n for n in _registry if n not in _BUILTIN_NAMES)


def get(name_or_multiplier: Union[str, Multiplier]) -> Multiplier:
    """The :class:`Multiplier` for a name or alias (case-insensitive); a Multiplier passes through.

    Raises:
      UnknownMultiplierError: no multiplier of that name; the message lists the available ones.
    """
    if isinstance(name_or_multiplier, Multiplier):
        return name_or_multiplier
    if not isinstance(name_or_multiplier, str):
        raise TypeError("multiplier must be a name (str) or an approxsim.Multiplier. "
                        f"Received: multiplier={name_or_multiplier!r}")
    name = name_or_multiplier
    with _lock:
        for candidate in (name, name.lower()):
            if candidate in _registry:
                return _registry[candidate]
            if candidate in _aliases:
                return _registry[_aliases[candidate]]
        _load_user(refresh=True)  # another process may have registered it since
        if name in _registry:
            return _registry[name]
        lowered = {k.lower(): v for k, v in {**_aliases, **{n: n for n in _registry}}.items()}
        if name.lower() in lowered:
            return _registry[lowered[name.lower()]]
    raise UnknownMultiplierError(
        f"Unknown multiplier {name!r}. Available: {', '.join(available())}. "
        "Register your own with approxsim.multipliers.register_c(path, function=..., mantissa_bits=...). "
        f"Received: multiplier={name!r}")


def register(multiplier: Multiplier, *, overwrite: bool = False) -> Multiplier:
    """Registers a :class:`Multiplier` in this process under its name.

    Raises:
      ValueError: the name is a built-in's, or taken and ``overwrite`` is False.
    """
    if not isinstance(multiplier, Multiplier):
        raise TypeError(f"register() takes an approxsim.Multiplier. Received: {multiplier!r}")
    with _lock:
        _load_user()
        name = multiplier.name
        if name in _BUILTIN_NAMES or name in _aliases:
            raise ValueError(f"{name!r} is a built-in multiplier's name; choose another name.")
        if name in _registry and not overwrite:
            raise ValueError(f"A multiplier named {name!r} is already registered. Pass overwrite=True "
                             "to replace it, or choose another name.")
        _add(multiplier)
    return multiplier


def unregister(name: str) -> None:
    """Removes a user multiplier from this process and from the persistent registry."""
    with _lock:
        if name in _BUILTIN_NAMES:
            raise ValueError(f"{name!r} is built in and cannot be unregistered.")
        _load_user()
        _registry.pop(name, None)
        with _file_lock():
            records = _read_records()
            if records.pop(name, None) is not None:
                _write_records(records)


def register_c(path, *, function: str, mantissa_bits: Optional[int] = None, name: Optional[str] = None,
               description: str = "", references=(), timeout: float = _compile.DEFAULT_TIMEOUT,
               overwrite: bool = True, mode: str = "table") -> Multiplier:
    """Compiles a C/C++ multiplier model, builds its table and registers it persistently.

    The file must define ``float function(float a, float b)``. It is compiled with the
    system compiler (C for ``.c``, C++ for ``.cc``/``.cpp``/``.cxx``/``.inl``/``.h``),
    evaluated on the grid ``1 + i/2^M`` in a separate process, and the table is cached.
    A copy of the source is kept in the cache so the multiplier survives the file.

    Args:
      path: the C or C++ source file.
      function: the name of the multiplier function in the file.
      mantissa_bits: ``M``, the operand mantissa bits of the table (1..11). With
        ``mode="direct"``: ``None`` (full width) or 12..23 (any of 1..23 is accepted), the value
        of ``APPROXSIM_MANTISSA_BITS`` the model is compiled with.
      name: registry name; defaults to ``function``.
      description: one line for ``approxsim multipliers``.
      references: citations to keep with the multiplier.
      timeout: seconds the grid evaluation may take before the model counts as hung.
      overwrite: replace an earlier user multiplier of the same name.
      mode: ``"table"`` (evaluate the model on the grid once) or ``"direct"`` (no table: the
        model is compiled into the kernels and called on the real operands, so it may depend
        on the exponents; see :class:`approxsim.direct.DirectModel`).

    Returns:
      The registered :class:`Multiplier`, with its table built (or, direct, its CPU kernels).

    Raises:
      approxsim.CompileError: the file does not compile, lacks ``function``, or has the wrong signature.
      approxsim.ModelError: the model crashes, hangs or returns NaN/Inf on the grid.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Multiplier source {str(path)!r} does not exist. Received: path={str(path)!r}")
    name = name or function
    with _lock:
        _load_user()
        if name in _BUILTIN_NAMES or name in _aliases:
            raise ValueError(f"{name!r} is a built-in multiplier's name; pass another name=.")
        if name in _registry and not overwrite:
            raise ValueError(f"A multiplier named {name!r} is already registered; pass overwrite=True.")
    if mode not in ("table", "direct"):
        raise ValueError(f'mode must be "table" or "direct". Received: mode={mode!r}')
    if mode == "direct":  # issue 8
        from approxsim.multipliers import _direct

        mult, record = _direct.register_direct(path, function=function, mantissa_bits=mantissa_bits, name=name,
                                               description=description, references=references)
        with _lock:
            with _file_lock():
                records = _read_records()
                records[name] = record
                _write_records(records)
            _add(mult)
        return mult
    if mantissa_bits is None:
        raise ValueError(f"A table multiplier needs mantissa_bits=1..{MAX_TABLE_BITS}; pass mode=\"direct\" for a "
                         "full-width model without a table. Received: mantissa_bits=None")
    table, table_file = _compile.build_table(path, function=function, mantissa_bits=mantissa_bits,
                                             timeout=timeout, name=name)
    src_copy = _compile.cache_dir() / "sources" / f"{table_file.stem}{path.suffix}"
    if not src_copy.is_file():
        src_copy.parent.mkdir(parents=True, exist_ok=True)
        tmp = src_copy.with_name(src_copy.name + f".{os.getpid()}.tmp")
        shutil.copyfile(path, tmp)
        os.replace(tmp, src_copy)
    record = {"mantissa_bits": mantissa_bits, "table": str(table_file), "function": function,
              "source": f"{path.resolve()}:{function}", "source_copy": str(src_copy),
              "description": description or f"user model {function}() from {path.name}",
              "references": list(references)}
    mult = _from_record(name, record)
    mult._table = table
    with _lock:
        with _file_lock():
            records = _read_records()
            records[name] = record
            _write_records(records)
        _add(mult)
    return mult


def from_approxtrain(path, *, mantissa_bits: Optional[int] = None, name: Optional[str] = None) -> Multiplier:
    """Imports an ApproxTrain ``.bin`` table as a :class:`Multiplier` (not registered).

    Args:
      path: the ``.bin`` file (raw uint8, ``2^(2M)`` entries).
      mantissa_bits: ``M``; taken from ``_M.bin`` in the file name when omitted.
      name: the multiplier's name; defaults to ``approxtrain_<stem>``.

    Raises:
      approxsim.TableFileError: the file is missing or has the wrong size for ``M``.
    """
    table, m = read_approxtrain(path, mantissa_bits)
    stem = Path(path).stem
    return Multiplier(name or f"approxtrain_{stem}", m, table, description=f"ApproxTrain table {Path(path).name}",
                      references=(APPROXTRAIN_REF,), source=f"approxtrain:{Path(path).resolve()}")
