"""AMDepthwiseConv2D: ``keras.layers.DepthwiseConv2D`` through an approximate multiplier."""

from __future__ import annotations

import keras

from approxsim.layers._base import PACKAGE, AMLayerMixin, check_channels_last
from approxsim.ops import am_depthwise_conv2d


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMDepthwiseConv2D(AMLayerMixin, keras.layers.DepthwiseConv2D):
    """A drop-in ``keras.layers.DepthwiseConv2D`` whose products use an approximate multiplier.

    Args:
      kernel_size, strides, padding, depth_multiplier, ...: every argument of
        ``keras.layers.DepthwiseConv2D`` (``data_format="channels_last"`` only).
      multiplier: name or :class:`~approxsim.Multiplier` (forward ``T[x][w]``).
      backward: ``"approx"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, kernel_size, *args, multiplier=None, backward="approx", backend=None, **kwargs):
        super().__init__(kernel_size, *args, **kwargs)
        check_channels_last(self, self.data_format)
        self._am_setup(multiplier, backward, backend)

    def call(self, inputs):
        kernel = self._am_weight(lambda: self.kernel)
        y = am_depthwise_conv2d(inputs, kernel, strides=self.strides, padding=self.padding.upper(),
                                dilations=self.dilation_rate, **self._am_options())
        return self._am_finish(y)

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
