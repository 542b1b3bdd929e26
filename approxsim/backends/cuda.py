"""The CUDA backend: CuPy ``RawModule`` kernels (``cuda/*.cu``) compiled by NVRTC at first use.

The only module of approxsim that imports CuPy. Kernels (see ``cuda/approxsim_tile.cuh``):
a shared-memory-tiled, register-blocked contraction with split-K, instantiated for batched
``matmul`` and for implicit-GEMM ``conv2d`` forward, input gradient and filter gradient
(no im2col buffer in global memory). Per product, the fast path costs an address add, a table
load, an FMUL and an FFMA (``T[i][j] * (2^Ea * 2^Eb)``, exact while no product can overflow or
underflow: see ``cuda/approxsim_codes.cuh``); tiles with Inf, NaN or extreme exponents take an
exact path that applies the header's special cases.
The table lives where it is fastest for its size:

* ``s16``: shared memory, 16-bit entries (``M <= 7`` and every entry exact in 16 bits);
* ``s32``: shared memory, 32-bit entries (``M <= 6``);
* ``g32``: read-only global memory, 32-bit entries (``M <= 11``);
* ``gen``: any finite table (entries zero, negative or subnormal), through the header's
  ``approxsim_mul_split``; ``fp32``: the exact product (FMA), no table.

Inputs and outputs: NumPy or CuPy arrays. If any array input is a CuPy array the result is a
CuPy array on the same device (nothing is copied back); NumPy inputs give a NumPy result
(uploaded, computed, downloaded). All kernels of one call run on CuPy's current stream with no
synchronisation between launches; only the NumPy download waits for them.
"""

from __future__ import annotations

import os
import re
import threading

import numpy as np

from approxsim._resources import data_dir, header_dir
from approxsim.backends.base import Backend
from approxsim.errors import BackendUnavailableError

_INSTALL = "pip install 'approxsim[cuda12]' (CUDA 12 driver) or 'approxsim[cuda13]' (CUDA 13 driver)"
_BK = 8
_SIZES = {"L": 128, "S": 64}
_I32_MAX = 2**31 - 1
_status = None
_lock = threading.Lock()
_modules = {}


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


def kernel_dir():
    """Folder of the ``.cu``/``.cuh`` kernel sources (package data ``approxsim.kernels``)."""
    return data_dir("approxsim.kernels", "cuda")


def kernel_source(filename: str) -> str:
    """A kernel file with approxsim's own ``#include "..."`` files inlined.

    Inlining makes the source self-contained, so CuPy's compile cache (keyed by source and
    options) notices an edit of any header.
    """
    seen = set()
    dirs = (kernel_dir(), header_dir())

    def expand(name):
        if name in seen:
            return ""
        seen.add(name)
        for d in dirs:
            path = d / name
            if path.is_file():
                text = path.read_text()
                return re.sub(r'^\s*#\s*include\s+"([^"]+)"\s*$', lambda m: expand(m.group(1)), text, flags=re.M)
        raise FileNotFoundError(f"CUDA source {name!r} is missing from {[str(d) for d in dirs]}; reinstall approxsim.")

    return expand(filename)


def compile_options(variant: str):
    """NVRTC options for one product policy (``fp32``, ``s16``, ``s32``, ``g32``, ``gen``).

    ``$APPROXSIM_CUDA_MIN_BLOCKS`` (a tuning knob, default 2) sets the kernels' minimum blocks per SM.
    """
    options = ("-std=c++14", f"-I{header_dir()}", f"-I{kernel_dir()}", f"-DAPPROXSIM_ONLY_{variant}")
    blocks = os.environ.get("APPROXSIM_CUDA_MIN_BLOCKS", "").strip()
    if blocks:
        if not blocks.isdigit() or not 1 <= int(blocks) <= 8:
            raise ValueError(f"APPROXSIM_CUDA_MIN_BLOCKS must be an integer from 1 to 8. "
                             f"Received: APPROXSIM_CUDA_MIN_BLOCKS={blocks!r}")
        options += (f"-DAPPROXSIM_MIN_BLOCKS={int(blocks)}",)
    return options


def _function(filename: str, name: str, variant: str):
    import cupy

    key = (cupy.cuda.Device().id, filename, variant)
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            mod = _modules[key] = cupy.RawModule(code=kernel_source(filename), options=compile_options(variant))
    return mod.get_function(name)


