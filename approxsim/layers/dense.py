"""AMDense: ``keras.layers.Dense`` with its products through an approximate multiplier."""

from __future__ import annotations

import keras
import tensorflow as tf

from approxsim.layers._base import PACKAGE, AMLayerMixin


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMDense(AMLayerMixin, keras.layers.Dense):
    """A drop-in ``keras.layers.Dense`` whose products ``x (*) kernel`` use an approximate multiplier.

    Inputs of any rank >= 2 are approximate (the leading dimensions are flattened
    into one matrix product). Under a mixed-precision policy the product is
    computed in float32 from the float32 kernel and cast to the compute dtype.

    Args:
      units, activation, use_bias, ...: every argument of ``keras.layers.Dense``.
      multiplier: name or :class:`~approxsim.Multiplier` (products ``T[x][kernel]``).
      backward: ``"approx"`` (gradients through the multiplier, as ApproxTrain) or ``"exact"``;
        integer multipliers: ``"ste"`` (the default), ``"table"`` or ``"exact"`` (see approxsim.layers._quant).
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
      quantization: an :class:`~approxsim.Quantization` (or its config) for an integer multiplier
        (``None``: the defaults); float multipliers ignore it.
    """

    def __init__(self, units, *args, multiplier=None, backward="approx", backend=None, quantization=None, **kwargs):
        super().__init__(units, *args, **kwargs)
        self._am_setup(multiplier, backward, backend, quantization)

    def call(self, inputs, training=None):
        kernel = self._am_weight(lambda: self.kernel)
        x = tf.convert_to_tensor(inputs)
        if x.shape.rank == 2:
            y = self._am_product("matmul", x, kernel, training=training)
        else:
            lead = tf.shape(x)[:-1]
            y = self._am_product("matmul", tf.reshape(x, [-1, kernel.shape[0]]), kernel, training=training)
            y = tf.reshape(y, tf.concat([lead, [self.units]], 0))
            y.set_shape(x.shape[:-1].concatenate([self.units]))
        return self._am_finish(y)

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
