"""The public array API: approximate products, matmul and conv2d (with its gradients) on arrays.

Each function resolves the multiplier and the backend once (``approxsim.backends.bind``) and
calls the bound kernels, which check the shapes. Products follow DESIGN.md section 1 bit for
bit; sums are accumulated in float32 (float64 in the reference backend) in an unspecified
order. NumPy inputs give NumPy results; CuPy inputs to ``backend="cuda"`` give CuPy results.
"""

from __future__ import annotations

from approxsim.backends import bind
from approxsim.geometry import conv_geometry

__all__ = ["multiply", "matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad"]


def multiply(a, b, *, multiplier, backend=None):
    """Elementwise approximate product ``a (*) b``, with NumPy broadcasting.

    Args:
      a: array-like (converted to float32), first operand (selects the table row).
      b: array-like, second operand; broadcast against ``a``.
      multiplier: a registered name (``"mbm7"``) or a :class:`~approxsim.Multiplier`.
      backend: ``"reference"``, ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None`` (``$APPROXSIM_BACKEND``, then auto).

    Returns:
      float32 array of the broadcast shape. ``"fp32"`` gives the exact IEEE float32 product.

    Raises:
      TypeError: an operand that does not hold real numbers.
      ValueError: shapes that do not broadcast.
    """
    return bind(multiplier, backend).multiply(a, b)


def matmul(a, b, *, multiplier, backend=None, transpose_a: bool = False, transpose_b: bool = False):
    """Approximate matrix product ``a @ b``; every product is ``a[.., i, k] (*) b[.., k, j]``.

    Args:
      a: array ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
      b: array ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``); leading dimensions broadcast.
      multiplier: name or :class:`~approxsim.Multiplier`; the table is indexed ``T[a][b]``.
      backend: ``"reference"``, ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None`` (``$APPROXSIM_BACKEND``, then auto).
      transpose_a, transpose_b: use the transpose of the last two dimensions (bools).

    Returns:
      float32 array ``(broadcast batch..., M, N)``.

    Raises:
      ValueError: shapes that do not fit (the message names both).
      TypeError: a transpose flag that is not a bool.
    """
    return bind(multiplier, backend).matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)


def conv2d(x, w, *, strides=1, padding="VALID", dilations=1, groups: int = 1, multiplier, backend=None):
    """Approximate 2-D convolution (cross-correlation, as ``tf.nn.conv2d``); products ``T[x][w]``.

    Args:
      x: input ``(N, H, W, C)``.
      w: filter ``(KH, KW, C / groups, COUT)``.
      strides, dilations: int or ``(h, w)``.
      padding: ``"SAME"``, ``"VALID"``, ``((top, bottom), (left, right))`` or TF's 4-pair form.
      groups: channel groups; ``groups == C`` is a depthwise convolution.
      multiplier: name or :class:`~approxsim.Multiplier`.
      backend: see :func:`matmul`.

    Returns:
      float32 ``(N, OH, OW, COUT)``.

    Raises:
      ValueError: shapes or options that do not fit.
    """
    return _conv("conv2d", (x, "x"), (w, "w"), lambda p0, p1: (p0.shape, p1.shape),
                 dict(strides=strides, padding=padding, dilations=dilations, groups=groups), multiplier, backend)


def conv2d_input_grad(dy, w, input_shape, *, strides=1, padding="VALID", dilations=1, groups: int = 1,
                      multiplier, backend=None):
    """Gradient of :func:`conv2d` with respect to its input; products ``T[dy][w]``.

    Args:
      dy: output gradient ``(N, OH, OW, COUT)``.
      w: filter ``(KH, KW, C / groups, COUT)``.
      input_shape: ``(N, H, W, C)`` of the forward input.
      strides, padding, dilations, groups, multiplier, backend: as in :func:`conv2d`.

    Returns:
      float32 ``input_shape``.
    """
    return _conv("conv2d_input_grad", (dy, "dy"), (w, "w"), lambda p0, p1: (input_shape, p1.shape),
                 dict(strides=strides, padding=padding, dilations=dilations, groups=groups), multiplier, backend)


def conv2d_filter_grad(x, dy, filter_shape, *, strides=1, padding="VALID", dilations=1, groups: int = 1,
                       multiplier, backend=None):
    """Gradient of :func:`conv2d` with respect to its filter; products ``T[x][dy]``.

    Args:
      x: forward input ``(N, H, W, C)``.
      dy: output gradient ``(N, OH, OW, COUT)``.
      filter_shape: ``(KH, KW, C / groups, COUT)``.
      strides, padding, dilations, groups, multiplier, backend: as in :func:`conv2d`.

    Returns:
      float32 ``filter_shape``.
    """
    return _conv("conv2d_filter_grad", (x, "x"), (dy, "dy"), lambda p0, p1: (p0.shape, filter_shape),
                 dict(strides=strides, padding=padding, dilations=dilations, groups=groups), multiplier, backend)


def _conv(method, first, second, shapes, options, multiplier, backend):
    """Binds the multiplier, converts both operands, builds the geometry from ``shapes(p0, p1)``
    (input and filter shapes) and runs the bound kernels' ``method``."""
    kernels = bind(multiplier, backend)
    p0, p1 = (kernels.operand(v, name) for v, name in (first, second))
    geom = conv_geometry(*shapes(p0, p1), **options)
    return getattr(kernels, method)(p0, p1, geom)
