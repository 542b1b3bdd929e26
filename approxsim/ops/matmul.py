"""``am_matmul``: approximate batched matrix products with gradients."""

from __future__ import annotations

import tensorflow as tf

from approxsim.arguments import as_bool
from approxsim.geometry import matmul_shapes
from approxsim.ops._common import as_codes, as_float32, sum_to_shape, swap_last
from approxsim.ops._plan import plan

__all__ = ["am_matmul"]


def _static(a, b, ta, tb):
    """The MatmulShape of the static shapes (``None`` where unknown); raises what does not fit."""
    if a.shape.rank is None or b.shape.rank is None:
        raise ValueError(f"am_matmul needs operands of known rank. Received: a shape={a.shape}, b shape={b.shape}")
    try:
        return matmul_shapes(a.shape.as_list(), b.shape.as_list(), ta, tb)
    except ValueError as e:
        raise ValueError(f"am_{e}") from None


@tf.autograph.experimental.do_not_convert
def am_matmul(a, b, *, multiplier, transpose_a=False, transpose_b=False, backward="approx", backend=None,
              name=None):
    """Approximate ``a @ b`` (batched, broadcasting), every product ``a (*) b`` looked up as ``T[a][b]``.

    With an integer multiplier the operands are integer codes of its format and the result their
    exact sums, int64, with no gradient (the layers quantize and give the gradients).

    Args:
      a: tensor ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
      b: tensor ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``); batch dimensions broadcast.
      multiplier: name or :class:`~approxsim.Multiplier`.
      transpose_a, transpose_b: use the transpose of the last two dimensions.
      backward: ``"approx"`` (gradients through the multiplier: ``da`` from ``T[dy][b]``,
        ``db`` from ``T[a][dy]``) or ``"exact"`` (exact fp32 gradients).
      backend: ``"reference"``, ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None``.
      name: optional name scope.

    Returns:
      ``(broadcast batch..., M, N)`` in ``a``'s dtype.

    Raises:
      ValueError: shapes that do not fit, an unknown ``backward`` or backend.
      UnknownMultiplierError: the multiplier is not registered.
    """
    p = plan(multiplier, backward, backend)
    ta, tb = as_bool(transpose_a, "transpose_a"), as_bool(transpose_b, "transpose_b")
    with tf.name_scope(name or "am_matmul"):
        if p.multiplier.is_integer:
            a, b = as_codes(p.multiplier, a, b)
            return p.forward.matmul(a, b, _static(a, b, ta, tb))
        (a, b), dtype = as_float32(a, b)
        shape = _static(a, b, ta, tb)
        if p.forward.native and p.gradient.native:  # exact forward and gradients: TF's own op and gradient
            return tf.cast(p.forward.matmul(a, b, shape), dtype)

        @tf.custom_gradient
        def op(a, b):
            y = p.forward.matmul(a, b, shape)

            def grad(dy):
                # d op(a) = dy (*) op(b)^T: products T[dy][b]; transposed afterwards if needed.
                da = p.gradient.matmul(dy, b, _static(dy, b, False, not tb))
                if ta:
                    da = swap_last(da)
                # d op(b) = op(a)^T (*) dy: products T[a][dy].
                db = p.gradient.matmul(a, dy, _static(a, dy, not ta, False))
                if tb:
                    db = swap_last(db)
                return sum_to_shape(da, tf.shape(a)), sum_to_shape(db, tf.shape(b))

            return y, grad

        return tf.cast(op(a, b), dtype)
