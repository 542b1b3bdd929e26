"""The products of every approxsim layer, float or integer, in one place.

A layer calls :meth:`ProductsMixin._am_product` with the kind of product (``"matmul"``,
``"conv2d"``, ``"depthwise"``, ``"conv1d"``, ``"einsum"``) and its geometry. A float multiplier
goes straight to the op of :mod:`approxsim.ops`; an integer one through
:func:`approxsim.layers._quant.quantized_product`, with the activation range of the product's
slot (a non-trainable ``(lo, hi)`` weight and a count, made in ``build``), the kernel's range per
tensor or per output channel, and the product's reference and ``"table"`` surrogates.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from approxsim.geometry import ConvOptions
from approxsim.layers import _quant
from approxsim.ops import am_conv1d, am_conv2d, am_depthwise_conv2d, am_einsum, am_matmul

__all__ = ["ProductsMixin"]


def _conv1d_pads(padding, length, k, stride, dilation):
    """``(left, right)`` zero padding of a 1-D convolution (TF's rules; causal pads left only)."""
    span = (k - 1) * dilation + 1
    if padding == "CAUSAL":
        return span - 1, 0
    if padding == "VALID":
        return 0, 0
    out = -(-length // stride)
    total = max((out - 1) * stride + span - length, 0)
    return total // 2, total - total // 2


class ProductsMixin:
    """Float and integer products for the approxsim layers (see the module docstring)."""

    _AM_SLOTS = ("input",)  # activation ranges kept by an integer layer, one per product

    def _am_build_slots(self):
        if getattr(self, "_am_ranges", None):
            return
        ranges = {}
        if self._am_multiplier.is_integer and self._AM_SLOTS:
            tracker = getattr(self, "_tracker", None)
            relock = tracker is not None and tracker.locked  # a built sub-layer (attention projections)
            if relock:
                tracker.unlock()
            for slot in self._AM_SLOTS:
                state = self.add_weight(name=f"am_{slot}_range", shape=(2,), initializer="zeros", trainable=False)
                seen = self.add_weight(name=f"am_{slot}_seen", shape=(), initializer="zeros", trainable=False)
                ranges[slot] = (state, seen)
            if relock:
                tracker.lock()
        object.__setattr__(self, "_am_ranges", ranges)  # the variables are tracked by add_weight already

    def _am_product(self, kind, a, b, *, training=None, slot="input", weight=True, **geometry):
        """``a (*) b`` of one kind (see the module docstring): ``b`` a kernel (``weight``) or an activation."""
        backend = self.backend
        float_ops = {"multiplier": self._am_multiplier, "backward": self.backward, "backend": backend}
        ops = _OPS[kind]
        if not self._am_multiplier.is_integer:
            return ops["run"](a, b, float_ops, **geometry)
        spec = self._am_quant
        a = tf.cast(a, tf.float32)
        b = tf.cast(b, tf.float32)
        if slot in getattr(self, "_am_ranges", {}):
            state, seen = self._am_ranges[slot]
            a_range = _quant.update_range(state, seen, a, spec.quantization, bool(training))
        else:
            a_range = _quant.range_of(a)
        if weight and spec.quantization.weights == "per-channel":
            axes, shape = ops["channels"](b, **geometry)
            b_range = _quant.weight_range(b, True, axes, shape)
        else:
            b_range = _quant.range_of(b)
        exact = {"multiplier": "fp32", "backward": "exact", "backend": backend}

        def op(qa, qb, mult, pad_value):
            return ops["codes"](qa, qb, {"multiplier": mult, "backend": backend}, pad_value, spec.affine, **geometry)

        table = ops.get("table")
        dims = b.shape[:-1] if kind != "einsum" else b.shape  # contracted (and, depthwise, channel) dims
        terms = None if None in dims else int(np.prod(dims, dtype=np.int64))  # a bound on K
        return _quant.quantized_product(
            op, a, b, spec, self.backward, a_range, b_range,
            ref_op=lambda x, y: ops["run"](x, y, exact, **geometry),
            table_op=table(**geometry) if table is not None and ops["table_ok"](**geometry) else None,
            terms=terms, sums=ops["sums"](**geometry) if "sums" in ops else None)


# --- the kinds of product ------------------------------------------------------------------------------

def _conv_options(strides, padding, dilations, groups=1):
    return ConvOptions.parse(strides=strides, padding=padding, dilations=dilations, groups=groups)


def _conv2d_codes(qa, qb, opts, pad_value, affine, strides, padding, dilations, groups=1):
    if affine:  # pad with the zero point, the code of 0.0
        pads = _quant.explicit_padding(_conv_options(strides, padding, dilations, groups), qa.shape[1:3],
                                       qb.shape[:2])
        qa, padding = _quant.pad_codes(qa, pads, pad_value), "VALID"
    return am_conv2d(qa, qb, strides=strides, padding=padding, dilations=dilations, groups=groups, **opts)


def _depthwise_codes(qa, qb, opts, pad_value, affine, strides, padding, dilations):
    if affine:
        pads = _quant.explicit_padding(_conv_options(strides, padding, dilations), qa.shape[1:3], qb.shape[:2])
        qa, padding = _quant.pad_codes(qa, pads, pad_value), "VALID"
    return am_depthwise_conv2d(qa, qb, strides=strides, padding=padding, dilations=dilations, **opts)


def _conv1d_codes(qa, qb, opts, pad_value, affine, stride, padding, dilations, groups=1):
    if affine and padding != "VALID":
        left, right = _conv1d_pads(padding, qa.shape[1], qb.shape[0], stride, dilations)
        qa = tf.pad(qa, [[0, 0], [left, right], [0, 0]], constant_values=tf.cast(pad_value, qa.dtype))
        padding = "VALID"
    return am_conv1d(qa, qb, stride=stride, padding=padding, dilations=dilations, groups=groups, **opts)


def _einsum_channels(b, equation):
    """Per-channel ranges of an EinsumDense kernel: over its contracted letters, shaped like the
    output's trailing letters (per tensor where the kernel's output letters are not trailing)."""
    lhs, out = equation.replace(" ", "").split("->")
    kspec = lhs.split(",")[1]
    kept = [c for c in kspec if c in out]
    if out[len(out) - len(kept):] != "".join(kept):
        return None, None
    return [i for i, c in enumerate(kspec) if c not in out], [b.shape[kspec.index(c)] for c in kept]


def _window_sums(ones_shape, groups_axis_size):
    """``CodeSums.a`` of a convolution: the product with a kernel of ones, one column per group
    (``ones_shape``), each column repeated for the group's ``groups_axis_size(qb)`` outputs."""

    def sums(product, qa, qb):
        s = product(qa, tf.ones(ones_shape(qb), qa.dtype))
        per_group = groups_axis_size(qb)
        return s if per_group == 1 else tf.repeat(s, per_group, axis=-1)

    return sums


def _channel_sums(axes):
    """``CodeSums.b`` of a kernel whose output channels are its trailing axes (flattened)."""
    return lambda qb: tf.reshape(tf.reduce_sum(qb, axis=axes), [-1])


def _terms(axes):
    return lambda qb: int(np.prod([qb.shape[i] for i in axes], dtype=np.int64))


_OPS = {
    "matmul": {
        "run": lambda a, b, o: am_matmul(a, b, **o),
        "codes": lambda qa, qb, o, z, affine: am_matmul(qa, qb, **o),
        "channels": lambda b: ([0], [b.shape[1]]),
        "table": lambda: _quant.table_matmul,
        "table_ok": lambda: True,
        "sums": lambda: _quant.CodeSums(
            lambda product, qa, qb: tf.reduce_sum(tf.cast(qa, tf.int64), axis=-1, keepdims=True),
            _channel_sums([0]), _terms([0])),
    },
    "conv2d": {
        "run": lambda a, b, o, **g: am_conv2d(a, b, **g, **o),
        "codes": _conv2d_codes,
        "channels": lambda b, **g: ([0, 1, 2], [b.shape[3]]),
        "table": lambda strides, padding, dilations, groups=1: _quant.table_conv(
            _conv_options(strides, padding, dilations, groups)),
        "table_ok": lambda groups=1, **g: groups == 1,
        "sums": lambda groups=1, **g: _quant.CodeSums(
            _window_sums(lambda qb: [*qb.shape[:3], groups], lambda qb: qb.shape[3] // groups),
            _channel_sums([0, 1, 2]), _terms([0, 1, 2])),
    },
    "depthwise": {
        "run": lambda a, b, o, **g: am_depthwise_conv2d(a, b, **g, **o),
        "codes": _depthwise_codes,
        "channels": lambda b, **g: ([0, 1], [b.shape[2] * b.shape[3]]),
        "table_ok": lambda **g: False,
        "sums": lambda **g: _quant.CodeSums(
            _window_sums(lambda qb: [*qb.shape[:3], 1], lambda qb: qb.shape[3]),
            _channel_sums([0, 1]), _terms([0, 1])),
    },
    "conv1d": {
        "run": lambda a, b, o, **g: am_conv1d(a, b, **g, **o),
        "codes": _conv1d_codes,
        "channels": lambda b, **g: ([0, 1], [b.shape[2]]),
        "table_ok": lambda **g: False,
        "sums": lambda groups=1, **g: _quant.CodeSums(
            _window_sums(lambda qb: [*qb.shape[:2], groups], lambda qb: qb.shape[2] // groups),
            _channel_sums([0, 1]), _terms([0, 1])),
    },
    "einsum": {
        "run": lambda a, b, o, equation: am_einsum(equation, a, b, **o),
        "codes": lambda qa, qb, o, z, affine, equation: am_einsum(equation, qa, qb, **o),
        "channels": lambda b, equation: _einsum_channels(b, equation),
        "table_ok": lambda **g: False,
    },
}
