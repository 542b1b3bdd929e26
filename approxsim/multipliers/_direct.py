"""Built-in direct multipliers (full-width models run inside the kernels: mbm23, ...).

:func:`builtins` returns the Multiplier objects (``kind == "direct"``) the registry adds:

* ``mbm23``: the full-precision minimally biased multiplier (``multipliers/mbm_full.c``);
* ``mitchell23``: full-precision Mitchell (``multipliers/mitchell_full.c``);
* ``fp32_trunc12`` .. ``fp32_trunc23``: operands and product truncated to ``M`` bits
  (``multipliers/fp32_trunc.c``).

Their sources are compiled at first use (see :class:`approxsim.direct.DirectModel`).
"""

from __future__ import annotations

from approxsim.multiplier import Multiplier

_FIRST_TRUNC_BITS = 12


def _direct(name, file, function, m, description, references, aliases=()):
    from approxsim.direct import DirectModel
    from approxsim.multipliers._builtin import builtin_source_dir

    model = DirectModel(builtin_source_dir() / file, function=function, mantissa_bits=m, name=name)
    return Multiplier(name, m, description=description, references=references, aliases=aliases,
                      source=f"builtin:{file}:{function}", direct=model)


def builtins():
    """The direct built-ins, in the order ``approxsim multipliers`` lists them."""
    from approxsim.multipliers._builtin import APPROXTRAIN_REF, MBM_REF, MITCHELL_REF

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
