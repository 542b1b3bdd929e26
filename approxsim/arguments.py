"""Checks of scalar arguments shared by the array API, the ops and the geometry: ints, flags, pairs.

Each refuses what Python would silently coerce (floats, strings, bools where an int is meant) with
an error that names the argument and what it got.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

__all__ = ["as_int", "as_bool", "pair", "MAX_EXTENT"]

MAX_EXTENT = 1 << 62  # sizes beyond this are refused: safe in the kernels' int64 arithmetic


def as_int(value, name: str) -> int:
    """An integer argument (Python or NumPy int) as ``int``; floats, bools and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"`{name}` must be an integer. Received: {name}={value!r} ({type(value).__name__})")
    return operator.index(value)


def as_bool(value, name: str) -> bool:
    """A flag: True/False (Python or NumPy bool) only; strings and numbers other than 0/1 are refused."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, numbers.Integral) and int(value) in (0, 1):
        return bool(value)
    raise TypeError(f"`{name}` must be True or False. Received: {name}={value!r}")


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair (or TF's 4-list ``[1, h, w, 1]``) as ``(h, w)`` of positive ints."""
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)):
        out = (int(value), int(value))
    else:
        try:
            seq = tuple(value)
        except TypeError:
            raise TypeError(f"`{name}` must be an int or a pair of ints (h, w). Received: {name}={value!r}") from None
        if len(seq) == 4 and seq[0] == 1 and seq[3] == 1:
            seq = seq[1:3]
        if len(seq) == 1:
            seq = seq * 2
        if len(seq) != 2:
            raise ValueError(f"`{name}` must be an int or a pair (h, w). Received: {name}={value!r}")
        out = tuple(as_int(v, name) for v in seq)
    if any(v < 1 for v in out):
        raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
    if any(v >= MAX_EXTENT for v in out):
        raise ValueError(f"`{name}` is too large (at most 2^62). Received: {name}={value!r}")
    return out
