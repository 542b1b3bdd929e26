"""AMSeparableConv2D: ``keras.layers.SeparableConv2D`` through an approximate multiplier."""

from __future__ import annotations

import keras

from approxsim.layers._base import PACKAGE, AMLayerMixin, check_channels_last


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMSeparableConv2D(AMLayerMixin, keras.layers.SeparableConv2D):
    """A drop-in ``keras.layers.SeparableConv2D``: both the depthwise and the pointwise
    convolution use an approximate multiplier (products ``T[x][w]`` in each).

    Args:
      filters, kernel_size, strides, ...: every argument of ``keras.layers.SeparableConv2D``
        (``data_format="channels_last"`` only).
      multiplier: name or :class:`~approxsim.Multiplier`.
      backward: ``"approx"`` or ``"exact"`` (exact fp32 gradients); integer multipliers: ``"ste"``
        (the default), ``"table"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
      quantization: an :class:`~approxsim.Quantization` (or its config) for an integer multiplier
        (``None``: the defaults); float multipliers ignore it.
    """

    def __init__(self, filters, kernel_size, *args, multiplier=None, backward="approx", backend=None, quantization=None,
                 **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        check_channels_last(self, self.data_format)
        self._am_setup(multiplier, backward, backend, quantization)

    _AM_SLOTS = ("input", "pointwise")  # the depthwise product's input, then the pointwise one's

    def call(self, inputs, training=None):
        depthwise = self._am_weight(lambda: self.depthwise_kernel)
        pointwise = self._am_weight(lambda: self.pointwise_kernel)
        y = self._am_product("depthwise", inputs, depthwise, training=training, strides=self.strides,
                             padding=self.padding.upper(), dilations=self.dilation_rate)
        y = self._am_product("conv2d", y, pointwise, training=training, slot="pointwise", strides=1,
                             padding="VALID", dilations=1)
        return self._am_finish(y)

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
