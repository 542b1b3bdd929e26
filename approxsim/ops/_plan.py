"""What a TF op runs, decided once per call: an :class:`OpPlan` of two executors.

``plan(multiplier, backward, backend)`` resolves the options into

* ``forward``: the executor of the op's products;
* ``gradient``: the executor of both gradient products (the multiplier itself for
  ``backward="approx"``, the exact ``fp32`` product for ``backward="exact"``; ``None`` for an
  integer multiplier, whose ops take integer codes and have no gradient: the layers give them
  theirs, see :mod:`approxsim.layers._quant`).

An executor turns tensors into tensors. :class:`BridgeExecutor` runs bound backend kernels
through :mod:`approxsim.ops._bridge`; :class:`NativeExecutor` runs the exact product in
TensorFlow's own kernels where this TensorFlow has them and is exact, and hands the rest
(dilated gradients without oneDNN, grouped convolutions, TF32 on a GPU) to a BridgeExecutor
of the exact product. This module is the one place that knows what TensorFlow lacks.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
import tensorflow as tf

from approxsim import multipliers
from approxsim.backends import get_backend
from approxsim.ops import _bridge

__all__ = ["OpPlan", "plan", "resolve_options", "BACKWARD_MODES", "INT_BACKWARD_MODES"]

BACKWARD_MODES = ("approx", "exact")
INT_BACKWARD_MODES = ("ste", "table", "exact")  # integer multipliers (approxsim.layers._quant)


def resolve_options(multiplier, backward="approx", backend=None):
    """Validates the options every op and layer takes.

    Returns:
      ``(Multiplier, backward, backend object)``; for an integer multiplier ``"approx"`` (the
      default) becomes ``"ste"``.

    Raises:
      UnknownMultiplierError: the multiplier is not registered (the message suggests close names).
      ValueError: ``backward`` is not one of the multiplier's modes, or the backend name is unknown.
    """
    mult = multipliers.get(multiplier)
    if mult.is_integer:
        backward = "ste" if backward == "approx" else backward
        if backward not in INT_BACKWARD_MODES:
            raise ValueError(f'`backward` for the integer multiplier {mult.name!r} must be "ste" (straight-through '
                             f'gradients of the exact product, the default), "table" (finite differences of the '
                             f'table) or "exact" (gradients of the float product). Received: backward={backward!r}')
    elif backward not in BACKWARD_MODES:
        raise ValueError(f'`backward` must be "approx" (gradients through the multiplier) or "exact" '
                         f"(exact fp32 gradients). Received: backward={backward!r}")
    return mult, backward, get_backend(backend)


# --- what this TensorFlow can do -------------------------------------------------------------------

def tf_is_exact() -> bool:
    """Whether TF's own float32 kernels compute exact products here (no TF32 on a GPU)."""
    return (not tf.config.experimental.tensor_float_32_execution_enabled()
            or not tf.config.list_physical_devices("GPU"))


@functools.lru_cache(maxsize=None)
def tf_has_dilated_conv_gradients() -> bool:
    """Whether this TF's CPU kernels compute dilated ``Conv2DBackpropInput``/``Filter`` (probed once).

    TensorFlow's Eigen CPU kernels lack them ("Current CPU implementations do not yet support
    dilation rates larger than 1"); with oneDNN (Intel CPUs, by default) they exist.
    """
    with tf.init_scope(), tf.device("/CPU:0"):
        one = tf.ones([1, 2, 2, 1])
        try:
            tf.raw_ops.Conv2DBackpropInput(input_sizes=[1, 4, 4, 1], filter=tf.ones([2, 2, 1, 1]), out_backprop=one,
                                           strides=[1, 1, 1, 1], padding="VALID", dilations=[1, 2, 2, 1])
            tf.raw_ops.Conv2DBackpropFilter(input=tf.ones([1, 4, 4, 1]), filter_sizes=[2, 2, 1, 1], out_backprop=one,
                                            strides=[1, 1, 1, 1], padding="VALID", dilations=[1, 2, 2, 1])
        except (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError):
            return False
    return True


