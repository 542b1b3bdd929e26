"""The CPU backend: C++ kernels (``approxsim._cpu``), threaded and vectorised.

Every product is the one of DESIGN.md section 1, bit for bit; sums are float32 in
an unspecified order. The kernels split work over ``$APPROXSIM_NUM_THREADS`` threads
(all cores when unset) with the GIL released, and pick AVX-512 (with or without VBMI),
AVX2 or portable code at run time; ``$APPROXSIM_SIMD`` (``portable``, ``avx2``, ``avx512``,
``vbmi``) forces a level at or below what the CPU supports. Convolutions are implicit GEMMs
whose working memory is a few packed blocks per thread, whatever the batch size.

Kernels by kind: tables and the exact product run in the extension's GEMM driver
(:class:`CpuTableKernels`); direct models run their own compiled kernels
(:class:`CpuDirectKernels`); integer tables run the extension's integer driver
(:class:`CpuIntKernels`, exact integer sums), integer direct models their compiled kernels.
"""

from __future__ import annotations

import functools
import os

import numpy as np

from approxsim.backends.base import Backend, IntegerKernels, Kernels
from approxsim.geometry import ConvGeometry
from approxsim.int_multiplier import IntDirectMultiplier, IntTableMultiplier
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


@functools.lru_cache(maxsize=256)
def native_geometry(geom: ConvGeometry):
    """The extension's Geometry struct for a ConvGeometry (fields by name; checked again in C++).

    Cached: a training step asks for the same few geometries every step, and the struct is read-only."""
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
        (a3, ai), (b3, bi) = _batch_index(a, shape), _batch_index(b, shape)
        res = _cpu.matmul(a3, b3, self._table(), shape.transpose_a, shape.transpose_b, ai, bi)
        return res.reshape(shape.output_shape)

    def _conv2d(self, x, w, geom, out):
        return _cpu.conv2d(x, w, native_geometry(geom), self._table())

    def _conv2d_input_grad(self, dy, w, geom, out):
        return _cpu.conv2d_input_grad(dy, w, native_geometry(geom), self._table())

    def _conv2d_filter_grad(self, x, dy, geom, out):
        return _cpu.conv2d_filter_grad(x, dy, native_geometry(geom), self._table())


_ONE_MATRIX = np.zeros(1, dtype=np.int64)
_ONE_MATRIX.flags.writeable = False


def _batch_index(x, shape):
    """``x`` as a stack of matrices and, for each output batch entry, which one it uses (no copies)."""
    if x.ndim == 2 and not shape.batch:  # a plain matrix product (Dense layers): one matrix, entry 0
        return x[None], _ONE_MATRIX
    count = int(np.prod(x.shape[:-2], dtype=np.int64))
    idx = np.broadcast_to(np.arange(count, dtype=np.int64).reshape(x.shape[:-2]), shape.batch).ravel()
    return x.reshape((count,) + x.shape[-2:]), np.ascontiguousarray(idx)


def _padded(geom) -> bool:
    """Whether any filter tap of any output pixel falls in the padding."""
    return bool(geom.pad_top or geom.pad_bottom or geom.pad_left or geom.pad_right)


def _padded_taps(geom):
    """``(KH, KW, OH, OW)`` bool: whether filter tap (i, j) of output pixel (oh, ow) falls in the padding."""
    row_out, col_out = _padded_lines(geom)
    return row_out[:, None, :, None] | col_out[None, :, None, :]


def _padded_lines(geom):
    """``(KH, OH)`` and ``(KW, OW)`` bool: whether filter row i of output row oh (column j of output
    column ow) falls in the padding."""
    rows = np.arange(geom.oh)[None, :] * geom.sh - geom.pad_top + np.arange(geom.kh)[:, None] * geom.dh
    cols = np.arange(geom.ow)[None, :] * geom.sw - geom.pad_left + np.arange(geom.kw)[:, None] * geom.dw
    return (rows < 0) | (rows >= geom.h), (cols < 0) | (cols >= geom.w)


def _inner_span(out):
    """``(a, b)``: the output lines [a, b) none of whose taps are padded (a first and a last band of
    lines have them: the padding is at both ends); ``a == b`` where every line has one."""
    inner = np.flatnonzero(~out.any(axis=0))
    return (int(inner[0]), int(inner[-1]) + 1) if inner.size else (0, 0)


def _add_padded_taps(y, geom, per_tap):
    """``y[n, p, q, c] += sum over the padded taps (i, j) of pixel (p, q) of per_tap[i, j, c]``, on the
    border bands of pixels that have such taps only (124 of 1024 pixels of a 32x32 SAME 3x3 layer):
    a whole-output add cost bench_int.py's conv layer 1.1 ms of 24, a gather and scatter of the
    border pixels 0.5 ms."""
    taps = _padded_taps(geom).astype(np.int64)
    (r0, r1), (c0, c1) = (_inner_span(out) for out in _padded_lines(geom))
    bands = [(slice(0, r0), slice(None)), (slice(r1, None), slice(None)),
             (slice(r0, r1), slice(0, c0)), (slice(r0, r1), slice(c1, None))] if r0 < r1 else [(slice(None),) * 2]
    for rows, cols in bands:
        band = taps[:, :, rows, cols]
        if band.size:
            y[:, rows, cols, :] += np.einsum("ijpq,ijc->pqc", band, per_tap).astype(y.dtype)


