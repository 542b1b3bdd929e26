"""The interface every backend implements: a :class:`Backend` binds multipliers to :class:`Kernels`.

``backend.bind(multiplier)`` resolves, once per (backend, multiplier), which kernels run the
multiplier's kind of arithmetic (each backend maps multiplier types to Kernels classes in
``KERNELS``). The bound kernels take arrays in TF's layouts (activations NHWC, filters HWIO
with ``I = C / groups``, matrices ``(..., rows, cols)``); their public methods check the
arrays against the shapes once, here, and call the kind's ``_matmul``/``_conv2d``/... on
validated operands.

Operand order (DESIGN.md section 1): forward ``T[x][w]``; input gradient ``T[dy][w]``;
filter gradient ``T[x][dy]``; ``matmul(a, b)`` looks up ``T[a][b]``.
"""

from __future__ import annotations

import os

import numpy as np

from approxsim.geometry import ConvGeometry, matmul_shapes


def _memory_bytes() -> int:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 40


def _check_result_size(shape) -> None:
    """A result larger than this machine's memory is a mistake in the shapes: a clear error, not an attempt."""
    size = 4
    for d in shape:
        size *= int(d)
    if size > _memory_bytes():
        raise ValueError(f"The result would have shape {tuple(shape)}: {size / 2 ** 30:.4g} GiB of float32, more than "
                         f"this machine's {_memory_bytes() / 2 ** 30:.3g} GiB of memory. Check the shapes, strides, "
                         f"dilations and padding. Received: result shape={tuple(shape)}")


class Kernels:
    """One multiplier's arithmetic on one backend. Subclasses implement the ``_`` methods.

    Every public method takes an optional ``out`` array (of the result's shape, on the
    backend's device) that receives the result.
    """

    def __init__(self, backend, multiplier):
        self.backend = backend
        self.multiplier = multiplier

    def __repr__(self):
        return f"{type(self).__name__}({self.multiplier.name!r} on {self.backend.name!r})"

    # --- validated entry points ----------------------------------------------------------

    def multiply(self, a, b, *, out=None):
        """Elementwise ``a (*) b`` with broadcasting."""
        def run(a, b):
            xp = self.backend.array_module
            a, b = xp.broadcast_arrays(a, b)
            shape = a.shape
            if not a.size:
                return self._empty(shape, self.result_dtype(1))
            return self._multiply(xp.ascontiguousarray(a).reshape(-1), xp.ascontiguousarray(b).reshape(-1)).reshape(shape)

        return self._call(run, (a, "a"), (b, "b"), out=out)

    def matmul(self, a, b, *, transpose_a=False, transpose_b=False, out=None):
        """``op(a) @ op(b)`` with every product ``T[a][b]``; batch dimensions broadcast.

        Args:
          a: ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
          b: ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``).
          out: optional result array ``(batch..., M, N)``.

        Raises:
          ValueError: shapes that do not fit (the message names both).
        """
        def run(a, b):
            shape = matmul_shapes(a.shape, b.shape, transpose_a, transpose_b)
            _check_result_size(shape.output_shape)
            dtype = self.result_dtype(shape.k)
            if shape.m * shape.n * shape.batch_size == 0:
                return self._empty(shape.output_shape, dtype)
            if shape.k == 0:
                return self._zeros(shape.output_shape, dtype)
            return self._matmul(a, b, shape, out)

        return self._call(run, (a, "a"), (b, "b"), out=out)

    def conv2d(self, x, w, geom: ConvGeometry, *, out=None):
        """Forward convolution (products ``T[x][w]``): ``x`` NHWC, ``w`` HWIO -> NHWC."""
        return self._conv("_conv2d", (x, "x", geom.input_shape), (w, "w", geom.filter_shape), geom,
                          geom.output_shape, out, geom.kh * geom.kw * geom.cin_per_group)

    def conv2d_input_grad(self, dy, w, geom: ConvGeometry, *, out=None):
        """Input gradient (products ``T[dy][w]``): ``dy`` NHWC, ``w`` HWIO -> ``dx`` NHWC."""
        return self._conv("_conv2d_input_grad", (dy, "dy", geom.output_shape), (w, "w", geom.filter_shape), geom,
                          geom.input_shape, out, geom.kh * geom.kw * geom.cout_per_group)

    def conv2d_filter_grad(self, x, dy, geom: ConvGeometry, *, out=None):
        """Filter gradient (products ``T[x][dy]``): ``x``, ``dy`` NHWC -> ``dw`` HWIO."""
        return self._conv("_conv2d_filter_grad", (x, "x", geom.input_shape), (dy, "dy", geom.output_shape), geom,
                          geom.filter_shape, out, geom.n * geom.oh * geom.ow)

    # --- shared plumbing ---------------------------------------------------------------

    def _call(self, run, *operands, out):
        """Converts the operands, runs ``run(*arrays)``, and delivers the result where the caller expects it."""
        be = self.backend
        where = be.result_place([v for v, _ in operands] + ([out] if out is not None else []))
        arrays = [self.operand(v, name) for v, name in operands]
        result = run(*arrays)
        if out is not None and result is not out:
            out[...] = result
            result = out
        return be.deliver(result, where)

    def _conv(self, method, first, second, geom, shape, out, terms):
        def run(p0, p1):
            geom.check_array(p0, first[1], first[2])
            geom.check_array(p1, second[1], second[2])
            _check_result_size(shape)
            dtype = self.result_dtype(terms)
            if int(np.prod(shape, dtype=np.int64)) == 0:
                return self._empty(shape, dtype)
            if p0.size == 0 or p1.size == 0:  # e.g. an empty batch: every output sums no product
                return self._zeros(shape, dtype)
            return getattr(self, method)(p0, p1, geom, out)

        return self._call(run, first[:2], second[:2], out=out)

    def operand(self, x, arg: str):
        """An operand as these kernels take it (float kinds: float32 on the backend's device)."""
        return self.backend.asarray(x, arg)

    def result_dtype(self, terms: int):
        """The dtype of sums of ``terms`` products (float kinds: float32)."""
        return np.dtype(np.float32)

    def _empty(self, shape, dtype=np.float32):
        return self.backend.array_module.empty(shape, dtype=dtype)

    def _zeros(self, shape, dtype=np.float32):
        return self.backend.array_module.zeros(shape, dtype=dtype)

    # --- what each kind implements (operands validated, result allocated or written to out) ---

    def _multiply(self, a, b):  # pragma: no cover - interface
        raise NotImplementedError

    def _matmul(self, a, b, shape, out):  # pragma: no cover - interface
        raise NotImplementedError

    def _conv2d(self, x, w, geom, out):  # pragma: no cover - interface
        raise NotImplementedError

    def _conv2d_input_grad(self, dy, w, geom, out):  # pragma: no cover - interface
        raise NotImplementedError

    def _conv2d_filter_grad(self, x, dy, geom, out):  # pragma: no cover - interface
        raise NotImplementedError