# --- executors -----------------------------------------------------------------------------------

def _dims(shape_value) -> tuple:
    """A runtime shape (NumPy array or eager tensor) as a tuple of ints."""
    return tuple(int(d) for d in np.asarray(shape_value))


class BridgeExecutor:
    """Bound backend kernels, called from the graph (``tf.numpy_function`` or ``tf.py_function``)."""

    native = False

    def __init__(self, kernels):
        self.kernels = kernels
        self._dtype = tf.int64 if kernels.multiplier.is_integer else tf.float32  # exact integer sums

    def _call(self, method, tensors, static_shape, make_args):
        return _bridge.call(self.kernels, method, tensors, static_shape, make_args, self._dtype)

    def matmul(self, a, b, shape):
        def args(v):
            return (v[0], v[1]), {"transpose_a": shape.transpose_a, "transpose_b": shape.transpose_b}

        return self._call("matmul", [a, b], shape.output_shape, args)

    def conv2d(self, x, w, options, static_shape):
        return self._call("conv2d", [x, w], static_shape,
                          lambda v: ((v[0], v[1], options.geometry(v[0].shape, v[1].shape)), {}))

    def conv2d_input_grad(self, dy, w, x, options):
        return self._call("conv2d_input_grad", [dy, w, tf.shape(x)], x.shape,
                          lambda v: ((v[0], v[1], options.geometry(_dims(v[2]), v[1].shape)), {}))

    def conv2d_filter_grad(self, x, dy, w, options):
        return self._call("conv2d_filter_grad", [x, dy, tf.shape(w)], w.shape,
                          lambda v: ((v[0], v[1], options.geometry(v[0].shape, _dims(v[2]))), {}))