class CpuIntKernels(IntegerKernels):
    """Integer tables: the extension's integer driver (cpu_int.h) on encoded codes (pattern + 1).

    The driver skips padding (an encoded 0 is no product); the forward and filter-gradient
    padding, which DESIGN.md counts as products with code 0, is added here from the table's row of
    code 0, when that row is not all zero (an approximate circuit may give f(0, b) != 0).
    """

    def _table(self):
        mult = self.multiplier
        return mult.derived("cpu_int_table", lambda: _cpu.prepare_int_table(mult.table, mult.bits))

    def operand(self, x, arg: str):
        # Checked, and kept in the integer dtype they came in (no int32 copy): _encode reads any.
        return self.multiplier.format.check_codes(x, arg, dtype=None)

    def _encode(self, codes):
        # Codes to patterns + 1 as float32 (exact: below 2^24), checked again against the format's
        # range: one threaded pass in the extension.
        fmt = self.multiplier.format
        return _cpu.encode_int_codes(codes, fmt.bits, fmt.signed)

    def _wide(self, terms):
        return self.result_dtype(terms) == np.int64

    def _zero_row(self):
        """``f(0, b)`` for every pattern of b (int64), or None when it is all zero."""
        row = self.multiplier.table[0].astype(np.int64)  # pattern 0 is code 0, signed or not
        return row if row.any() else None

    def _multiply(self, a, b):
        return self.multiplier.products(a, b).astype(self.result_dtype(1))

    def _matmul(self, a, b, shape, out):
        (a3, ai), (b3, bi) = _batch_index(a, shape), _batch_index(b, shape)
        res = _cpu.int_matmul(self._encode(a3), self._encode(b3), self._table(), shape.transpose_a,
                              shape.transpose_b, ai, bi, self._wide(shape.k))
        return res.reshape(shape.output_shape)

    def _conv2d(self, x, w, geom, out):
        terms = geom.kh * geom.kw * geom.cin_per_group
        y = _cpu.int_conv2d(self._encode(x), self._encode(w), native_geometry(geom), self._table(), self._wide(terms))
        row = self._zero_row() if _padded(geom) else None
        if row is not None:  # sum over the padded taps of sum_ci f(0, w[i, j, ci, co])
            per_tap = row[self.multiplier.format.patterns(w)].sum(axis=2)  # (KH, KW, COUT)
            _add_padded_taps(y, geom, per_tap)
        return y

    def _conv2d_input_grad(self, dy, w, geom, out):
        terms = geom.kh * geom.kw * geom.cout_per_group
        return _cpu.int_conv2d_input_grad(self._encode(dy), self._encode(w), native_geometry(geom), self._table(),
                                          self._wide(terms))

    def _conv2d_filter_grad(self, x, dy, geom, out):
        terms = geom.n * geom.oh * geom.ow
        dw = _cpu.int_conv2d_filter_grad(self._encode(x), self._encode(dy), native_geometry(geom), self._table(),
                                         self._wide(terms))
        row = self._zero_row() if _padded(geom) else None
        if row is not None:  # every channel of a padded pixel: sum over such pixels of f(0, dy[., co])
            per_pixel = row[self.multiplier.format.patterns(dy)].sum(axis=0)  # (OH, OW, COUT)
            per_tap = np.einsum("ijpq,pqc->ijc", _padded_taps(geom).astype(np.int64), per_pixel)
            dw += per_tap[:, :, None, :].astype(dw.dtype)
        return dw


class CpuIntDirectKernels(IntegerKernels):
    """Integer direct models: the model's own compiled CPU kernels (exact int64 sums)."""

    def _multiply(self, a, b):
        return self.multiplier.products(a, b).astype(self.result_dtype(1))

    def _matmul(self, a, b, shape, out):
        res = self.multiplier.direct.matmul(a, b, transpose_a=shape.transpose_a, transpose_b=shape.transpose_b)
        return res.astype(self.result_dtype(shape.k), copy=False)

    def _conv2d(self, x, w, geom, out):
        res = self.multiplier.direct.conv2d(x, w, geom)
        return res.astype(self.result_dtype(geom.kh * geom.kw * geom.cin_per_group), copy=False)

    def _conv2d_input_grad(self, dy, w, geom, out):
        res = self.multiplier.direct.conv2d_input_grad(dy, w, geom)
        return res.astype(self.result_dtype(geom.kh * geom.kw * geom.cout_per_group), copy=False)

    def _conv2d_filter_grad(self, x, dy, geom, out):
        res = self.multiplier.direct.conv2d_filter_grad(x, dy, geom)
        return res.astype(self.result_dtype(geom.n * geom.oh * geom.ow), copy=False)


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
    KERNELS = {ExactMultiplier: CpuTableKernels, TableMultiplier: CpuTableKernels, DirectMultiplier: CpuDirectKernels,
               IntTableMultiplier: CpuIntKernels, IntDirectMultiplier: CpuIntDirectKernels}
