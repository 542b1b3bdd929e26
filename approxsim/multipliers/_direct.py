"""Built-in direct multipliers (full-width models run inside the kernels: mbm23, ...).

:func:`builtins` returns the Multiplier objects (``kind == "direct"``) the registry adds.
"""


def builtins():
    return []
