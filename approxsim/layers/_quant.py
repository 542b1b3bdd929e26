"""Integer multipliers in the layers: quantize, exact integer products, dequantize, and gradients.

For a product ``y = a (*) b`` (``a`` an activation, ``b`` a kernel or a second activation) with
an integer multiplier, :func:`quantized_product` computes (DESIGN.md section 1b)::

    q_a = clip(round(a / s_a) + z_a),  q_b = clip(round(b / s_b) + z_b)
    y   = s_a s_b * (sum f(q_a, q_b) - z_b sum q_a - z_a sum q_b + z_a z_b K)

with every sum exact integer arithmetic and one float multiply at the end. Convolutions pad
``q_a`` with its zero point, the code of 0.0. The zero-point sums take closed forms where the
layer gives them (:class:`CodeSums`): ``sum q_a`` per output window as the product with a kernel
of ones, one column per group; ``sum q_b`` as a reduction of the kernel; ``K`` as a number. They
are exact in float32 below ``2^24`` (TF's own product), else go through the exact integer
multiplier of the format. Gradients (``backward``), computed in the backward pass only:

* ``"ste"``: those of the exact product of the fake-quantized operands, clipped to the
  quantization range (straight-through estimator);
* ``"exact"``: those of the float product of the float operands;
* ``"table"``: the product's partial derivatives from the table by finite differences
  (:func:`approxsim.quantization.derivative_tables`), for matrix products and ungrouped
  convolutions: ``da[m, k] = sum_n dy[m, n] s_b[n] (Da[q_a, q_b] - z_b[n])`` and likewise ``db``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from approxsim.quantization import (Quantization, derivative_tables, exact_multiplier, is_calibrating,
                                    sign_magnitude)

__all__ = ["QuantSpec", "CodeSums", "quantized_product", "update_range", "range_of"]


class QuantSpec:
    """A layer's resolved quantization: the multiplier the codes go through and their format."""

    def __init__(self, mult, quantization):
        self.quantization = Quantization.of(quantization)
        self.mode = self.quantization.codes_for(mult)
        self.mult = sign_magnitude(mult) if self.mode == "sign-magnitude" else mult
        self.fmt = self.mult.format
        # sign-magnitude: the magnitudes are n-bit, so the codes stop at +-(2^n - 1)
        self.lo = -self.fmt.hi if self.mode == "sign-magnitude" else self.fmt.lo
        self.hi = self.fmt.hi
        self.exact = exact_multiplier(self.fmt)

    @property
    def affine(self) -> bool:
        return self.mode == "affine"


def range_of(x, axes=None):
    """``(lo, hi)`` of a tensor over ``axes`` (all when None), float32, each including 0."""
    x = tf.cast(x, tf.float32)
    lo = tf.reduce_min(x, axis=axes)
    hi = tf.reduce_max(x, axis=axes)
    return tf.minimum(lo, 0.0), tf.maximum(hi, 0.0)


def _percentiles(x, percentile):
    flat = tf.sort(tf.reshape(tf.cast(x, tf.float32), [-1]))
    n = tf.cast(tf.size(flat), tf.float32)
    hi_i = tf.cast(tf.round((n - 1) * percentile / 100.0), tf.int32)
    lo_i = tf.cast(tf.round((n - 1) * (1 - percentile / 100.0)), tf.int32)
    return tf.minimum(flat[lo_i], 0.0), tf.maximum(flat[hi_i], 0.0)


def update_range(state, seen, x, quantization, training):
    """The activation range to quantize ``x`` with: the calibrated one (updated first when training or
    calibrating, per ``quantization.calibration``), or the batch's own before any calibration."""
    q = quantization
    if q.calibration == "percentile":
        lo, hi = _percentiles(x, q.percentile)
    else:
        lo, hi = range_of(x)
    if training or is_calibrating():
        count = seen + 1.0
        first = tf.equal(seen, 0.0)
        if q.calibration == "minmax":
            new = tf.where(first, tf.stack([lo, hi]), tf.stack([tf.minimum(state[0], lo), tf.maximum(state[1], hi)]))
        elif q.calibration == "moving-average":
            m = q.momentum
            new = tf.where(first, tf.stack([lo, hi]), m * state + (1 - m) * tf.stack([lo, hi]))
        else:  # percentile: the mean over the batches seen
            new = state + (tf.stack([lo, hi]) - state) / count
        state.assign(new)
        seen.assign(count)
        return new[0], new[1]
    calibrated = seen > 0.0
    return tf.where(calibrated, state[0], lo), tf.where(calibrated, state[1], hi)


