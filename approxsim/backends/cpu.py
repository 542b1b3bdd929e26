"""The CPU backend: C++ kernels (``approxsim._cpu``), threaded and vectorised.

Every product is the one of DESIGN.md section 1, bit for bit; sums are float32 in
an unspecified order. The kernels split work over ``$APPROXSIM_NUM_THREADS`` threads
(all cores when unset) with the GIL released, and pick AVX-512, AVX2 or portable code
at run time (``approxsim._cpu.simd_level()``). Convolutions are implicit GEMMs whose
working memory is a few packed blocks per thread, whatever the batch size.

Multipliers of kind ``"direct"`` run their own kernels (``mult.direct``).
"""

from __future__ import annotations

import numpy as np

from approxsim.backends.base import Backend

_IMPORT_ERROR = None
try:
    from approxsim import _cpu
except ImportError as e:  # the extension was not built
    _cpu = None
    _IMPORT_ERROR = e


def status():
    """``(usable, reason)``: whether the C++ extension is importable."""
    if _cpu is None:
        return False, (f"the C++ extension approxsim._cpu is not built ({_IMPORT_ERROR}); "
                       "reinstall with `pip install .` and a C++17 compiler")
    return True, f"C++ extension, SIMD {_cpu.simd_level()}, {_cpu.num_threads()} threads"


def create():
    return CpuBackend()


def _table(mult):
    """The multiplier's table prepared for the kernels (cached on the multiplier)."""
    if mult.kind == "exact":
        return mult.derived("cpu_table", lambda: _cpu.prepare_table(None, 0))
    return mult.derived("cpu_table", lambda: _cpu.prepare_table(mult.table, mult.mantissa_bits))


def _geometry(geom):
    return [geom.n, geom.h, geom.w, geom.c, geom.kh, geom.kw, geom.cout, geom.groups, geom.sh, geom.sw,
            geom.dh, geom.dw, geom.pad_top, geom.pad_bottom, geom.pad_left, geom.pad_right, geom.oh, geom.ow]


class CpuBackend(Backend):
    """C++ kernels; see the module docstring."""

    name = "cpu"

    def matmul(self, a, b, mult, *, transpose_a=False, transpose_b=False):
        if mult.kind == "direct":
            return mult.direct.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)
        a = self.asarray(a, "a")
        b = self.asarray(b, "b")
        if a.ndim < 2 or b.ndim < 2:
            raise ValueError(f"matmul operands must be at least 2-D. Received: a shape={a.shape}, b shape={b.shape}")
        try:
            batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        except ValueError:
            raise ValueError(f"matmul batch dimensions do not broadcast. Received: a shape={a.shape}, "
                             f"b shape={b.shape}") from None
        # Which stored matrix each output batch entry uses (broadcast without copies).
        a_index = np.broadcast_to(np.arange(int(np.prod(a.shape[:-2], dtype=np.int64))).reshape(a.shape[:-2]),
                                  batch).ravel()
        b_index = np.broadcast_to(np.arange(int(np.prod(b.shape[:-2], dtype=np.int64))).reshape(b.shape[:-2]),
                                  batch).ravel()
        a3 = a.reshape((int(np.prod(a.shape[:-2], dtype=np.int64)),) + a.shape[-2:])
        b3 = b.reshape((int(np.prod(b.shape[:-2], dtype=np.int64)),) + b.shape[-2:])
        out = _cpu.matmul(a3, b3, _table(mult), bool(transpose_a), bool(transpose_b),
                          a_index.astype(np.int64), b_index.astype(np.int64))
        return out.reshape(tuple(batch) + out.shape[-2:])

    def conv2d(self, x, w, geom, mult):
        if mult.kind == "direct":
            return mult.direct.conv2d(x, w, geom)
        return _cpu.conv2d(self.asarray(x, "x"), self.asarray(w, "w"), _geometry(geom), _table(mult))

    def conv2d_input_grad(self, dy, w, geom, mult):
        if mult.kind == "direct":
            return mult.direct.conv2d_input_grad(dy, w, geom)
        return _cpu.conv2d_input_grad(self.asarray(dy, "dy"), self.asarray(w, "w"), _geometry(geom), _table(mult))

    def conv2d_filter_grad(self, x, dy, geom, mult):
        if mult.kind == "direct":
            return mult.direct.conv2d_filter_grad(x, dy, geom)
        return _cpu.conv2d_filter_grad(self.asarray(x, "x"), self.asarray(dy, "dy"), _geometry(geom), _table(mult))
