"""AMConv2D: ``keras.layers.Conv2D`` with its products through an approximate multiplier."""

from __future__ import annotations

import keras

from approxsim.layers._base import PACKAGE, AMLayerMixin, check_channels_last


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMConv2D(AMLayerMixin, keras.layers.Conv2D):
    """A drop-in ``keras.layers.Conv2D`` whose products ``x (*) kernel`` use an approximate multiplier.

    Supports strides, ``"valid"``/``"same"`` padding, dilation and groups;
    ``data_format="channels_last"`` only (others raise).

    Args:
      filters, kernel_size, strides, ...: every argument of ``keras.layers.Conv2D``.
      multiplier: name or :class:`~approxsim.Multiplier` (forward ``T[x][w]``, input gradient
        ``T[dy][w]``, filter gradient ``T[x][dy]``).
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

    def call(self, inputs, training=None):
        kernel = self._am_weight(lambda: self.kernel)
        y = self._am_product("conv2d", inputs, kernel, training=training, strides=self.strides,
                             padding=self.padding.upper(), dilations=self.dilation_rate, groups=self.groups)
        return self._am_finish(y)

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
