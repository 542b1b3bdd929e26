"""The GPU half of direct multipliers and integer tables: their kernels compiled by NVRTC
through CuPy (the sources come from :mod:`approxsim.direct.cuda_source`), launched on CuPy arrays."""

from __future__ import annotations

from approxsim.direct.cuda_source import (INT_TABLE_SYMBOL, NVRTC_OPTIONS, explain_nvrtc_log,
                                          generate_int_table_source, generate_source)
from approxsim.errors import CompileError

__all__ = ["CudaKernels", "IntTableCudaKernels"]


class CudaKernels:
    """A direct model's kernels compiled by NVRTC through CuPy, with launchers on CuPy arrays."""

    _THREADS = 256

    def __init__(self, model):
        self._start(model, getattr(model, "format", None) is not None, "Direct multipliers")
        self._compile(generate_source(model), f"{model.function}() in {model.path.name}")

    def _start(self, model, integer: bool, what: str) -> None:
        """CuPy, and the operand and result types: int32 codes and int64 sums, or float32."""
        try:
            import cupy
        except ImportError as e:
            raise CompileError(f"{what} on the GPU need CuPy with NVRTC: pip install "
                               "'approxsim[cuda12]' or 'approxsim[cuda13]'.") from e
        self._cp = cupy
        self.model = model
        self._in = cupy.int32 if integer else cupy.float32
        self._out = cupy.int64 if integer else cupy.float32

    def _compile(self, source: str, label: str) -> None:
        cupy = self._cp
        try:
            self.module = cupy.RawModule(code=source, options=NVRTC_OPTIONS, backend="nvrtc")
            self.module.compile()
        except cupy.cuda.compiler.CompileException as e:
            raise explain_nvrtc_log(str(e), label) from None

    def _launch(self, name, items, *args):
        if items <= 0:
            return
        blocks = int(min((items + self._THREADS - 1) // self._THREADS, 65535 * 32))
        self.module.get_function(name)((blocks,), (self._THREADS,), args)

    def _f32(self, x):  # the operand type: float32, or int32 codes for integer models
        return self._cp.ascontiguousarray(self._cp.asarray(x, dtype=self._in))

    def multiply(self, a, b):
        cp = self._cp
        a, b = cp.broadcast_arrays(self._f32(a), self._f32(b))
        a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
        out = cp.empty(a.shape, dtype=self._out)
        self._launch("approxsim_direct_multiply", a.size, a, b, out, cp.int64(a.size))
        return out

    def matmul(self, a, b, *, transpose_a=False, transpose_b=False):
        from approxsim.geometry import matmul_shapes

        cp = self._cp
        a, b = self._f32(a), self._f32(b)
        batch, m, k, n = matmul_shapes(a.shape, b.shape, transpose_a, transpose_b)
        if transpose_a:
            a = cp.swapaxes(a, -1, -2)
        if transpose_b:
            b = cp.swapaxes(b, -1, -2)
        a = cp.ascontiguousarray(cp.broadcast_to(a, batch + (m, k)))
        b = cp.ascontiguousarray(cp.broadcast_to(b, batch + (k, n)))
        out = cp.empty(batch + (m, n), dtype=self._out)
        i64 = cp.int64
        self._launch("approxsim_direct_matmul", out.size, a, b, out, i64(out.size), i64(m), i64(k), i64(n),
                     i64(m * k), i64(k * n))
        return out

    @staticmethod
    def _geom(g):
        from approxsim.backends.cuda_build import geometry_struct

        return (geometry_struct(g),)  # the approxsim_geometry struct, by value

    def conv2d(self, x, w, geom):
        cp = self._cp
        x, w = self._f32(x), self._f32(w)
        out = cp.empty(geom.output_shape, dtype=self._out)
        self._launch("approxsim_direct_conv_fwd", out.size, x, w, out, cp.int64(out.size), *self._geom(geom))
        return out

    def conv2d_input_grad(self, dy, w, geom):
        cp = self._cp
        dy = self._f32(dy)
        wt = cp.ascontiguousarray(cp.swapaxes(self._f32(w), 2, 3))
        out = cp.empty(geom.input_shape, dtype=self._out)
        self._launch("approxsim_direct_conv_dgrad", out.size, dy, wt, out, cp.int64(out.size), *self._geom(geom))
        return out

    def conv2d_filter_grad(self, x, dy, geom):
        cp = self._cp
        x, dy = self._f32(x), self._f32(dy)
        out = cp.empty(geom.filter_shape, dtype=self._out)
        self._launch("approxsim_direct_conv_wgrad", out.size, x, dy, out, cp.int64(out.size), *self._geom(geom))
        return out


class IntTableCudaKernels(CudaKernels):
    """An integer table's kernels: :func:`generate_int_table_source` through NVRTC, the table in device
    memory and its address in the module's ``approxsim_int_table_``."""

    def __init__(self, multiplier):
        import numpy as np

        self._start(multiplier, True, "Integer multipliers")
        cupy = self._cp
        self._compile(generate_int_table_source(multiplier.bits), f"the table of {multiplier.name!r}")
        self.table = cupy.asarray(np.ascontiguousarray(multiplier.table, dtype=np.int32))
        address = np.array([self.table.data.ptr], dtype=np.uint64)
        self.module.get_global(INT_TABLE_SYMBOL).copy_from_host(address.ctypes.data, address.nbytes)
