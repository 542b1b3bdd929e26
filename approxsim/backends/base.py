"""The interface every backend implements.

A backend receives validated, normalised arguments from :mod:`approxsim.functional`:
float32 arrays in TF's layouts (activations NHWC, filters HWIO with
``I = C / groups``, matrices ``(..., rows, cols)``), a
:class:`~approxsim.geometry.ConvGeometry`, and a :class:`~approxsim.Multiplier`
whose ``table`` is ``None`` for the exact product.

Operand order (DESIGN.md section 1): forward ``T[x][w]``; input gradient
``T[dy][w]``; filter gradient ``T[x][dy]``; ``matmul(a, b)`` looks up ``T[a][b]``.
"""

from __future__ import annotations

import numpy as np


class Backend:
    """Base class: NumPy-array input handling shared by the host backends."""

    name = "base"

    def asarray(self, x, arg: str):
        """``x`` as a C-contiguous float32 host array; other real dtypes are converted."""
        if hasattr(x, "__cuda_array_interface__"):
            import cupy  # only present when the input is a CuPy array

            x = cupy.asnumpy(x)
        arr = np.asarray(x)
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
                or arr.dtype == np.bool_):
            raise TypeError(f"`{arg}` must hold real numbers (converted to float32). "
                            f"Received: {arg}.dtype={arr.dtype}")
        return np.ascontiguousarray(arr, dtype=np.float32)

    def matmul(self, a, b, mult, *, transpose_a=False, transpose_b=False):  # pragma: no cover - interface
        raise NotImplementedError

    def conv2d(self, x, w, geom, mult):  # pragma: no cover - interface
        raise NotImplementedError

    def conv2d_input_grad(self, dy, w, geom, mult):  # pragma: no cover - interface
        raise NotImplementedError

    def conv2d_filter_grad(self, x, dy, geom, mult):  # pragma: no cover - interface
        raise NotImplementedError
