"""DirectModel: a C/C++ multiplier model run on the real operands inside approxsim's kernels."""

from __future__ import annotations

import ctypes
import dataclasses
import threading
from pathlib import Path
from typing import Optional

import numpy as np

from approxsim import toolchain
from approxsim.geometry import ConvGeometry, matmul_shapes

__all__ = ["DirectModel", "MAX_DIRECT_BITS", "num_threads"]

MAX_DIRECT_BITS = 23
_OPS = {"multiply": 0, "matmul": 1, "conv_fwd": 2, "conv_dgrad": 3, "conv_wgrad": 4}  # direct_cpu.h
_libs: dict = {}
_libs_lock = threading.Lock()

_Geometry = type("_Geometry", (ctypes.Structure,),
                 {"_fields_": [(f.name, ctypes.c_int64) for f in dataclasses.fields(ConvGeometry)]})


class _MatmulArgs(ctypes.Structure):  # approxsim_dl_matmul_args
    _fields_ = [("a", ctypes.c_void_p), ("b", ctypes.c_void_p), ("c", ctypes.c_void_p), ("m", ctypes.c_int64),
                ("k", ctypes.c_int64), ("n", ctypes.c_int64), ("a_batch_stride", ctypes.c_int64),
                ("b_batch_stride", ctypes.c_int64)]


class _ConvArgs(ctypes.Structure):  # approxsim_dl_conv_args
    _fields_ = [("in0", ctypes.c_void_p), ("in1", ctypes.c_void_p), ("out", ctypes.c_void_p), ("g", _Geometry)]


class _MultiplyArgs(ctypes.Structure):  # approxsim_dl_multiply_args
    _fields_ = [("a", ctypes.c_void_p), ("b", ctypes.c_void_p), ("out", ctypes.c_void_p), ("count", ctypes.c_int64)]


def num_threads() -> int:
    """Threads of the CPU kernels (see :func:`approxsim.backends.cpu.num_threads`)."""
    from approxsim.backends.cpu import num_threads as threads

    return threads()


def _load(path: Path):
    with _libs_lock:
        lib = _libs.get(path)
        if lib is None:
            lib = ctypes.CDLL(str(path))
            lib.approxsim_direct_abi.restype = ctypes.c_int
            lib.approxsim_direct_error.restype = ctypes.c_char_p
            _libs[path] = lib
        return lib


def _f32(x, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"`{name}` must hold real numbers (converted to float32). Received: {name}.dtype={arr.dtype}")
    return np.ascontiguousarray(arr, dtype=np.float32)


def _check_shape(arr, expected, name, geom):
    geom.check_array(arr, name, expected)