class NativeExecutor:
    """The exact product in TensorFlow's own kernels; what TF lacks goes to ``fallback``."""

    native = True

    def __init__(self, fallback: BridgeExecutor):
        self.fallback = fallback

    def matmul(self, a, b, shape):
        return tf.linalg.matmul(a, b, transpose_a=shape.transpose_a, transpose_b=shape.transpose_b)

    # Which convolutions TF computes: groups == 1 (conv2d) and depthwise with square strides and
    # string padding; never strides and dilations > 1 on the same axis.
    @staticmethod
    def _kind(options, w):
        (sh, sw), (dh, dw) = options.strides, options.dilations
        if (sh > 1 and dh > 1) or (sw > 1 and dw > 1):
            return None
        if options.groups == 1:
            return "conv"
        kh, kw, cig, cout = w.shape.as_list()
        if cig == 1 and isinstance(options.padding, str) and sh == sw and None not in (kh, kw, cout):
            return "depthwise"
        return None

    def supports_forward(self, options, w) -> bool:
        return self._kind(options, w) is not None

    def supports_gradients(self, options, w) -> bool:
        kind = self._kind(options, w)
        dilated = max(options.dilations) > 1
        if kind == "conv":
            return not dilated or tf_has_dilated_conv_gradients()
        return kind == "depthwise" and not dilated  # TF's depthwise gradient kernels take no dilation

    @staticmethod
    def _explicit(options):
        return [[0, 0], list(options.padding[0]), list(options.padding[1]), [0, 0]]

    def conv2d(self, x, w, options, static_shape):
        if not self.supports_forward(options, w):
            return self.fallback.conv2d(x, w, options, static_shape)
        (sh, sw), (dh, dw) = options.strides, options.dilations
        if self._kind(options, w) == "depthwise":
            kh, kw, _, cout = w.shape.as_list()
            wd = tf.reshape(w, [kh, kw, options.groups, cout // options.groups])
            return tf.nn.depthwise_conv2d(x, wd, [1, sh, sw, 1], options.padding, dilations=[dh, dw])
        if isinstance(options.padding, str):
            return tf.nn.conv2d(x, w, [1, sh, sw, 1], options.padding, dilations=[1, dh, dw, 1])
        return tf.nn.conv2d(tf.pad(x, self._explicit(options)), w, [1, sh, sw, 1], "VALID", dilations=[1, dh, dw, 1])

    def conv2d_input_grad(self, dy, w, x, options):
        if not self.supports_gradients(options, w):
            return self.fallback.conv2d_input_grad(dy, w, x, options)
        strides = [1, *options.strides, 1]
        if self._kind(options, w) == "depthwise":
            kh, kw, _, cout = w.shape.as_list()
            wd = tf.reshape(w, [kh, kw, options.groups, cout // options.groups])
            return tf.raw_ops.DepthwiseConv2dNativeBackpropInput(
                input_sizes=tf.shape(x), filter=wd, out_backprop=dy, strides=strides, padding=options.padding)
        dilations = [1, *options.dilations, 1]
        if isinstance(options.padding, str):
            return tf.raw_ops.Conv2DBackpropInput(input_sizes=tf.shape(x), filter=w, out_backprop=dy,
                                                  strides=strides, padding=options.padding, dilations=dilations)
        (pt, pb), (pl, pr) = options.padding
        shape = tf.shape(x) + tf.constant([0, pt + pb, pl + pr, 0])
        dxp = tf.raw_ops.Conv2DBackpropInput(input_sizes=shape, filter=w, out_backprop=dy, strides=strides,
                                             padding="VALID", dilations=dilations)
        return dxp[:, pt:pt + tf.shape(x)[1], pl:pl + tf.shape(x)[2], :]

    def conv2d_filter_grad(self, x, dy, w, options):
        if not self.supports_gradients(options, w):
            return self.fallback.conv2d_filter_grad(x, dy, w, options)
        strides = [1, *options.strides, 1]
        if self._kind(options, w) == "depthwise":
            kh, kw, _, cout = w.shape.as_list()
            dwd = tf.raw_ops.DepthwiseConv2dNativeBackpropFilter(
                input=x, filter_sizes=[kh, kw, options.groups, cout // options.groups], out_backprop=dy,
                strides=strides, padding=options.padding)
            return tf.reshape(dwd, tf.shape(w))
        dilations = [1, *options.dilations, 1]
        if isinstance(options.padding, str):
            return tf.raw_ops.Conv2DBackpropFilter(input=x, filter_sizes=tf.shape(w), out_backprop=dy,
                                                   strides=strides, padding=options.padding, dilations=dilations)
        return tf.raw_ops.Conv2DBackpropFilter(input=tf.pad(x, self._explicit(options)), filter_sizes=tf.shape(w),
                                               out_backprop=dy, strides=strides, padding="VALID",
                                               dilations=dilations)


def _executor(mult, be):
    bridge = BridgeExecutor(be.bind(mult))
    if mult.is_exact and not mult.is_integer and tf_is_exact():
        return NativeExecutor(bridge)
    return bridge


@dataclasses.dataclass(frozen=True)
class OpPlan:
    """The resolved options of one op call.

    Attributes:
      multiplier: the :class:`~approxsim.Multiplier` of the forward products.
      backward: ``"approx"`` or ``"exact"`` (integer multipliers: ``"ste"``, ``"table"`` or ``"exact"``).
      forward: executor of the forward products.
      gradient: executor of both gradient products (None for integer multipliers).
    """
    multiplier: object
    backward: str
    forward: object
    gradient: object


def plan(multiplier, backward="approx", backend=None) -> OpPlan:
    """Resolves ``(multiplier, backward, backend)`` into an :class:`OpPlan` (see the module docstring).

    Raises:
      As :func:`resolve_options`.
    """
    mult, backward, be = resolve_options(multiplier, backward, backend)
    forward = _executor(mult, be)
    if mult.is_integer:
        return OpPlan(mult, backward, forward, None)
    gradient = forward if backward == "approx" else _executor(multipliers.get("fp32"), be)
    return OpPlan(mult, backward, forward, gradient)