def _scale_zero(lo, hi, spec: QuantSpec):
    """Scale (float32) and zero point (int64) for the range ``[lo, hi]`` (which includes 0)."""
    if spec.affine:
        scale = (hi - lo) / float(spec.hi - spec.lo)
        scale = tf.where(scale > 0, scale, tf.ones_like(scale))
        zero = tf.clip_by_value(tf.round(spec.lo - lo / scale), spec.lo, spec.hi)
        return scale, tf.cast(zero, tf.int64)
    # symmetric: signed codes cover [-amax, amax]; unsigned ones [0, hi] (negative values clip to 0)
    amax = tf.maximum(tf.abs(lo), tf.abs(hi)) if spec.lo < 0 else hi
    scale = amax / float(spec.hi)
    scale = tf.where(scale > 0, scale, tf.ones_like(scale))
    return scale, tf.zeros_like(scale, dtype=tf.int64)


def _codes(x, scale, zero, spec):
    q = tf.round(x / scale) + tf.cast(zero, tf.float32)
    return tf.cast(tf.clip_by_value(q, spec.lo, spec.hi), tf.int32)


def _inside(x, scale, zero, spec):
    """1.0 where ``x`` falls inside the quantization range (its code not clipped), else 0.0."""
    v = x / scale + tf.cast(zero, tf.float32)
    return tf.cast((v >= spec.lo - 0.5) & (v <= spec.hi + 0.5), tf.float32)


class CodeSums:
    """The closed forms of the affine zero-point sums of one kind of product.

    ``a(product, qa, qb)``: ``sum q_a`` over each output's terms, broadcastable to the output, from
    ``product(x, y)`` (the product on codes, padding with the zero point) with a kernel of ones with
    one column per group; ``b(qb)``: ``sum q_b`` over each output's terms (int64), broadcastable;
    ``count(qb)``: ``K``, the terms per output.
    """

    def __init__(self, a, b, count):
        self.a, self.b, self.count = a, b, count


def quantized_product(op, a, b, spec: QuantSpec, backward, a_range, b_range, *, ref_op=None, table_op=None,
                      terms=None, sums=None):
    """``a (*) b`` through the integer multiplier of ``spec`` (see the module docstring).

    Args:
      op: ``op(a, b, multiplier, pad_value)``: the layer's product (matmul, conv, einsum) on code
        tensors, returning their exact integer sums (or, with ``"fp32"``, on float32 tensors of
        codes); ``pad_value`` is the code convolutions pad ``a`` with (ignored without padding).
      a, b: float32 operands.
      spec: the layer's :class:`QuantSpec`.
      backward: ``"ste"``, ``"exact"`` or ``"table"``.
      a_range, b_range: ``(lo, hi)`` of each operand; ``b_range`` may be per output channel (shaped
        to broadcast against the output's trailing axes).
      ref_op: ``ref_op(a, b)``: the same product with the exact float32 multiplier (the gradients of
        ``"ste"`` and ``"exact"``).
      table_op: ``table_op(a, b, qa, qb, za, zb, sa, sb, spec)``: the surrogate whose gradient is the
        ``"table"`` one (matrix products and ungrouped convolutions), or None where there is none.
      terms: a bound on the products per output (``K``), or None where it is not known statically;
        it decides whether the zero-point sums may run as float32 (exact below ``2^24``).
      sums: the closed forms of the affine zero-point sums (:class:`CodeSums`), or None to run each
        as a product with a tensor of ones.

    Returns:
      float32 ``y``.
    """
    sa, za = _scale_zero(*a_range, spec)
    sb, zb = _scale_zero(*b_range, spec)
    sa, za, sb, zb = (tf.stop_gradient(t) for t in (sa, za, sb, zb))
    qa, qb = _codes(a, sa, za, spec), _codes(b, sb, zb, spec)
    total = tf.cast(op(qa, qb, spec.mult, za), tf.int64)
    if spec.affine:  # the zero-point terms, exact: z_b sum q_a, z_a sum q_b, z_a z_b K
        total += _zero_point_terms(op, qa, qb, za, zb, spec, terms, sums)
    y = tf.stop_gradient(sa * sb * tf.cast(total, tf.float32))
    if backward == "table":
        if table_op is None:
            raise ValueError('backward="table" is available for AMDense and ungrouped AMConv2D/AMConv1D layers; '
                             'use backward="ste" here.')
        surrogate = table_op(a, b, qa, qb, za, zb, sa, sb, spec)
        return y + surrogate - tf.stop_gradient(surrogate)
    return _with_reference_gradient(y, a, b, ref_op, (qa, sa, za) if backward == "ste" else None,
                                    (qb, sb, zb) if backward == "ste" else None, spec)


