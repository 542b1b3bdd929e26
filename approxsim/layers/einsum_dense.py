"""AMEinsumDense: ``keras.layers.EinsumDense`` through an approximate multiplier.

Used for the projections of :class:`~approxsim.layers.AMMultiHeadAttention`.
"""

from __future__ import annotations

import keras

from approxsim.layers._base import PACKAGE, AMLayerMixin


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMEinsumDense(AMLayerMixin, keras.layers.EinsumDense):
    """A drop-in ``keras.layers.EinsumDense`` whose products ``x (*) kernel`` use an approximate multiplier.

    Args:
      equation, output_shape, ...: every argument of ``keras.layers.EinsumDense``.
      multiplier: name or :class:`~approxsim.Multiplier` (products ``T[x][kernel]``).
      backward: ``"approx"`` or ``"exact"`` (exact fp32 gradients); integer multipliers: ``"ste"``
        (the default), ``"table"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
      quantization: an :class:`~approxsim.Quantization` (or its config) for an integer multiplier
        (``None``: the defaults); float multipliers ignore it.
    """

    def __init__(self, equation, output_shape, *args, multiplier=None, backward="approx", backend=None, quantization=None,
                 **kwargs):
        super().__init__(equation, output_shape, *args, **kwargs)
        self._am_setup(multiplier, backward, backend, quantization)

    def call(self, inputs, training=None):
        kernel = self._am_weight(lambda: self.kernel)
        return self._am_finish(self._am_product("einsum", inputs, kernel, training=training, equation=self.equation))

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
