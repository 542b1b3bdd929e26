"""The CUDA backend: CuPy ``RawModule`` kernels (``cuda/*.cu``) compiled by NVRTC at first use.

The only module of approxsim that imports CuPy (sources, options and table placement are in
:mod:`approxsim.backends.cuda_build`). Kernels (see ``cuda/approxsim_tile.cuh``): a
shared-memory-tiled, register-blocked contraction with split-K, instantiated for batched
``matmul`` and for implicit-GEMM ``conv2d`` forward, input gradient and filter gradient (no
im2col buffer in global memory). Per product, the fast path costs an address add, a table
load, an FMUL and an FFMA (``T[i][j] * (2^Ea * 2^Eb)``); each k-tile takes it when the exponent
ranges of its operands make it exact (the predicate of ``csrc/approx_product.h`` that the CPU
kernels use too), else an exact path that applies the header's special cases.

Inputs and outputs: NumPy or CuPy arrays. If any array input is a CuPy array the result is a
CuPy array on the same device (nothing is copied back); NumPy inputs give a NumPy result
(uploaded, computed, downloaded). All kernels of one call run on CuPy's current stream with no
synchronisation between launches; only the NumPy download waits for them.
"""

from __future__ import annotations

import numpy as np

from approxsim.backends import cuda_build
from approxsim.backends.base import Backend, IntegerKernels, Kernels
from approxsim.backends.cuda_build import geometry_struct, table_plan
from approxsim.errors import BackendUnavailableError
from approxsim.int_multiplier import IntegerMultiplier
from approxsim.multiplier import DirectMultiplier, ExactMultiplier, TableMultiplier

_INSTALL = "pip install 'approxsim[cuda12]' (CUDA 12 driver) or 'approxsim[cuda13]' (CUDA 13 driver)"
_BK = 8
_SIZES = {"L": 128, "S": 64}
_RANGE_BYTES = 32  # the k-tile exponent ranges in shared memory (APPROXSIM_RANGE_WORDS ints)
_I32_MAX = 2**31 - 1
_DEFAULT_SMEM = 48 * 1024  # dynamic shared memory a kernel may use without opting in
_status = None


def status():
    """``(usable, reason)``: CuPy importable, a GPU visible, NVRTC loadable."""
    global _status
    if _status is None:
        _status = _probe()
    return _status


def _probe():
    try:
        import cupy
    except ImportError as e:
        return False, f"CuPy is not installed ({e}); install it with NVRTC: {_INSTALL}"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as e:  # CUDARuntimeError: no driver, no device
        return False, f"no usable CUDA GPU: {e}"
    if count < 1:
        return False, "no CUDA GPU is visible (check CUDA_VISIBLE_DEVICES and the driver)"
    try:
        version = cupy.cuda.nvrtc.getVersion()
    except Exception as e:
        return False, (f"NVRTC (the CUDA runtime compiler) cannot be loaded ({e}); CuPy wheels do not ship it: "
                       f"{_INSTALL}")
    name = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)["name"]
    name = name.decode() if isinstance(name, bytes) else name
    return True, f"CuPy {cupy.__version__}, NVRTC {version[0]}.{version[1]}, {name}"


def create():
    ok, reason = status()
    if not ok:
        raise BackendUnavailableError(f"Backend 'cuda' is not usable here: {reason}")
    return CudaBackend()


def _function(filename: str, name: str, variant: str):
    """A compiled kernel (the tests replace this with an emulation)."""
    return cuda_build.get_function(filename, name, variant)