def _zero_point_terms(op, qa, qb, za, zb, spec, terms, sums):
    """``- z_b sum q_a - z_a sum q_b + z_a z_b K`` (int64) of affine codes, exact.

    ``sums`` (see :func:`quantized_product`) gives ``sum q_a`` per output window as a product with a
    one-column kernel of ones, ``sum q_b`` as a reduction and ``K`` as a number; without it each is a
    product with a tensor of ones. Sums of codes are exact in float32 while every partial sum stays
    below ``2^24``, so TF's own product runs them there; else the exact integer multiplier does.
    """
    in_float = terms is not None and terms * max(abs(spec.lo), abs(spec.hi)) < 2 ** 24

    def code_sums(x, y, pad):
        if in_float:
            x, y, pad = (tf.cast(t, tf.float32) for t in (x, y, pad))
            return tf.cast(op(x, y, "fp32", pad), tf.int64)
        return tf.cast(op(x, y, spec.exact, pad), tf.int64)

    if sums is None:
        ones_a, ones_b = tf.ones_like(qa), tf.ones_like(qb)
        sum_a = code_sums(qa, ones_b, za)
        sum_b = code_sums(ones_a, qb, tf.ones_like(za))
        count = code_sums(ones_a, ones_b, tf.ones_like(za))
    else:
        sum_a = sums.a(lambda x, y: code_sums(x, y, za), qa, qb)
        sum_b = sums.b(tf.cast(qb, tf.int64))
        count = tf.constant(sums.count(qb), tf.int64)
    return -zb * sum_a - za * sum_b + za * zb * count


def _with_reference_gradient(y, a, b, ref_op, a_codes, b_codes, spec):
    """``y`` with the gradients of ``ref_op`` at ``(a, b)`` (``"exact"``), or, with ``a_codes`` and
    ``b_codes`` (``(q, scale, zero)`` each), at the dequantized codes, masked to the quantization
    range (``"ste"``). The reference product runs in the gradient only: its forward value is not
    needed, so a traced step leaves it out."""

    def dequantized(q, s, z):
        return (tf.cast(q, tf.float32) - tf.cast(z, tf.float32)) * s

    @tf.custom_gradient
    def attach(a, b):
        def grad(dy):
            xa = a if a_codes is None else dequantized(*a_codes)
            xb = b if b_codes is None else dequantized(*b_codes)
            with tf.GradientTape() as tape:
                tape.watch([xa, xb])
                reference = ref_op(xa, xb)
            da, db = tape.gradient(reference, [xa, xb], output_gradients=dy)
            if a_codes is not None:
                da, db = da * _inside(a, *a_codes[1:], spec), db * _inside(b, *b_codes[1:], spec)
            return da, db

        return tf.identity(y), grad

    return attach(a, b)