class IntegerKernels(Kernels):
    """The base of integer multipliers' kernels (DESIGN.md section 1b): operands are integer codes
    of the multiplier's format (checked: a float array, or a code out of range, is an error that
    points to quantization), results exact sums, int32 where they cannot overflow it, else int64."""

    def operand(self, x, arg: str):
        return self.multiplier.format.check_codes(x, arg)

    def result_dtype(self, terms: int):
        from approxsim.integer import sum_dtype

        return sum_dtype(max(int(terms), 1), self.multiplier.max_abs)


class Backend:
    """A place where the arithmetic runs. Subclasses set ``name`` and ``KERNELS``.

    ``KERNELS`` maps a multiplier type to the Kernels class that runs it here; ``bind``
    follows the multiplier's type hierarchy, so a subclass of a kind runs as that kind.
    """

    name = "base"
    KERNELS: dict = {}
    array_module = np

    def bind(self, multiplier) -> Kernels:
        """The :class:`Kernels` of ``multiplier`` on this backend (made once, cached on the multiplier).

        Raises:
          NotImplementedError: this backend has no kernels for the multiplier's kind.
        """
        def make():
            for kind in type(multiplier).__mro__:
                if kind in self.KERNELS:
                    return self.KERNELS[kind](self, multiplier)
            raise NotImplementedError(
                f"Backend {self.name!r} cannot run multipliers of kind {multiplier.kind!r} ({multiplier.name!r}). "
                f"Choose another backend. Received: multiplier={multiplier.name!r}")

        return multiplier.derived(f"kernels:{self.name}:{id(self)}", make)

    def result_place(self, arrays):
        """Where the caller expects the result, given its array arguments (host backends: the host)."""
        return "host"

    def deliver(self, result, place):
        """The result, moved to ``place`` (see :meth:`result_place`)."""
        return result

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
        return np.require(arr, dtype=np.float32, requirements="C")  # keeps 0-d arrays 0-d

    # Conveniences for scripts and tests: bind, then call.
    def multiply(self, a, b, mult, **kwargs):
        return self.bind(mult).multiply(a, b, **kwargs)

    def matmul(self, a, b, mult, **kwargs):
        return self.bind(mult).matmul(a, b, **kwargs)

    def conv2d(self, x, w, geom, mult, **kwargs):
        return self.bind(mult).conv2d(x, w, geom, **kwargs)

    def conv2d_input_grad(self, dy, w, geom, mult, **kwargs):
        return self.bind(mult).conv2d_input_grad(dy, w, geom, **kwargs)

    def conv2d_filter_grad(self, x, dy, geom, mult, **kwargs):
        return self.bind(mult).conv2d_filter_grad(x, dy, geom, **kwargs)
