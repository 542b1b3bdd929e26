"""The CPU backend: C++ kernels (``approxsim._cpu``), threaded and vectorised.

Every product is the one of DESIGN.md section 1, bit for bit; sums are float32 in
an unspecified order. The kernels split work over ``$APPROXSIM_NUM_THREADS`` threads
(all cores when unset) with the GIL released, and pick AVX-512 (with or without VBMI),
AVX2 or portable code at run time; ``$APPROXSIM_SIMD`` (``portable``, ``avx2``, ``avx512``,
``vbmi``) forces a level at or below what the CPU supports. Convolutions are implicit GEMMs
whose working memory is a few packed blocks per thread, whatever the batch size.

Kernels by kind: tables and the exact product run in the extension's GEMM driver
(:class:`CpuTableKernels`); direct models run their own compiled kernels
(:class:`CpuDirectKernels`).
"""

from __future__ import annotations

import os

import numpy as np

from approxsim.backends.base import Backend, Kernels
from approxsim.geometry import ConvGeometry
from approxsim.multiplier import DirectMultiplier, ExactMultiplier, TableMultiplier

_IMPORT_ERROR = None
try:
    from approxsim import _cpu
except ImportError as e:  # the extension was not built
    _cpu = None
    _IMPORT_ERROR = e

SIMD_LEVELS = ("portable", "avx2", "avx512", "vbmi")  # lowest first; what APPROXSIM_SIMD accepts
_NATIVE_NAMES = {"portable": "portable", "avx2": "avx2", "avx512": "avx512", "vbmi": "avx512_vbmi"}
_SIMD_ENV = "APPROXSIM_SIMD"


def simd_name(native: str) -> str:
    """The ``APPROXSIM_SIMD`` spelling of a level the extension reports (``avx512_vbmi`` -> ``vbmi``)."""
    return {v: k for k, v in _NATIVE_NAMES.items()}.get(native, native)


def detected_simd() -> str:
    """The best level this CPU supports (``APPROXSIM_SIMD`` spelling)."""
    return simd_name(_cpu.detected_simd_level())


def supported_simd() -> tuple:
    """Every level this CPU can run, lowest first."""
    return SIMD_LEVELS[:SIMD_LEVELS.index(detected_simd()) + 1]


def forced_simd():
    """The level ``$APPROXSIM_SIMD`` forces (``APPROXSIM_SIMD`` spelling), or ``None`` (unset or ``auto``).

    Raises:
      ValueError: an unknown level, or one this CPU does not support.
    """
    value = os.environ.get(_SIMD_ENV, "").strip().lower()
    if value in ("", "auto"):
        return None
    value = {"avx512_vbmi": "vbmi"}.get(value, value)
    if value not in SIMD_LEVELS:
        raise ValueError(f"{_SIMD_ENV} must be one of auto, {', '.join(SIMD_LEVELS)}. "
                         f"Received: {_SIMD_ENV}={os.environ[_SIMD_ENV]!r}")
    if _cpu is not None and value not in supported_simd():
        raise ValueError(f"{_SIMD_ENV}={value} asks for more than this CPU supports (at most {detected_simd()}). "
                         f"Unset it, or choose one of {', '.join(supported_simd())}. "
                         f"Received: {_SIMD_ENV}={os.environ[_SIMD_ENV]!r}")
    return value


def num_threads() -> int:
    """Threads of the CPU kernels: ``$APPROXSIM_NUM_THREADS``, else the CPUs this process may use.

    Raises:
      ValueError: ``$APPROXSIM_NUM_THREADS`` is set to something other than a positive integer.
    """
    env = os.environ.get("APPROXSIM_NUM_THREADS", "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"APPROXSIM_NUM_THREADS must be a positive integer. Received: "
                             f"APPROXSIM_NUM_THREADS={env!r}")
        return min(int(env), 256)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def check_settings() -> None:
    """Checks ``$APPROXSIM_NUM_THREADS`` and applies ``$APPROXSIM_SIMD`` (unset or ``auto``: the best level).

    Raises:
      ValueError: a thread count that is not a positive integer; an unknown SIMD level, or one this
        CPU does not support.
    """
    num_threads()
    level = forced_simd()
    if _cpu is not None:
        _cpu.set_simd_level("auto" if level is None else _NATIVE_NAMES[level])