def tame_limit(table) -> int:
    """Largest L such that T[i][j] * 2^(Ea + Eb) is a normal float for every entry when |Ea|, |Eb| <= L.

    Tiles whose operands all have |exponent| <= L (or are zero/subnormal) take the fast path.
    """
    exp = ((np.ascontiguousarray(table, dtype=np.float32).view(np.uint32) >> 23) & 0xFF).astype(np.int64) - 127
    return int(min(126 + exp.min(), 127 - exp.max()) // 2)


def table_plan(mult):
    """``(variant, host table or None, shared bytes of the table, tame limit)`` for a multiplier (cached on it)."""
    def build():
        if mult.kind == "exact":
            return "fp32", None, 0, 0
        m = mult.mantissa_bits
        table = np.ascontiguousarray(mult.table, dtype=np.float32).ravel()
        bits = table.view(np.uint32)
        exp = (bits >> 23) & 0xFF
        if not ((bits >> 31 == 0).all() and (exp >= 1).all() and (exp <= 254).all()):
            from approxsim.product import split_table

            sign, frac, uexp = split_table(mult.table)
            entries = np.empty(bits.size, dtype=[("sign_frac", "<u4"), ("exp", "<i4")])
            entries["sign_frac"] = sign | frac
            entries["exp"] = uexp.astype(np.int32)
            return "gen", entries, 0, 0
        limit = tame_limit(table)
        if m <= 7 and not (bits & 0xFFFF).any():
            half = (bits >> 16).astype(np.uint16)
            if half.size % 2:  # M = 0 cannot happen; keep whole 32-bit words for the copy to shared memory
                half = np.append(half, np.uint16(0))
            return "s16", half, half.size * 2, limit
        if m <= 6:
            return "s32", bits.copy(), bits.size * 4, limit
        return "g32", bits.copy(), 0, limit

    return mult.derived("cuda_plan", build)


class CudaBackend(Backend):
    name = "cuda"

    def __init__(self):
        import cupy

        self._cp = cupy
        self._dummy = {}

    # --- arrays ----------------------------------------------------------------------------

    def asarray(self, x, arg: str):
        """CuPy arrays stay on the device (as C-contiguous float32); anything else as in the base class."""
        if hasattr(x, "__cuda_array_interface__"):
            arr = self._cp.asarray(x)
            if arr.dtype.kind not in "fiub":
                raise TypeError(f"`{arg}` must hold real numbers (converted to float32). "
                                f"Received: {arg}.dtype={arr.dtype}")
            return self._cp.ascontiguousarray(arr, dtype=self._cp.float32)
        return super().asarray(x, arg)

    def _device(self, *arrays):
        """The arrays on the device, and whether the result goes back to the host."""
        cp = self._cp
        host = not any(isinstance(a, cp.ndarray) for a in arrays)
        return [cp.ascontiguousarray(cp.asarray(a), dtype=cp.float32) for a in arrays], host

    def _finish(self, out, host):
        return self._cp.asnumpy(out) if host else out

    def _table(self, mult):
        variant, host_table, smem, limit = table_plan(mult)
        dev = self._cp.cuda.Device().id
        if host_table is None:
            table = self._dummy.get(dev)
            if table is None:
                table = self._dummy[dev] = self._cp.zeros(1, dtype=self._cp.uint32)
        else:
            table = mult.derived(f"cuda_table_{dev}", lambda: self._cp.asarray(host_table))
        return variant, table, smem, limit

    # --- launch ----------------------------------------------------------------------------

    def _launch(self, filename, op, mult, rows, cols, k, nz, ptrs, tail, out):
        """Runs ``approxsim_<op>`` into ``out`` (zeroed here when split-K adds partial sums).

        The kernel's parameters are ``ptrs(z0) + (table, M) + tail + (splits, k_chunk)``, where
        ``z0`` is the first batch of the launch (grid z holds at most 65535 batches x splits).
        """
        for what, v in (("rows", rows), ("columns", cols), ("reduction length", k)):
            if v > _I32_MAX:
                raise ValueError(f"This {op} is too large for the CUDA kernels: its {what} ({v}) exceed 2^31 - 1. "
                                 f"Split it into smaller calls. Received: {what}={v}")
        if rows == 0 or cols == 0 or nz == 0:
            return out
        if k == 0:
            out.fill(0)
            return out
        cp = self._cp
        variant, table, table_smem, limit = self._table(mult)
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
        pack_bytes = 4 if variant in ("fp32", "gen") else 8
        smem = _BK * 2 * bm * pack_bytes + table_smem
        fn = _function(filename, f"approxsim_{op}_{variant}_{size}", variant)
        grid_x, grid_y = -(-rows // bm), -(-cols // bm)
        if grid_y > 65535:
            raise ValueError(f"Too many output columns for one {op} launch. Received: columns={cols}")
        step = 65535 // splits
        for z0 in range(0, nz, step):
            z1 = min(nz, z0 + step)
            args = tuple(ptrs(z0)) + (table, np.int32(mult.mantissa_bits or 0), np.int32(limit)) + tuple(tail)
            fn((grid_x, grid_y, (z1 - z0) * splits), (256,), args + (np.int32(splits), np.int32(k_chunk)),
               shared_mem=smem)
        return out

    # --- operations ------------------------------------------------------------------------

    def _direct(self, mult, op, args, host, out, **kwargs):
        """Delegates a ``kind == "direct"`` multiplier to ``mult.direct.cuda_<op>(*args, **kwargs)``."""
        fn = getattr(mult.direct, f"cuda_{op}", None)
        if fn is None:
            raise NotImplementedError(
                f"Multiplier {mult.name!r} is a direct model and its model provides no CUDA {op} "
                f"(`cuda_{op}`). Use backend='cpu' for it. Received: multiplier={mult.name!r}")
        res = fn(*args, **kwargs)
        if out is not None:
            out[...] = res
            res = out
        return self._finish(res, host)

    def matmul(self, a, b, mult, *, transpose_a=False, transpose_b=False, out=None):
        cp = self._cp
        (a, b), host = self._device(a, b)
        if mult.kind == "direct":
            return self._direct(mult, "matmul", (a, b), host, out, transpose_a=transpose_a, transpose_b=transpose_b)
        from approxsim.geometry import matmul_shapes

        batch, m, k, n = matmul_shapes(a.shape, b.shape, transpose_a, transpose_b)
        nb = int(np.prod(batch, dtype=np.int64))

        def flat(x):
            shape = x.shape[:-2]
            if int(np.prod(shape, dtype=np.int64)) == 1:
                return x.reshape(x.shape[-2:]), 0
            if tuple((1,) * (len(batch) - len(shape)) + shape) != tuple(batch):
                x = cp.ascontiguousarray(cp.broadcast_to(x, tuple(batch) + x.shape[-2:]))
            return x, x.shape[-1] * x.shape[-2]

        a, a_bs = flat(a)
        b, b_bs = flat(b)
        a_rs, a_ks = (1, m) if transpose_a else (k, 1)
        b_ks, b_cs = (1, k) if transpose_b else (n, 1)
        if out is None:
            out = cp.empty(tuple(batch) + (m, n), dtype=cp.float32)
        a1, b1, o1 = a.ravel(), b.ravel(), out.reshape(-1)

        def ptrs(z0):  # batch z0 onwards (launches hold at most 65535 batches)
            return a1[z0 * a_bs:], b1[z0 * b_bs:], o1[z0 * m * n:]

        i64 = np.int64
        tail = (np.int32(m), np.int32(n), np.int32(k), i64(a_bs), i64(a_rs), i64(a_ks), i64(b_bs), i64(b_ks),
                i64(b_cs))
        self._launch("gemm.cu", "gemm", mult, m, n, k, nb, ptrs, tail, out)
        return self._finish(out, host)

    def _conv(self, op, p0, p1, geom, mult, out_shape, rows, cols, k, out):
        cp = self._cp
        (p0, p1), host = self._device(p0, p1)
        if out is None:
            out = cp.empty(out_shape, dtype=cp.float32)
        g = geom
        tail = tuple(np.int32(v) for v in (g.n, g.h, g.w, g.c, g.kh, g.kw, g.cout, g.groups, g.sh, g.sw, g.dh,
                                           g.dw, g.pad_top, g.pad_left, g.oh, g.ow))
        if g.groups > 65535:
            raise ValueError(f"The CUDA kernels take at most 65535 groups. Received: groups={g.groups}")
        self._launch("conv.cu", op, mult, rows, cols, k, g.groups, lambda z0: (p0, p1, out), tail, out)
        return self._finish(out, host)

    def conv2d(self, x, w, geom, mult, *, out=None):
        if mult.kind == "direct":
            (x, w), host = self._device(x, w)
            return self._direct(mult, "conv2d", (x, w, geom), host, out)
        g = geom
        return self._conv("conv_fwd", x, w, g, mult, g.output_shape, g.n * g.oh * g.ow, g.cout_per_group,
                          g.kh * g.kw * g.cin_per_group, out)

    def conv2d_input_grad(self, dy, w, geom, mult, *, out=None):
        if mult.kind == "direct":
            (dy, w), host = self._device(dy, w)
            return self._direct(mult, "conv2d_input_grad", (dy, w, geom), host, out)
        g = geom
        return self._conv("conv_dgrad", dy, w, g, mult, g.input_shape, g.n * g.h * g.w, g.cin_per_group,
                          g.kh * g.kw * g.cout_per_group, out)

    def conv2d_filter_grad(self, x, dy, geom, mult, *, out=None):
        if mult.kind == "direct":
            (x, dy), host = self._device(x, dy)
            return self._direct(mult, "conv2d_filter_grad", (x, dy, geom), host, out)
        g = geom
        return self._conv("conv_wgrad", x, dy, g, mult, g.filter_shape, g.kh * g.kw * g.cin_per_group,
                          g.cout_per_group, g.n * g.oh * g.ow, out)


# --- interop helpers for approxsim.ops_cuda (which must not import CuPy itself) ------------------

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