class CudaTableKernels(Kernels):
    """Table and exact (fp32) multipliers: the tiled kernels of ``cuda/*.cu``."""

    def _table(self):
        plan = table_plan(self.multiplier)
        be = self.backend
        dev = be._cp.cuda.Device().id
        if plan.host_table is None:
            table = be._dummy.get(dev)
            if table is None:
                table = be._dummy[dev] = be._cp.zeros(1, dtype=be._cp.uint32)
        else:
            table = self.multiplier.derived(f"cuda_table_{dev}", lambda: be._cp.asarray(plan.host_table))
        return plan, table

    def _launch(self, filename, op, rows, cols, k, nz, ptrs, tail, out):
        """Runs ``approxsim_<op>`` into ``out`` (zeroed here when split-K adds partial sums).

        The kernel's parameters are ``ptrs(z0) + (table, M, t_emin, t_emax) + tail + (splits, k_chunk)``,
        where ``z0`` is the first batch of the launch (grid z holds at most 65535 batches x splits).
        """
        for what, v in (("rows", rows), ("columns", cols), ("reduction length", k)):
            if v > _I32_MAX:
                raise ValueError(f"This {op} is too large for the CUDA kernels: its {what} ({v}) exceed 2^31 - 1. "
                                 f"Split it into smaller calls. Received: {what}={v}")
        cp = self.backend._cp
        plan, table = self._table()
        sms = cp.cuda.Device().attributes["MultiProcessorCount"]
        size = "L" if cols > 64 and rows > 64 else "S"
        bm = _SIZES[size]
        blocks = -(-rows // bm) * -(-cols // bm) * nz
        if size == "L" and blocks < 2 * sms:
            size, bm = "S", 64
            blocks = -(-rows // bm) * -(-cols // bm) * nz
        splits = 1
        if blocks < 2 * sms and k >= 1024:
            splits = int(min(-(-2 * sms // blocks), k // 512, 65535 // nz))
            splits = max(splits, 1)
        k_chunk = -(-k // splits)
        k_chunk = -(-k_chunk // _BK) * _BK
        splits = -(-k // k_chunk)
        if splits > 1:
            out.fill(0)
        pack_bytes = 4 if plan.variant in ("fp32", "gen") else 8
        smem = _RANGE_BYTES + _BK * 2 * bm * pack_bytes + plan.shared_bytes
        fn = _function(filename, f"approxsim_{op}_{plan.variant}_{size}", plan.variant)
        if smem > _DEFAULT_SMEM:  # e.g. an M = 7 table in shared memory beside 128 x 128 tiles: opt in
            fn.max_dynamic_shared_size_bytes = smem
        grid_x, grid_y = -(-rows // bm), -(-cols // bm)
        if grid_y > 65535:
            raise ValueError(f"Too many output columns for one {op} launch. Received: columns={cols}")
        step = 65535 // splits
        m = np.int32(self.multiplier.mantissa_bits or 0)
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            args = tuple(ptrs(z0)) + (table, m, np.int32(plan.emin), np.int32(plan.emax)) + tuple(tail)
            fn((grid_x, grid_y, (z1 - z0) * splits), (256,), args + (np.int32(splits), np.int32(k_chunk)),
               shared_mem=smem)
        return out

    def _matmul(self, a, b, shape, out):
        cp = self.backend._cp
        batch, m, k, n = shape

        def flat(x):
            lead = x.shape[:-2]
            if int(np.prod(lead, dtype=np.int64)) == 1:
                return x.reshape(x.shape[-2:]), 0
            if tuple((1,) * (len(batch) - len(lead)) + lead) != tuple(batch):
                x = cp.ascontiguousarray(cp.broadcast_to(x, tuple(batch) + x.shape[-2:]))
            return x, x.shape[-1] * x.shape[-2]

        a, a_bs = flat(a)
        b, b_bs = flat(b)
        a_rs, a_ks = (1, m) if shape.transpose_a else (k, 1)
        b_ks, b_cs = (1, k) if shape.transpose_b else (n, 1)
        if out is None:
            out = cp.empty(shape.output_shape, dtype=cp.float32)
        a1, b1, o1 = a.ravel(), b.ravel(), out.reshape(-1)

        def ptrs(z0):  # batch z0 onwards (launches hold at most 65535 batches)
            return a1[z0 * a_bs:], b1[z0 * b_bs:], o1[z0 * m * n:]

        i64 = np.int64
        tail = (np.int32(m), np.int32(n), np.int32(k), i64(a_bs), i64(a_rs), i64(a_ks), i64(b_bs), i64(b_ks),
                i64(b_cs))
        return self._launch("gemm.cu", "gemm", m, n, k, shape.batch_size, ptrs, tail, out)

    def _launch_conv(self, op, p0, p1, geom, out_shape, rows, cols, k, out):
        cp = self.backend._cp
        if out is None:
            out = cp.empty(out_shape, dtype=cp.float32)
        if geom.max_extent() > _I32_MAX:
            raise ValueError(f"This convolution is too large for the CUDA kernels (32-bit indices): it reaches "
                             f"{geom.max_extent()} elements or positions. Split the batch, or use backend='cpu'.")
        if geom.groups > 65535:
            raise ValueError(f"The CUDA kernels take at most 65535 groups. Received: groups={geom.groups}")
        return self._launch("conv.cu", op, rows, cols, k, geom.groups, lambda z0: (p0, p1, out),
                            (geometry_struct(geom),), out)

    def _conv2d(self, x, w, g, out):
        return self._launch_conv("conv_fwd", x, w, g, g.output_shape, g.n * g.oh * g.ow, g.cout_per_group,
                          g.kh * g.kw * g.cin_per_group, out)

    def _conv2d_input_grad(self, dy, w, g, out):
        return self._launch_conv("conv_dgrad", dy, w, g, g.input_shape, g.n * g.h * g.w, g.cin_per_group,
                          g.kh * g.kw * g.cout_per_group, out)

    def _conv2d_filter_grad(self, x, dy, g, out):
        return self._launch_conv("conv_wgrad", x, dy, g, g.filter_shape, g.kh * g.kw * g.cin_per_group,
                          g.cout_per_group, g.n * g.oh * g.ow, out)

    def _multiply(self, a, b):
        be = self.backend
        mult = self.multiplier
        out = be._cp.empty(a.shape, dtype=be._cp.float32)
        if mult.is_exact:
            entries = be._cp.zeros(1, dtype=be._cp.uint32)
        else:
            entries = mult.derived(f"cuda_entries_{be._cp.cuda.Device().id}",
                                   lambda: be._cp.asarray(cuda_build.split_entries(mult.table)))
        count = a.size
        blocks = int(min(-(-count // 256), 65535 * 32))
        fn = _function("multiply.cu", "approxsim_multiply", "gen")
        fn((blocks,), (256,), (a, b, out, entries, np.int32(mult.mantissa_bits or 0), np.int64(count)))
        return out


class CudaDirectKernels(Kernels):
    """Direct multipliers: the model's NVRTC-compiled kernels (``multiplier.direct.cuda_*``)."""

    def _model(self, op, *args, **kwargs):
        fn = getattr(self.multiplier.direct, f"cuda_{op}", None)
        if fn is None:
            raise NotImplementedError(
                f"Multiplier {self.multiplier.name!r} is a direct model and its model provides no CUDA {op} "
                f"(`cuda_{op}`). Use backend='cpu' for it. Received: multiplier={self.multiplier.name!r}")
        return fn(*args, **kwargs)

    def _multiply(self, a, b):
        return self._model("multiply", a, b)

    def _matmul(self, a, b, shape, out):
        return self._model("matmul", a, b, transpose_a=shape.transpose_a, transpose_b=shape.transpose_b)

    def _conv2d(self, x, w, geom, out):
        return self._model("conv2d", x, w, geom)

    def _conv2d_input_grad(self, dy, w, geom, out):
        return self._model("conv2d_input_grad", dy, w, geom)

    def _conv2d_filter_grad(self, x, dy, geom, out):
        return self._model("conv2d_filter_grad", x, dy, geom)


class CudaIntKernels(IntegerKernels):
    """Integer multipliers: the direct kernels (``csrc/direct_cuda.h``, integer types, exact int64 sums)
    with the model compiled in (integer direct models) or a lookup in the table in device memory
    (integer tables, :class:`approxsim.direct.cuda.IntTableCudaKernels`). Operands are checked as
    codes where they are (a CuPy array on the GPU)."""

    def operand(self, x, arg: str):
        return self.multiplier.format.check_codes(x, arg, xp=self.backend._cp)

    def _kernels(self):
        mult = self.multiplier
        if mult.kind == "int-direct":
            return mult.direct._gpu()
        from approxsim.direct.cuda import IntTableCudaKernels

        dev = self.backend._cp.cuda.runtime.getDevice()
        return mult.derived(f"cuda_int_kernels_{dev}", lambda: IntTableCudaKernels(mult))

    def _multiply(self, a, b):
        return self._kernels().multiply(a, b).astype(self.result_dtype(1), copy=False)

    def _matmul(self, a, b, shape, out):
        res = self._kernels().matmul(a, b, transpose_a=shape.transpose_a, transpose_b=shape.transpose_b)
        return res.astype(self.result_dtype(shape.k), copy=False)

    def _conv2d(self, x, w, geom, out):
        res = self._kernels().conv2d(x, w, geom)
        return res.astype(self.result_dtype(geom.kh * geom.kw * geom.cin_per_group), copy=False)

    def _conv2d_input_grad(self, dy, w, geom, out):
        res = self._kernels().conv2d_input_grad(dy, w, geom)
        return res.astype(self.result_dtype(geom.kh * geom.kw * geom.cout_per_group), copy=False)

    def _conv2d_filter_grad(self, x, dy, geom, out):
        res = self._kernels().conv2d_filter_grad(x, dy, geom)
        return res.astype(self.result_dtype(geom.n * geom.oh * geom.ow), copy=False)


class CudaBackend(Backend):
    """Arrays on the GPU; see the module docstring."""

    name = "cuda"
    KERNELS = {ExactMultiplier: CudaTableKernels, TableMultiplier: CudaTableKernels,
               DirectMultiplier: CudaDirectKernels, IntegerMultiplier: CudaIntKernels}

    def __init__(self):
        import cupy

        self._cp = cupy
        self._dummy = {}

    @property
    def array_module(self):
        return self._cp

    def asarray(self, x, arg: str):
        """The operand on the device, as C-contiguous float32 (host arrays are uploaded)."""
        cp = self._cp
        if isinstance(x, cp.ndarray) or hasattr(x, "__cuda_array_interface__"):
            arr = cp.asarray(x)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"`{arg}` must hold real numbers (converted to float32). "
                                f"Received: {arg}.dtype={arr.dtype}")
            return cp.ascontiguousarray(arr, dtype=cp.float32)
        return cp.ascontiguousarray(cp.asarray(super().asarray(x, arg)), dtype=cp.float32)

    def result_place(self, arrays):
        """``"device"`` when any array argument is a CuPy array, else ``"host"`` (NumPy results)."""
        return "device" if any(isinstance(a, self._cp.ndarray) for a in arrays) else "host"

    def deliver(self, result, place):
        return self._cp.asnumpy(result) if place == "host" else result


# --- interop helpers for approxsim.ops.cuda (which must not import CuPy itself) ------------------

def from_dlpack(obj):
    """A CuPy view (no copy) of a DLPack producer (an object with ``__dlpack__`` and ``__dlpack_device__``)."""
    import cupy

    return cupy.from_dlpack(obj)


def device_of(array):
    """A context manager that makes ``array``'s GPU the current CuPy device."""
    return array.device


def synchronize_device():
    """Waits on the host until every stream of the current GPU (TF's included) is idle."""
    import cupy

    cupy.cuda.runtime.deviceSynchronize()


def synchronize_stream():
    """Waits on the host until the work queued on CuPy's current stream is done."""
    import cupy

    cupy.cuda.get_current_stream().synchronize()
