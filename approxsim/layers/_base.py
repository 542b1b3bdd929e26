"""What every approxsim layer shares: the multiplier options, their config, float32 weights."""

from __future__ import annotations

import tensorflow as tf

from approxsim.ops import resolve_options

try:  # Keras 3 keeps this scope internal; it turns the mixed-precision cast of variables off.
    from keras.src.backend.common.variables import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - other Keras versions
    _AutocastScope = None

PACKAGE = "approxsim"


class AMLayerMixin:
    """Adds ``multiplier``, ``backward`` and ``backend`` to a Keras layer.

    Subclasses call :meth:`_am_setup` after the Keras constructor and add
    :meth:`_am_config` to ``get_config()``.
    """

    def _am_setup(self, multiplier, backward, backend):
        if multiplier is None:
            raise ValueError(f"{type(self).__name__} needs a multiplier, e.g. multiplier='mbm7' "
                             "(see approxsim.multipliers.available()). Received: multiplier=None")
        mult, backward, _ = resolve_options(multiplier, backward, backend)
        self._am_multiplier = mult
        self.backward = backward
        self.backend = backend
        # tf.numpy_function has no XLA kernel; Keras would otherwise turn XLA on by itself on GPUs.
        self.supports_jit = False
        self._am_check_quantization()

    @property
    def multiplier(self):
        """The :class:`~approxsim.Multiplier` this layer's products go through."""
        return self._am_multiplier

    def _am_config(self) -> dict:
        return {"multiplier": self._am_multiplier.name, "backward": self.backward, "backend": self.backend}

    def _am_options(self) -> dict:
        return {"multiplier": self._am_multiplier, "backward": self.backward, "backend": self.backend}

    def _am_check_quantization(self):
        mode = getattr(self, "quantization_mode", None)
        if mode is not None or getattr(self, "quantization_config", None) is not None:
            raise ValueError(f"{type(self).__name__} cannot be quantized: approxsim simulates the multiplier on "
                             f"float32 operands. Use a float dtype policy. Received: quantization_mode={mode!r}")

    def _am_weight(self, get):
        """``get()`` (a weight read) as a float32 tensor, without the mixed-precision cast to float16."""
        if _AutocastScope is None:
            return tf.cast(tf.convert_to_tensor(get()), tf.float32)
        with _AutocastScope(None):
            return tf.cast(tf.convert_to_tensor(get()), tf.float32)

    def _am_finish(self, outputs):
        """Bias and activation, as the stock layer applies them (in the compute dtype)."""
        outputs = tf.cast(outputs, self.compute_dtype)
        if getattr(self, "bias", None) is not None:
            outputs = outputs + tf.cast(self.bias, self.compute_dtype)
        if self.activation is not None:
            outputs = self.activation(outputs)
        return outputs


def check_channels_last(layer, data_format):
    if data_format != "channels_last":
        raise ValueError(f"{type(layer).__name__} supports data_format='channels_last' only (approxsim kernels "
                         f"take NHWC activations). Transpose the input, or exclude this layer from conversion. "
                         f"Received: data_format={data_format!r}")
