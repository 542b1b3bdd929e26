"""``am_einsum``: two-operand einsums (EinsumDense, attention) as one approximate batched matmul."""

from __future__ import annotations

import string

import tensorflow as tf

from approxsim.ops.matmul import am_matmul

__all__ = ["am_einsum"]


def _dims(t, letters, spec):
    """Sizes of ``letters`` in ``t`` (python ints where static, else scalar tensors)."""
    dyn = tf.shape(t)
    out = []
    for c in letters:
        i = spec.index(c)
        out.append(t.shape[i] if t.shape[i] is not None else dyn[i])
    return out


def _prod(values):
    out = 1
    for v in values:
        out = out * v
    return out


def _expand_ellipsis(sa, sb, out, rank_a, rank_b, equation):
    """Replaces ``...`` by unused letters (the same ones in both operands: no broadcasting)."""
    spare = [c for c in string.ascii_letters if c not in sa + sb + out]
    n = None
    for spec, rank in ((sa, rank_a), (sb, rank_b)):
        if "..." in spec:
            k = rank - (len(spec) - 3)
            if n is not None and k != n:
                raise ValueError(f"am_einsum needs '...' to stand for as many dimensions in both operands. "
                                 f"Received: equation={equation!r}")
            n = k
    if n is None or n < 0:
        raise ValueError(f"am_einsum: '...' in the output only, or too few dimensions. Received: equation={equation!r}")
    fill = "".join(spare[:n])
    return sa.replace("...", fill), sb.replace("...", fill), out.replace("...", fill)


@tf.autograph.experimental.do_not_convert
def am_einsum(equation, a, b, *, multiplier, backward="approx", backend=None, name=None):
    """Approximate two-operand ``tf.einsum``; every product looked up as ``T[a][b]``.

    The contraction is rewritten as one batched :func:`am_matmul`: letters in both
    operands and the output are batch dimensions, letters in both operands only are
    summed over, the others are free.

    Args:
      equation: e.g. ``"abc,cde->abde"``; no ellipsis, no repeated letter within an operand.
      a, b: the operands.
      multiplier, backward, backend: as in :func:`am_matmul`.

    Returns:
      The result, in ``a``'s dtype.

    Raises:
      ValueError: an equation this op cannot take (more than two operands, a repeated letter,
        output letters from nowhere) or operand ranks that do not match it.
    """
    eq = equation.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1:
        raise ValueError("am_einsum takes an explicit two-operand equation, like 'abc,cd->abd'. "
                         f"Received: equation={equation!r}")
    a = tf.convert_to_tensor(a)
    b = tf.convert_to_tensor(b)
    lhs, out = eq.split("->")
    sa, sb = lhs.split(",")
    if "..." in eq:
        sa, sb, out = _expand_ellipsis(sa, sb, out, a.shape.rank, b.shape.rank, equation)
    for spec in (sa, sb, out):
        if len(set(spec)) != len(spec) or not all(c in string.ascii_letters for c in spec):
            raise ValueError(f"am_einsum needs distinct letters within each operand and the output. "
                             f"Received: equation={equation!r}")
    if set(out) - set(sa) - set(sb):
        raise ValueError(f"am_einsum output letters must come from the operands. Received: equation={equation!r}")
    if a.shape.rank != len(sa) or b.shape.rank != len(sb):
        raise ValueError(f"am_einsum operand ranks do not match {equation!r}. "
                         f"Received: a shape={a.shape}, b shape={b.shape}")
    with tf.name_scope(name or "am_einsum"):
        # Letters in one operand only and not in the output are plain sums (no products).
        only_a = [c for c in sa if c not in sb and c not in out]
        if only_a:
            a = tf.reduce_sum(a, axis=[sa.index(c) for c in only_a])
            sa = "".join(c for c in sa if c not in only_a)
        only_b = [c for c in sb if c not in sa and c not in out]
        if only_b:
            b = tf.reduce_sum(b, axis=[sb.index(c) for c in only_b])
            sb = "".join(c for c in sb if c not in only_b)
        batch = [c for c in out if c in sa and c in sb]
        contract = [c for c in sa if c in sb and c not in out]
        free_a = [c for c in sa if c not in sb]
        free_b = [c for c in sb if c not in sa]
        a2 = tf.transpose(a, [sa.index(c) for c in batch + free_a + contract])
        b2 = tf.transpose(b, [sb.index(c) for c in batch + contract + free_b])
        bdims = _dims(a, batch, sa)
        fa, fb, kd = _dims(a, free_a, sa), _dims(b, free_b, sb), _dims(a, contract, sa)
        a2 = tf.reshape(a2, bdims + [_prod(fa), _prod(kd)])
        b2 = tf.reshape(b2, bdims + [_prod(kd), _prod(fb)])
        y = am_matmul(a2, b2, multiplier=multiplier, backward=backward, backend=backend)
        y = tf.reshape(y, bdims + fa + fb)
        order = batch + free_a + free_b
        return tf.transpose(y, [order.index(c) for c in out])