class DirectModel:
    """A multiplier model called on the real operands by compiled CPU (and CUDA) kernels.

    The model is a C or C++ file defining ``float function(float a, float b)``. On the
    CPU it is compiled, at first use and through the cache, into one shared library
    with approxsim's GEMM and convolution loops (``approxsim/csrc/direct_kernels.h``),
    so the model call is inlined; the library is called through ctypes, which releases
    the GIL, and runs on ``$APPROXSIM_NUM_THREADS`` threads. Each product is exactly
    what the compiled C function returns for those operands (the model owns every
    special case: NaN, Inf, zeros, subnormals, overflow); sums are float32, added in a
    fixed order, so results do not depend on the thread count. On the GPU the same
    file becomes a ``__device__`` function of NVRTC-compiled kernels (:meth:`cuda_source`).

    Operand order matches the backends: ``matmul(a, b)`` calls ``model(a, b)``;
    ``conv2d`` ``model(x, w)``; ``conv2d_input_grad`` ``model(dy, w)``;
    ``conv2d_filter_grad`` ``model(x, dy)``. Zero padding enters the forward and
    filter-gradient sums as products with ``+0.0`` operands, as in the reference backend.

    Args:
      path: the model's C (``.c``) or C++ (``.cc``/``.cpp``/``.cxx``/``.inl``/``.h``) source.
      function: the model function's name.
      mantissa_bits: the value of ``APPROXSIM_MANTISSA_BITS`` the model is compiled with
        (1..23), for models written for several widths; ``None`` compiles it with 23.
      name: a label used in messages.
    """

    _OUT = np.float32  # result dtype (integer models: int64, exact sums)

    def _operand(self, x, name: str) -> np.ndarray:
        return _f32(x, name)

    def __init__(self, path, *, function: str, mantissa_bits: Optional[int] = None, name: str = ""):
        path = Path(path).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"Multiplier source {str(path)!r} does not exist. Received: path={str(path)!r}")
        if not isinstance(function, str) or not function.isidentifier():
            raise ValueError(f"function must be a C identifier. Received: function={function!r}")
        if mantissa_bits is not None and (isinstance(mantissa_bits, bool)
                                          or not isinstance(mantissa_bits, (int, np.integer))
                                          or not 1 <= int(mantissa_bits) <= MAX_DIRECT_BITS):
            raise ValueError(f"mantissa_bits of a direct model must be None or an integer from 1 to "
                             f"{MAX_DIRECT_BITS}. Received: mantissa_bits={mantissa_bits!r}")
        toolchain.language_of(path)  # a clear error for unknown suffixes, now rather than at first use
        self.path = path.resolve()
        self.function = function
        self.mantissa_bits = None if mantissa_bits is None else int(mantissa_bits)
        self.name = name or function
        self._digest_value = None  # read at first need: nothing is read at import time
        self._lib = None
        self._lock = threading.Lock()
        self._cuda = None

    @property
    def compile_bits(self) -> int:
        """``APPROXSIM_MANTISSA_BITS`` as the model is compiled (23 when ``mantissa_bits`` is None)."""
        return MAX_DIRECT_BITS if self.mantissa_bits is None else self.mantissa_bits

    def __repr__(self):
        return f"DirectModel({self.path.name!r}, function={self.function!r}, mantissa_bits={self.mantissa_bits})"

    def __eq__(self, other):
        if not isinstance(other, DirectModel):
            return NotImplemented
        return (self._digest, self.function, self.compile_bits) == (other._digest, other.function, other.compile_bits)

    def __hash__(self):
        return hash((self._digest, self.function, self.compile_bits))

    @property
    def _digest(self) -> str:
        if self._digest_value is None:
            self._digest_value = toolchain.source_digest(self.path)
        return self._digest_value

    @property
    def source_digest(self) -> str:
        """SHA-256 of every file the model reads (the model and its local headers, at any depth)."""
        return self._digest

    @property
    def fingerprint(self) -> str:
        """What identifies the arithmetic: the source digest, the function and the compiled width."""
        return f"direct-sha256:{self._digest[:16]}:{self.function}:{self.compile_bits}"

    def check(self, *, timeout: float = 60.0) -> None:
        """Runs the model on a sample of operands (every special value against every other, and
        random ones) in a separate process, before any kernel calls it in this one.

        Raises:
          approxsim.CompileError: the model does not compile or has the wrong signature.
          approxsim.ModelError: it crashes, exits or hangs on the sample.
        """
        from approxsim.compile import run_on_operands

        specials = np.float32([0.0, -0.0, 1e-45, -1e-40, 1.1754944e-38, 1.0, -1.5, 1.9999999, 3.4028235e38,
                               -3.4028235e38, 2.0 ** -126, 2.0 ** 127, np.inf, -np.inf, np.nan])
        a, b = np.meshgrid(specials, specials)
        rng = np.random.default_rng(0)
        ra = rng.integers(0, 2 ** 32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32)
        rb = rng.integers(0, 2 ** 32, 4096, dtype=np.uint64).astype(np.uint32).view(np.float32)
        run_on_operands(self.path, function=self.function, a=np.concatenate([a.ravel(), ra]),
                        b=np.concatenate([b.ravel(), rb]), mantissa_bits=self.compile_bits, timeout=timeout,
                        label=f"{self.function}() in {self.path.name}")

    # --- CPU ---------------------------------------------------------------------------

    def build(self) -> Path:
        """Compiles the CPU library now (normally done at first use) and returns its path.

        Raises:
          approxsim.CompileError: the model does not compile, lacks the function, or has the wrong signature.
        """
        with self._lock:
            if self._lib is None:
                self._lib = _load(self._build_library())
        return Path(self._lib._name)

    def _build_library(self) -> Path:
        from approxsim.direct.build import build_library

        return build_library(self.path, self.function, self.compile_bits)

    def _run(self, op: str, args, items: int):
        from approxsim import _cpu
        from approxsim.errors import ModelError

        if self._lib is None:
            self.build()
        threads = num_threads()
        grain = max(1, items // (threads * 8))
        chunk = ctypes.cast(self._lib.approxsim_direct_chunk, ctypes.c_void_p).value
        status = _cpu.run_direct(chunk, _OPS[op], ctypes.addressof(args), items, grain)
        if status == 1:
            raise ModelError(f"The direct model {self.name!r} threw a C++ exception: "
                             f"{self._lib.approxsim_direct_error().decode(errors='replace')}. Fix the model.")
        if status != 0:  # pragma: no cover - a mismatched cached library
            raise RuntimeError(f"The direct kernel library of {self.name!r} rejected operation {op!r}; "
                               f"delete {toolchain.cache_dir() / 'direct'} and try again.")

    def multiply(self, a, b) -> np.ndarray:
        """Elementwise ``model(a, b)`` with NumPy broadcasting; float32 of the broadcast shape."""
        a, b = np.broadcast_arrays(self._operand(a, "a"), self._operand(b, "b"))
        shape = a.shape
        a = np.ascontiguousarray(a).reshape(-1)
        b = np.ascontiguousarray(b).reshape(-1)
        out = np.empty(a.size, dtype=self._OUT)
        if a.size:
            self._run("multiply", _MultiplyArgs(a.ctypes.data, b.ctypes.data, out.ctypes.data, a.size), a.size)
        return out.reshape(shape)

    def matmul(self, a, b, *, transpose_a: bool = False, transpose_b: bool = False) -> np.ndarray:
        """``sum_k model(a[..., i, k], b[..., k, j])``: batched matrix product with broadcasting.

        Args:
          a: ``(..., m, k)`` (``(..., k, m)`` with ``transpose_a``).
          b: ``(..., k, n)`` (``(..., n, k)`` with ``transpose_b``).

        Returns:
          float32 ``(batch..., m, n)``.
        """
        a, b = self._operand(a, "a"), self._operand(b, "b")
        batch, m, k, n = matmul_shapes(a.shape, b.shape, transpose_a, transpose_b)
        if transpose_a:
            a = np.swapaxes(a, -1, -2)
        if transpose_b:
            b = np.swapaxes(b, -1, -2)
        out = np.empty(batch + (m, n), dtype=self._OUT)
        count = int(np.prod(batch, dtype=np.int64)) if batch else 1
        if out.size == 0:
            return out
        if k == 0:
            out[...] = 0
            return out
        operands, strides = [], []
        for arr, rows, cols in ((a, m, k), (b, k, n)):
            if all(d == 1 for d in arr.shape[:-2]):  # one matrix shared by the whole batch
                operands.append(np.ascontiguousarray(arr.reshape(rows, cols)))
                strides.append(0)
            else:
                operands.append(np.ascontiguousarray(np.broadcast_to(arr, batch + (rows, cols))))
                strides.append(rows * cols)
        args = _MatmulArgs(operands[0].ctypes.data, operands[1].ctypes.data, out.ctypes.data, m, k, n, *strides)
        self._run("matmul", args, count * m)
        return out

    def _conv(self, op, in0, in1, out, geom, items):
        self._run(op, _ConvArgs(in0.ctypes.data, in1.ctypes.data, out.ctypes.data, _Geometry(**geom.fields())), items)
        return out

    def conv2d(self, x, w, geom: ConvGeometry) -> np.ndarray:
        """Forward convolution ``y = x (*) w``, products ``model(x, w)``: NHWC x HWIO -> NHWC."""
        x, w = self._operand(x, "x"), self._operand(w, "w")
        _check_shape(x, geom.input_shape, "x", geom)
        _check_shape(w, geom.filter_shape, "w", geom)
        out = np.empty(geom.output_shape, dtype=self._OUT)
        return self._conv("conv_fwd", x, w, out, geom, geom.n * geom.oh * geom.ow) if out.size else out

    def conv2d_input_grad(self, dy, w, geom: ConvGeometry) -> np.ndarray:
        """Input gradient ``dx``, products ``model(dy, w)``: returns NHWC of ``geom.input_shape``."""
        dy, w = self._operand(dy, "dy"), self._operand(w, "w")
        _check_shape(dy, geom.output_shape, "dy", geom)
        _check_shape(w, geom.filter_shape, "w", geom)
        out = np.zeros(geom.input_shape, dtype=self._OUT)
        if out.size:
            wt = np.ascontiguousarray(np.swapaxes(w, 2, 3))  # (KH, KW, COUT, C/G): channels innermost
            self._conv("conv_dgrad", dy, wt, out, geom, geom.n * geom.h * geom.w)
        return out

    def conv2d_filter_grad(self, x, dy, geom: ConvGeometry) -> np.ndarray:
        """Filter gradient ``dw``, products ``model(x, dy)``: returns HWIO of ``geom.filter_shape``."""
        x, dy = self._operand(x, "x"), self._operand(dy, "dy")
        _check_shape(x, geom.input_shape, "x", geom)
        _check_shape(dy, geom.output_shape, "dy", geom)
        out = np.zeros(geom.filter_shape, dtype=self._OUT)
        return self._conv("conv_wgrad", x, dy, out, geom, geom.kh * geom.kw * geom.c) if out.size else out

    # --- GPU (see approxsim.direct.cuda) -----------------------------------------------

    def _gpu(self):
        from approxsim.direct.cuda import CudaKernels

        with self._lock:
            if self._cuda is None:
                self._cuda = CudaKernels(self)
        return self._cuda

    def cuda_source(self) -> str:
        """The complete CUDA source (model as a device function plus kernels) given to NVRTC.

        Raises:
          approxsim.CompileError: the model uses a construct NVRTC cannot compile; the message names it.
        """
        from approxsim.direct.cuda_source import generate_source

        return generate_source(self)

    def cuda_multiply(self, a, b):
        """:meth:`multiply` on CuPy arrays (same shape or broadcastable); returns a CuPy array."""
        return self._gpu().multiply(a, b)

    def cuda_matmul(self, a, b, *, transpose_a: bool = False, transpose_b: bool = False):
        """:meth:`matmul` on CuPy arrays; returns a CuPy array."""
        return self._gpu().matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)

    def cuda_conv2d(self, x, w, geom: ConvGeometry):
        """:meth:`conv2d` on CuPy arrays; returns a CuPy array."""
        return self._gpu().conv2d(x, w, geom)

    def cuda_conv2d_input_grad(self, dy, w, geom: ConvGeometry):
        """:meth:`conv2d_input_grad` on CuPy arrays; returns a CuPy array."""
        return self._gpu().conv2d_input_grad(dy, w, geom)

    def cuda_conv2d_filter_grad(self, x, dy, geom: ConvGeometry):
        """:meth:`conv2d_filter_grad` on CuPy arrays; returns a CuPy array."""
        return self._gpu().conv2d_filter_grad(x, dy, geom)

