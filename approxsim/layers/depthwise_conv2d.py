"""AMDepthwiseConv2D: ``keras.layers.DepthwiseConv2D`` through an approximate multiplier."""

from __future__ import annotations

import keras

from approxsim.layers._base import PACKAGE, AMLayerMixin, check_channels_last


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMDepthwiseConv2D(AMLayerMixin, keras.layers.DepthwiseConv2D):
    """A drop-in ``keras.layers.DepthwiseConv2D`` whose products use an approximate multiplier.

    Args:
      kernel_size, strides, padding, depth_multiplier, ...: every argument of
        ``keras.layers.DepthwiseConv2D`` (``data_format="channels_last"`` only).
      multiplier: name or :class:`~approxsim.Multiplier` (forward ``T[x][w]``).
      backward: ``"approx"`` or ``"exact"`` (exact fp32 gradients); integer multipliers: ``"ste"``
        (the default), ``"table"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
      quantization: an :class:`~approxsim.Quantization` (or its config) for an integer multiplier
        (``None``: the defaults); float multipliers ignore it.
    """

    def __init__(self, kernel_size, *args, multiplier=None, backward="approx", backend=None, quantization=None,
                 **kwargs):
        super().__init__(kernel_size, *args, **kwargs)
        check_channels_last(self, self.data_format)
        self._am_setup(multiplier, backward, backend, quantization)

    def call(self, inputs, training=None):
        kernel = self._am_weight(lambda: self.kernel)
        y = self._am_product("depthwise", inputs, kernel, training=training, strides=self.strides,
                             padding=self.padding.upper(), dilations=self.dilation_rate)
        return self._am_finish(y)

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