def status():
    """``(usable, reason)``: whether the C++ extension is importable and the SIMD setting valid."""
    if _cpu is None:
        return False, (f"the C++ extension approxsim._cpu is not built ({_IMPORT_ERROR}); "
                       "reinstall with `pip install .` and a C++17 compiler")
    try:
        check_settings()
    except ValueError as e:
        return False, str(e)
    return True, f"C++ extension, SIMD {simd_name(_cpu.simd_level())}, {_cpu.num_threads()} threads"


def create():
    check_settings()
    return CpuBackend()


def native_geometry(geom: ConvGeometry):
    """The extension's Geometry struct for a ConvGeometry (fields by name; checked again in C++)."""
    return _cpu.Geometry(**geom.fields())


class CpuTableKernels(Kernels):
    """Table and exact (fp32) multipliers: the extension's packed GEMM driver."""

    def _table(self):
        mult = self.multiplier
        if mult.is_exact:
            return mult.derived("cpu_table", lambda: _cpu.prepare_table(None, 0))
        return mult.derived("cpu_table", lambda: _cpu.prepare_table(mult.table, mult.mantissa_bits,
                                                                    mult.structure))

    def _multiply(self, a, b):
        if self.multiplier.is_exact:
            return self.multiplier.products(a, b)
        return _cpu.multiply(a, b, self.multiplier.table, self.multiplier.mantissa_bits)

    def _matmul(self, a, b, shape, out):
        # Which stored matrix each output batch entry uses (broadcast without copies).
        def index(x):
            count = int(np.prod(x.shape[:-2], dtype=np.int64))
            idx = np.broadcast_to(np.arange(count, dtype=np.int64).reshape(x.shape[:-2]), shape.batch).ravel()
            return x.reshape((count,) + x.shape[-2:]), np.ascontiguousarray(idx)

        (a3, ai), (b3, bi) = index(a), index(b)
        res = _cpu.matmul(a3, b3, self._table(), shape.transpose_a, shape.transpose_b, ai, bi)
        return res.reshape(shape.output_shape)

    def _conv2d(self, x, w, geom, out):
        return _cpu.conv2d(x, w, native_geometry(geom), self._table())

    def _conv2d_input_grad(self, dy, w, geom, out):
        return _cpu.conv2d_input_grad(dy, w, native_geometry(geom), self._table())

    def _conv2d_filter_grad(self, x, dy, geom, out):
        return _cpu.conv2d_filter_grad(x, dy, native_geometry(geom), self._table())


class CpuDirectKernels(Kernels):
    """Direct multipliers: the model's own compiled CPU kernels (``multiplier.direct``)."""

    def _multiply(self, a, b):
        return self.multiplier.products(a, b)

    def _matmul(self, a, b, shape, out):
        return self.multiplier.direct.matmul(a, b, transpose_a=shape.transpose_a, transpose_b=shape.transpose_b)

    def _conv2d(self, x, w, geom, out):
        return self.multiplier.direct.conv2d(x, w, geom)

    def _conv2d_input_grad(self, dy, w, geom, out):
        return self.multiplier.direct.conv2d_input_grad(dy, w, geom)

    def _conv2d_filter_grad(self, x, dy, geom, out):
        return self.multiplier.direct.conv2d_filter_grad(x, dy, geom)


class CpuBackend(Backend):
    """C++ kernels; see the module docstring."""

    name = "cpu"
    KERNELS = {ExactMultiplier: CpuTableKernels, TableMultiplier: CpuTableKernels, DirectMultiplier: CpuDirectKernels}
