"""More built-in multipliers (the analysis issue's library: trunc{M}, lmul{M}, zeros, ...).

:func:`builtins` returns the Multiplier objects the registry adds after fp32, bf16,
mbm{M} and mitchell{M}.
"""


def builtins():
    return []
