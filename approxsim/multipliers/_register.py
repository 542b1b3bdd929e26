"""Registering multipliers: Python objects, C/C++ models (table or direct), ApproxTrain tables.

A model registered with :func:`register_c` is recorded in the persistent registry with a kept
copy of every file it reads, so it survives its files and stays registered in later processes.
Registering a *different* model under a taken name needs ``replace=True``; the same model again
is fine (and quick: its table is cached).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from approxsim import compile as _compile
from approxsim import toolchain
from approxsim.cache import cache_dir, write_or_warn
from approxsim.errors import CompileError, ModelError, TableFileError
from approxsim.lut import load_table, read_approxtrain
from approxsim.multiplier import MAX_TABLE_BITS, Multiplier, check_mantissa_bits
from approxsim.multipliers import _registry, _store
from approxsim.multipliers._builtin import APPROXTRAIN_REF

__all__ = ["register", "unregister", "register_c", "from_approxtrain", "from_record", "restore_registry"]


def _taken(name: str, replace: bool, same) -> None:
    """Raises unless ``name`` is free, ``replace`` is set, or ``same(existing)`` says it is the same model."""
    existing = _registry._lookup(name)
    if existing is None or replace:
        return
    if existing.name != name:
        raise ValueError(f"{name!r} differs only in case from the registered multiplier {existing.name!r}; names are "
                         f"compared without regard to case. Choose another name, or pass replace=True to replace "
                         f"{existing.name!r}.")
    if not same(existing):
        raise ValueError(f"A different multiplier is registered as {name!r}. Pass replace=True (CLI: --replace) to "
                         f"replace it, or choose another name.")


def register(multiplier: Multiplier, *, replace: bool = False, overwrite: Optional[bool] = None) -> Multiplier:
    """Registers a :class:`Multiplier` in this process under its name.

    Args:
      multiplier: the multiplier.
      replace: replace a different multiplier of the same name (``overwrite`` is an alias).

    Raises:
      ValueError: the name is a built-in's (in any case) or taken by another multiplier.
    """
    if not isinstance(multiplier, Multiplier):
        raise TypeError(f"register() takes an approxsim.Multiplier. Received: {multiplier!r}")
    replace = bool(replace or overwrite)
    with _registry.lock:
        _registry._load_user(refresh=False)
        _registry.check_name(multiplier.name)
        existing = _registry._lookup(multiplier.name)
        if existing is not None and not replace:
            raise ValueError(f"A multiplier named {multiplier.name!r} is already registered. Pass replace=True "
                             "to replace it, or choose another name.")
        if existing is not None and existing.name != multiplier.name:
            _registry.remove(existing.name)
        _registry.add(multiplier)
    return multiplier


def unregister(name: str) -> None:
    """Removes a user multiplier from this process and from the persistent registry.

    Raises:
      ValueError: ``name`` is a built-in.
      RegistryError: the persistent registry is damaged (it is not touched).
    """
    with _registry.lock:
        if _registry.is_builtin(name):
            raise ValueError(f"{name!r} is built in and cannot be unregistered.")
        _registry.remove(name)
        _registry._records_in_use.pop(name, None)
        if _store.registry_file().is_file():
            _store.update_records(lambda records: records.pop(name, None))


def _table_multiplier(name: str, rec: dict, table=None) -> Multiplier:
    m = int(rec["mantissa_bits"])
    table_file = _store.from_cache_path(rec["table"])
    original = rec.get("source", "").rsplit(":", 1)[0]

    def factory():
        try:
            table, mb, meta = load_table(table_file)
            if mb == m and meta.get("key", "") == rec.get("key", meta.get("key", "")):
                return table
        except TableFileError:
            pass
        # The cached table is gone, damaged or another model's: rebuild it from the kept sources.
        copy = _store.from_cache_path(rec.get("source_copy", ""))
        if not copy.is_file():
            raise TableFileError(f"The table of {name!r} ({table_file}) is missing or damaged, and the kept copy of "
                                 f"its model ({original}) is gone from the cache too. Register it again.")
        try:
            return _compile.build_table(copy, function=rec["function"], mantissa_bits=m, name=name)[0]
        except (CompileError, ModelError) as e:
            raise type(e)(f"Rebuilding the table of {name!r} from the kept copy of {original} ({copy}) failed: {e}") \
                from None

    mult = Multiplier(name, m, description=rec.get("description", ""), references=tuple(rec.get("references", ())),
                      source=rec.get("source", ""), table_factory=factory)
    if table is not None:
        mult._table = table
    return mult


def from_record(name: str, rec: dict) -> Multiplier:
    """The Multiplier a registry record describes (its table is read or rebuilt at first use).

    Raises:
      KeyError, ValueError: a record that is incomplete (the registry skips it).
    """
    if rec.get("mode") == "direct":
        from approxsim.direct import DirectModel

        copy = _store.from_cache_path(rec["source_copy"])
        if not copy.is_file():
            raise ValueError(f"The source of direct multiplier {name!r} is gone from the cache ({copy}).")
        m = rec.get("mantissa_bits")
        model = DirectModel(copy, function=rec["function"], mantissa_bits=None if m is None else int(m), name=name)
        return Multiplier(name, model.mantissa_bits, description=rec.get("description", ""),
                          references=tuple(rec.get("references", ())), source=rec.get("source", ""), direct=model)
    if rec.get("mode") in ("int-table", "int-direct"):
        return _int_multiplier(name, rec)
    return _table_multiplier(name, rec)


def _int_multiplier(name: str, rec: dict, table=None) -> Multiplier:
    """An integer multiplier from its record: the table read (or rebuilt from the kept source) at first
    use, or the direct model compiled from the kept source."""
    from approxsim import compile_int
    from approxsim.direct.integer import IntDirectModel
    from approxsim.integer import IntFormat
    from approxsim.lut import load_int_table
    from approxsim.int_multiplier import IntDirectMultiplier, IntTableMultiplier

    fmt = IntFormat(int(rec["bits"]), bool(rec["signed"]))
    copy = _store.from_cache_path(rec.get("source_copy", ""))
    original = rec.get("source", "").rsplit(":", 1)[0]
    common = dict(description=rec.get("description", ""), references=tuple(rec.get("references", ())),
                  source=rec.get("source", ""))
    if rec["mode"] == "int-direct":
        if not copy.is_file():
            raise ValueError(f"The source of direct multiplier {name!r} is gone from the cache ({copy}).")
        sig = compile_int.parse_signature(copy, rec["function"])
        model = IntDirectModel(copy, function=rec["function"], sig=sig, fmt=fmt, name=name)
        return IntDirectMultiplier(name, fmt.bits, fmt.signed, direct=model, **common)
    table_file = _store.from_cache_path(rec["table"])

    def factory():
        try:
            table, got, meta = load_int_table(table_file)
            if got == fmt and meta.get("key", "") == rec.get("key", meta.get("key", "")):
                return table
        except TableFileError:
            pass
        if not copy.is_file():
            raise TableFileError(f"The table of {name!r} ({table_file}) is missing or damaged, and the kept copy of "
                                 f"its model ({original}) is gone from the cache too. Register it again.")
        try:
            sig = compile_int.parse_signature(copy, rec["function"])
            return compile_int.build_int_table(copy, function=rec["function"], sig=sig, fmt=fmt, name=name)[0]
        except (CompileError, ModelError) as e:
            raise type(e)(f"Rebuilding the table of {name!r} from the kept copy of {original} ({copy}) failed: {e}") \
                from None

    return IntTableMultiplier(name, fmt.bits, fmt.signed, table, table_factory=factory, **common)


def _register_int(path: Path, sig, *, function, bits, signed, mode, name, description, references, timeout,
                  replace):
    """Registers an integer model (DESIGN.md section 1b) as a table or a direct model; returns (multiplier, record)."""
    from approxsim import compile_int
    from approxsim.direct.integer import IntDirectModel
    from approxsim.integer import MAX_TABLE_BITS as INT_TABLE_BITS

    fmt = compile_int.resolve_format(sig, function, bits, signed)
    mode = mode or ("table" if fmt.bits <= INT_TABLE_BITS else "direct")
    base = {"bits": fmt.bits, "signed": fmt.signed, "function": function, "source": f"{path}:{function}",
            "signature": sig.spelled(function), "references": list(references)}
    if mode == "direct":
        model = IntDirectModel(path, function=function, sig=sig, fmt=fmt, name=name)
        with _registry.lock:
            _taken(name, replace, lambda old: getattr(old.direct, "fingerprint", None) == model.fingerprint)
        model.check(timeout=timeout)  # in a separate process: a crash, exit or hang is reported, not suffered
        model.build()
        copy = toolchain.keep_sources(path, cache_dir() / "sources" / f"int-direct-{model.source_digest[:24]}")
        record = {**base, "mode": "int-direct", "source_copy": _store.to_cache_path(copy),
                  "fingerprint": model.fingerprint,
                  "description": description or f"user integer model {function}() from {path.name} "
                                                f"({fmt.describe()}, direct, no table)"}
        mult = _int_multiplier(name, record)
        mult.direct._lib = model._lib
        return mult, record
    if fmt.bits > INT_TABLE_BITS:
        raise ValueError(f"An integer table holds at most {INT_TABLE_BITS}-bit codes; {function}() has "
                         f"{fmt.bits}-bit ones. Register it with mode=\"direct\" (CLI: --mode direct).")
    key = compile_int.int_table_key(path, function, sig, fmt, toolchain.language_of(path))
    with _registry.lock:
        _registry._load_user(refresh=True)
        _taken(name, replace, lambda old: _store.read_records().get(old.name, {}).get("key") == key)
    table, table_file = compile_int.build_int_table(path, function=function, sig=sig, fmt=fmt, timeout=timeout,
                                                    name=name)
    copy = write_or_warn(lambda: toolchain.keep_sources(path, cache_dir() / "sources" / f"int-table-{key[:24]}"),
                         what=f"the kept source of {name!r}")
    record = {**base, "mode": "int-table", "key": key, "table": _store.to_cache_path(table_file),
              "source_copy": _store.to_cache_path(copy) if copy else "",
              "description": description or f"user integer model {function}() from {path.name} ({fmt.describe()})"}
    return _int_multiplier(name, record, table), record


def _persist(name: str, record: dict) -> None:
    """Writes the record (a read-only cache: the multiplier stays registered in this process only)."""
    def write():
        _store.update_records(lambda records: records.__setitem__(name, record))

    write_or_warn(write, what=f"the registration of {name!r} (it stays registered in this process only)")


def _register_direct(path: Path, *, function, mantissa_bits, name, description, references, timeout, replace):
    from approxsim.direct import DirectModel

    model = DirectModel(path, function=function, mantissa_bits=mantissa_bits, name=name)
    with _registry.lock:
        _taken(name, replace, lambda old: getattr(old.direct, "fingerprint", None) == model.fingerprint)
    model.check(timeout=timeout)  # in a separate process: a crash, exit or hang is reported, not suffered
    model.build()
    copy = toolchain.keep_sources(path, cache_dir() / "sources" / f"direct-{model.source_digest[:24]}")
    record = {"mode": "direct", "mantissa_bits": model.mantissa_bits, "function": function,
              "source": f"{path}:{function}", "source_copy": _store.to_cache_path(copy),
              "fingerprint": model.fingerprint,
              "description": description or f"user model {function}() from {path.name} (direct, no table)",
              "references": list(references)}
    mult = from_record(name, record)
    mult.direct._lib = model._lib
    return mult, record


def register_c(path, *, function: str, mantissa_bits: Optional[int] = None, name: Optional[str] = None,
               description: str = "", references=(), timeout: float = _compile.DEFAULT_TIMEOUT,
               replace: bool = False, overwrite: Optional[bool] = None, mode: Optional[str] = None,
               bits: Optional[int] = None, signed: Optional[bool] = None) -> Multiplier:
    """Compiles a C/C++ multiplier model, builds its table and registers it persistently.

    A float model defines ``float function(float a, float b)``; an integer model one of the
    integer forms of :mod:`approxsim.compile_int` (EvoApproxLib's, e.g. ``uint16_t f(uint8_t,
    uint8_t)`` or ``uint64_t f(const uint64_t B, const uint64_t A)`` with ``bits``/``signed``).
    It is compiled with the system compiler (C for ``.c``, C++ for
    ``.cc``/``.cpp``/``.cxx``/``.inl``/``.h``), evaluated in a separate process (float: on the grid
    ``1 + i/2^M``; integer: on all pairs of codes), and the table is cached. A copy of the source
    and of every file it reads is kept in the cache, so the multiplier survives the files.

    Args:
      path: the C or C++ source file.
      function: the name of the multiplier function in the file.
      mantissa_bits: ``M``, the operand mantissa bits of the table (1..11). With ``mode="direct"``:
        ``None`` (full width) or 1..23, the value of ``APPROXSIM_MANTISSA_BITS`` the model sees.
      name: registry name; defaults to ``function``.
      description: one line for ``approxsim multipliers``.
      references: citations to keep with the multiplier.
      timeout: seconds the model may run (grid evaluation, or the direct model's sample check).
      replace: replace a different model registered under the same name (``overwrite`` is an alias).
      mode: ``"table"`` (evaluate the model on the grid once) or ``"direct"`` (no table: the model is
        compiled into the kernels and called on the real operands; see :class:`approxsim.direct.DirectModel`).
        ``None``: a table, except for integer models wider than 12 bits (direct).
      bits: the code width of an integer model (2..16), where the prototype does not say it
        (``uint64_t`` form) or to narrow it (a 12-bit circuit in ``uint16_t`` parameters).
      signed: the codes' signedness of an integer model; ``True`` with unsigned parameter types is
        a signed circuit that takes and returns bit patterns.

    Returns:
      The registered :class:`Multiplier`, with its table built (or, direct, its CPU kernels).

    Raises:
      approxsim.CompileError: the file does not compile, lacks ``function``, or has the wrong signature.
      approxsim.ModelError: the model crashes, exits, hangs or returns NaN/Inf on the grid.
      ValueError: a bad name, a name taken by another model (without ``replace``), bad options.
      approxsim.RegistryError: the persistent registry is damaged (nothing is written).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Multiplier source {str(path)!r} does not exist. Received: path={str(path)!r}")
    path = path.resolve()
    if mode not in (None, "table", "direct"):
        raise ValueError(f'mode must be "table" or "direct". Received: mode={mode!r}')
    if not isinstance(function, str) or not function.isidentifier():
        raise ValueError(f"function must be a C identifier. Received: function={function!r}")
    timeout = toolchain.check_timeout(timeout)
    replace = bool(replace or overwrite)
    name = _registry.check_name(name or function)
    _store.read_records()  # a damaged registry stops here, before any work (and is never overwritten)
    from approxsim import compile_int

    sig = compile_int.parse_signature(path, function)
    if sig is None and (bits is not None or signed is not None):
        raise ValueError(f"bits= and signed= are for integer models; {function}() in {path.name} is a float model "
                         f"(float {function}(float, float)). Pass mantissa_bits= instead.")
    if sig is not None and mantissa_bits is not None:
        raise ValueError(f"{function}() in {path.name} is an integer model ({sig.spelled(function)}): it takes bits= "
                         f"and signed=, not mantissa_bits=. Received: mantissa_bits={mantissa_bits!r}")
    if sig is not None:
        mult, record = _register_int(path, sig, function=function, bits=bits, signed=signed, mode=mode, name=name,
                                     description=description, references=references, timeout=timeout,
                                     replace=replace)
    elif mode == "direct":
        mult, record = _register_direct(path, function=function, mantissa_bits=mantissa_bits, name=name,
                                        description=description, references=references, timeout=timeout,
                                        replace=replace)
    else:
        if mantissa_bits is None:
            raise ValueError(f"A table multiplier needs mantissa_bits=1..{MAX_TABLE_BITS}; pass mode=\"direct\" for "
                             "a full-width model without a table. Received: mantissa_bits=None")
        mantissa_bits = check_mantissa_bits(mantissa_bits)
        key = _compile.table_key(path, function, mantissa_bits, toolchain.language_of(path))
        with _registry.lock:
            _registry._load_user(refresh=True)
            _taken(name, replace, lambda old: _store.read_records().get(old.name, {}).get("key") == key)
        table, table_file = _compile.build_table(path, function=function, mantissa_bits=mantissa_bits,
                                                 timeout=timeout, name=name)
        copy = write_or_warn(lambda: toolchain.keep_sources(path, cache_dir() / "sources" / f"table-{key[:24]}"),
                             what=f"the kept source of {name!r}")
        record = {"mode": "table", "mantissa_bits": mantissa_bits, "function": function, "key": key,
                  "table": _store.to_cache_path(table_file), "source": f"{path}:{function}",
                  "source_copy": _store.to_cache_path(copy) if copy else "",
                  "description": description or f"user model {function}() from {path.name}",
                  "references": list(references)}
        mult = _table_multiplier(name, record, table)
    with _registry.lock:
        existing = _registry._lookup(name)
        if existing is not None and existing.name != name:
            _registry.remove(existing.name)
        _persist(name, record)
        _registry.add(mult)
        _registry.note_record(name, record)
    return mult


def from_approxtrain(path, *, mantissa_bits: Optional[int] = None, name: Optional[str] = None) -> Multiplier:
    """Imports an ApproxTrain ``.bin`` table as a :class:`Multiplier` (not registered).

    Args:
      path: the ``.bin`` file (raw uint8, ``2^(2M)`` entries).
      mantissa_bits: ``M``; taken from ``_M.bin`` in the file name when omitted.
      name: the multiplier's name; defaults to ``approxtrain_<stem>``.

    Raises:
      approxsim.TableFileError: the file is missing or has the wrong size for ``M``.
      ValueError: ``mantissa_bits`` is not an integer from 1 to 11.
    """
    table, m = read_approxtrain(path, mantissa_bits)
    stem = Path(path).stem
    return Multiplier(name or f"approxtrain_{stem}", m, table, description=f"ApproxTrain table {Path(path).name}",
                      references=(APPROXTRAIN_REF,), source=f"approxtrain:{Path(path).resolve()}")


def restore_registry() -> Path:
    """Puts back the last good copy of a damaged registry (the damaged file is kept; its path is returned).

    Raises:
      approxsim.RegistryError: there is no readable backup.
    """
    kept = _store.restore_backup()
    with _registry.lock:
        _registry._load_user(refresh=True)
    return kept