def table_matmul(a, b, qa, qb, za, zb, sa, sb, spec):
    """A 2-D ``(M, K) x (K, N)`` surrogate whose gradients are the table ones (its value is 0)."""
    da_table, db_table = (tf.constant(t) for t in derivative_tables(spec.mult))
    mask = spec.fmt.mask

    @tf.custom_gradient
    def surrogate(a, b):
        def grad(dy):
            pa = tf.bitwise.bitwise_and(qa, mask)[:, :, None]
            pb = tf.bitwise.bitwise_and(qb, mask)[None, :, :]
            index = pa * (mask + 1) + pb  # (M, K, N) flat table positions
            ga = tf.gather(tf.reshape(da_table, [-1]), index) - tf.cast(zb, tf.float32)
            gb = tf.gather(tf.reshape(db_table, [-1]), index) - tf.cast(za, tf.float32)
            da = tf.einsum("mn,mkn->mk", dy * sb, ga) * _inside(a, sa, za, spec)
            db = tf.einsum("mn,mkn->kn", dy * sa, gb) * _inside(b, sb, zb, spec)
            return da, db

        return tf.zeros([tf.shape(a)[0], tf.shape(b)[1]], tf.float32), grad

    return surrogate(a, b)


def explicit_padding(options, input_hw, kernel_hw):
    """The ``[[top, bottom], [left, right]]`` zero padding of a convolution's options."""
    g = options.groups  # padding does not depend on the groups: one channel per group
    geom = options.geometry((1, *input_hw, g), (*kernel_hw, 1, g))
    return [[geom.pad_top, geom.pad_bottom], [geom.pad_left, geom.pad_right]]


def pad_codes(q, pads, value):
    """``q`` (NHWC codes) padded with the code ``value`` (a scalar tensor)."""
    if not any(p for pair in pads for p in pair):
        return q
    return tf.pad(q, [[0, 0], *pads, [0, 0]], constant_values=tf.cast(value, q.dtype))


def table_conv(options):
    """The ``"table"`` surrogate of an ungrouped convolution: its patches as a matrix product."""
    (sh, sw), (dh, dw) = options.strides, options.dilations

    def patches(x, pads, kh, kw, value=0.0):
        if any(p for pair in pads for p in pair):
            x = tf.pad(x, [[0, 0], *pads, [0, 0]], constant_values=value)
        return tf.image.extract_patches(x, [1, kh, kw, 1], [1, sh, sw, 1], [1, dh, dw, 1], "VALID")

    def surrogate(a, b, qa, qb, za, zb, sa, sb, spec):
        kh, kw = b.shape[:2]
        pads = explicit_padding(options, a.shape[1:3], (kh, kw))
        pa = patches(a, pads, kh, kw)
        pq = tf.cast(patches(tf.cast(qa, tf.float32), pads, kh, kw, tf.cast(za, tf.float32)), tf.int32)
        shape = tf.shape(pa)
        cols = pa.shape[-1]
        b2 = tf.reshape(b, [cols, -1])
        y = table_matmul(tf.reshape(pa, [-1, cols]), b2, tf.reshape(pq, [-1, cols]), tf.reshape(qb, [cols, -1]),
                         za, zb, sa, sb, spec)
        return tf.reshape(y, tf.concat([shape[:3], [tf.shape(b2)[1]]], 0))

    return surrogate


def weight_range(w, per_channel: bool, reduce_axes, out_shape=None):
    """``(lo, hi)`` of a kernel: per tensor, or per output channel (reduced over ``reduce_axes`` and
    reshaped to ``out_shape`` to broadcast against the output)."""
    if not per_channel:
        return range_of(w)
    lo, hi = range_of(w, axes=reduce_axes)
    if out_shape is not None:
        lo, hi = tf.reshape(lo, out_shape), tf.reshape(hi, out_shape)
    return lo, hi


def describe(spec, state=None, seen=None) -> str:
    """A layer's quantization in a few words (``approxsim.report``)."""
    text = f"{spec.fmt.describe()}, {spec.mode}, weights {spec.quantization.weights}"
    if state is not None and seen is not None and float(np.asarray(seen)) > 0:
        lo, hi = (float(v) for v in np.asarray(state))
        text += f", input range [{lo:.4g}, {hi:.4g}]"
    return text
