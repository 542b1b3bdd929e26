"""Stock TF/Keras convolutions that need no dilated kernels (independent computations for the tests).

TensorFlow's CPU kernels without oneDNN (AMD machines, or ``TF_ENABLE_ONEDNN_OPTS=0``) have no
dilated ``Conv2DBackpropInput``/``Conv2DBackpropFilter``. A dilated convolution equals the
undilated convolution with the filter zero-inserted to its dilated size, and that one has
every gradient on every CPU, so the tests compare dilated cases with it, on every host.
"""

import keras
import tensorflow as tf


def dilate_kernel(w, dilations):
    """HWIO ``w`` with ``dh - 1`` (``dw - 1``) zero rows (columns) between taps; differentiable."""
    dh, dw = (dilations, dilations) if isinstance(dilations, int) else tuple(dilations)
    if dh == dw == 1:
        return w
    kh, kw, ci, co = w.shape
    spread = tf.pad(w[:, None, :, None], [[0, 0], [0, dh - 1], [0, 0], [0, dw - 1], [0, 0], [0, 0]])
    return tf.reshape(spread, [kh * dh, kw * dw, ci, co])[:(kh - 1) * dh + 1, :(kw - 1) * dw + 1]


def conv2d(x, w, strides, padding, dilations=1):
    """``tf.nn.conv2d(x, w, strides, padding, dilations=dilations)`` through an undilated convolution."""
    return tf.nn.conv2d(x, dilate_kernel(w, dilations), strides, padding)


def conv1d(x, w, stride, padding, dilations=1):
    """``tf.nn.conv1d`` likewise (``w``: (K, C, COUT))."""
    y = conv2d(x[:, None], w[None], [1, stride], padding, (1, dilations))
    return y[:, 0]


class ZeroInsertedConv2D(keras.layers.Conv2D):
    """Stock ``Conv2D``, its dilated filter applied as a zero-inserted undilated one."""

    def convolution_op(self, inputs, kernel):
        return conv2d(inputs, kernel, list(self.strides), self.padding.upper(), self.dilation_rate)


class ZeroInsertedConv1D(keras.layers.Conv1D):
    """Stock ``Conv1D`` (causal padding included), its dilated filter zero-inserted."""

    def call(self, inputs):
        padding = self.padding.upper()
        if padding == "CAUSAL":
            inputs = tf.pad(inputs, [[0, 0], [(self.kernel_size[0] - 1) * self.dilation_rate[0], 0], [0, 0]])
            padding = "VALID"
        y = conv1d(inputs, self.kernel, self.strides[0], padding, self.dilation_rate[0])
        if self.use_bias:
            y = y + self.bias
        return self.activation(y) if self.activation is not None else y
