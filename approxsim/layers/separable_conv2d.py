"""AMSeparableConv2D: ``keras.layers.SeparableConv2D`` through an approximate multiplier."""

from __future__ import annotations

import keras

from approxsim.layers._base import PACKAGE, AMLayerMixin, check_channels_last
from approxsim.ops import am_conv2d, am_depthwise_conv2d


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMSeparableConv2D(AMLayerMixin, keras.layers.SeparableConv2D):
    """A drop-in ``keras.layers.SeparableConv2D``: both the depthwise and the pointwise
    convolution use an approximate multiplier (products ``T[x][w]`` in each).

    Args:
      filters, kernel_size, strides, ...: every argument of ``keras.layers.SeparableConv2D``
        (``data_format="channels_last"`` only).
      multiplier: name or :class:`~approxsim.Multiplier`.
      backward: ``"approx"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, filters, kernel_size, *args, multiplier=None, backward="approx", backend=None, **kwargs):
        super().__init__(filters, kernel_size, *args, **kwargs)
        check_channels_last(self, self.data_format)
        self._am_setup(multiplier, backward, backend)

    def call(self, inputs):
        depthwise = self._am_weight(lambda: self.depthwise_kernel)
        pointwise = self._am_weight(lambda: self.pointwise_kernel)
        y = am_depthwise_conv2d(inputs, depthwise, strides=self.strides, padding=self.padding.upper(),
                                dilations=self.dilation_rate, **self._am_options())
        y = am_conv2d(y, pointwise, **self._am_options())
        return self._am_finish(y)

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
