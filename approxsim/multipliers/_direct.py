"""Built-in direct multipliers (full-width models run inside the kernels: mbm23, ...).

:func:`builtins` returns the Multiplier objects (``kind == "direct"``) the registry adds:

* ``mbm23``: the full-precision minimally biased multiplier (``multipliers/mbm_full.c``);
* ``mitchell23``: full-precision Mitchell (``multipliers/mitchell_full.c``);
* ``fp32_trunc12`` .. ``fp32_trunc23``: operands and product truncated to ``M`` bits
  (``multipliers/fp32_trunc.c``).

Their sources are compiled at first use (see :class:`approxsim.direct.DirectModel`).
"""

from __future__ import annotations

from pathlib import Path

from approxsim.multiplier import Multiplier

_FIRST_TRUNC_BITS = 12


def _direct(name, file, function, m, description, references, aliases=()):
    from approxsim.direct import DirectModel
    from approxsim.multipliers import builtin_source_dir

    model = DirectModel(builtin_source_dir() / file, function=function, mantissa_bits=m, name=name)
    return Multiplier(name, m, description=description, references=references, aliases=aliases,
                      source=f"builtin:{file}:{function}", direct=model)


def builtins():
    """The direct built-ins, in the order ``approxsim multipliers`` lists them."""
    from approxsim.multipliers import APPROXTRAIN_REF, MBM_REF, MITCHELL_REF

    ieee = "IEEE Std 754-2019, IEEE Standard for Floating-Point Arithmetic (roundTowardZero)."
    out = [
        _direct("mbm23", "mbm_full.c", "mbm23", 23,
                "minimally biased multiplier, full 23-bit mantissas, cf. ApproxTrain's FMBM32 (direct, no table)",
                (MBM_REF, APPROXTRAIN_REF)),
        _direct("mitchell23", "mitchell_full.c", "mitchell23", 23,
                "Mitchell's logarithmic multiplier, full 23-bit mantissas (direct, no table)",
                (MITCHELL_REF, APPROXTRAIN_REF)),
    ]
    for m in range(_FIRST_TRUNC_BITS, 24):
        out.append(_direct(f"fp32_trunc{m}", "fp32_trunc.c", "fp32_trunc", m,
                           f"operands and product truncated to {m}-bit mantissas (direct, no table)", (ieee,)))
    return out


# --- user direct multipliers: register_c(..., mode="direct") and their registry records ------

def _keep_source(path: Path, digest: str) -> Path:
    """Copies a model and the local headers it includes into the cache; returns the copy's path.

    The copy's digest equals the original's, so the compiled library is shared, and the
    multiplier survives the original file.
    """
    from approxsim import compile as _compile
    from approxsim.lut import atomic_write_bytes

    folder = _compile.cache_dir() / "sources" / f"direct-{digest[:24]}"
    copy = folder / path.name
    if not copy.is_file():
        data = path.read_bytes()
        for match in _compile._LOCAL_INCLUDE.finditer(data):
            rel = Path(match.group(1).decode(errors="replace"))
            header = path.parent / rel
            if header.is_file() and not rel.is_absolute() and ".." not in rel.parts:
                atomic_write_bytes(folder / rel, header.read_bytes())
        atomic_write_bytes(copy, data)
    return copy


def register_direct(path, *, function: str, mantissa_bits, name: str, description: str, references):
    """Builds a direct multiplier from a user model (compiling it now) and its registry record.

    Returns:
      ``(multiplier, record)``; the record has ``"mode": "direct"``.

    Raises:
      ValueError: ``mantissa_bits`` is not None or 1..23.
      approxsim.CompileError: the model does not compile, lacks the function, or has the wrong signature.
    """
    from approxsim.direct import DirectModel

    path = Path(path).expanduser().resolve()
    model = DirectModel(path, function=function, mantissa_bits=mantissa_bits, name=name)
    model.build()  # compile errors surface at registration, as for table models
    copy = _keep_source(path, model.source_digest)
    record = {"mode": "direct", "mantissa_bits": model.mantissa_bits, "function": function,
              "source": f"{path}:{function}", "source_copy": str(copy),
              "description": description or f"user model {function}() from {path.name} (direct, no table)",
              "references": list(references)}
    mult = from_record(name, record)
    mult.direct._lib = model._lib
    return mult, record


def from_record(name: str, rec: dict) -> Multiplier:
    """A direct Multiplier from its registry record (compiled at first use).

    Raises:
      ValueError: the kept source copy is gone (the record is then skipped).
    """
    from approxsim.direct import DirectModel

    copy = Path(rec["source_copy"])
    if not copy.is_file():
        raise ValueError(f"The source of direct multiplier {name!r} is gone from the cache ({copy}); "
                         "register it again.")
    m = rec.get("mantissa_bits")
    model = DirectModel(copy, function=rec["function"], mantissa_bits=None if m is None else int(m), name=name)
    return Multiplier(name, model.mantissa_bits, description=rec.get("description", ""),
                      references=tuple(rec.get("references", ())), source=rec.get("source", ""), direct=model)
