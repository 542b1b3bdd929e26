"""The public array API: approximate matmul and conv2d (with its gradients) on NumPy arrays.

Each function validates its arguments, picks the backend (see
:mod:`approxsim.backends`) and returns a float32 array. Products follow
DESIGN.md section 1 bit for bit; sums are accumulated in float32 (float64 in the
reference backend) in an unspecified order.
"""

from __future__ import annotations

from approxsim import multipliers
from approxsim.backends import get_backend
from approxsim.geometry import conv_geometry, matmul_shapes

__all__ = ["matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad"]


def matmul(a, b, *, multiplier, backend=None, transpose_a: bool = False, transpose_b: bool = False):
    """Approximate matrix product ``a @ b``; every product is ``a[.., i, k] (*) b[.., k, j]``.

    Args:
      a: array ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
      b: array ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``); leading dimensions broadcast.
      multiplier: name or :class:`~approxsim.Multiplier`; the table is indexed ``T[a][b]``.
      backend: ``"reference"``, ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None`` (``$APPROXSIM_BACKEND``, then auto).
      transpose_a, transpose_b: use the transpose of the last two dimensions.

    Returns:
      float32 array ``(broadcast batch..., M, N)``.
    """
    mult = multipliers.get(multiplier)
    be = get_backend(backend)
    a = be.asarray(a, "a")
    b = be.asarray(b, "b")
    matmul_shapes(a.shape, b.shape, transpose_a, transpose_b)
    return be.matmul(a, b, mult, transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))


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
    """
    mult = multipliers.get(multiplier)
    be = get_backend(backend)
    x = be.asarray(x, "x")
    w = be.asarray(w, "w")
    geom = conv_geometry(x.shape, w.shape, strides=strides, padding=padding, dilations=dilations, groups=groups)
    return be.conv2d(x, w, geom, mult)


def _check_dy(dy, geom, what):
    if tuple(dy.shape) != geom.output_shape:
        raise ValueError(
            f"dy must have the convolution's output shape {geom.output_shape} for {what}. "
            f"Received: dy shape={tuple(dy.shape)}, input shape={geom.input_shape}, "
            f"filter shape={geom.filter_shape}")


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
    mult = multipliers.get(multiplier)
    be = get_backend(backend)
    dy = be.asarray(dy, "dy")
    w = be.asarray(w, "w")
    geom = conv_geometry(input_shape, w.shape, strides=strides, padding=padding, dilations=dilations, groups=groups)
    _check_dy(dy, geom, "conv2d_input_grad")
    return be.conv2d_input_grad(dy, w, geom, mult)


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
    mult = multipliers.get(multiplier)
    be = get_backend(backend)
    x = be.asarray(x, "x")
    dy = be.asarray(dy, "dy")
    geom = conv_geometry(x.shape, filter_shape, strides=strides, padding=padding, dilations=dilations, groups=groups)
    _check_dy(dy, geom, "conv2d_filter_grad")
    return be.conv2d_filter_grad(x, dy, geom, mult)
