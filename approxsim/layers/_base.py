"""What every approxsim layer shares: the multiplier options, their config, float32 weights.

The products themselves (float, or quantized for integer multipliers) are in
:mod:`approxsim.layers._products`.

A layer's config records its multiplier's name and fingerprint (a digest of the table or of the
model's sources). Loading a saved layer whose multiplier has changed since (another model
registered under the name) raises an error naming both fingerprints, unless the load runs
inside :func:`accept_multiplier_changes`.
"""

from __future__ import annotations

import contextlib
import threading

import keras
import tensorflow as tf

from approxsim.layers._products import ProductsMixin
from approxsim.ops import resolve_options
from approxsim.quantization import Quantization

# Keras 3 keeps this scope internal; it turns the mixed-precision cast of variables off. pyproject.toml
# pins the Keras versions where it lives here, and tests/test_layers.py fails if it moves.
try:
    from keras.src.backend.common.variables import AutocastScope as _AutocastScope
except ImportError:  # pragma: no cover - a Keras outside the pinned range
    _AutocastScope = None

PACKAGE = "approxsim"
_accepting = threading.local()


@contextlib.contextmanager
def accept_multiplier_changes():
    """Loads saved approxsim layers even where their multiplier's fingerprint has changed since saving.

    >>> with approxsim.layers.accept_multiplier_changes():
    ...     model = keras.models.load_model("model.keras")
    """
    before = getattr(_accepting, "on", False)
    _accepting.on = True
    try:
        yield
    finally:
        _accepting.on = before


class AMLayerMixin(ProductsMixin):
    """Adds ``multiplier``, ``backward``, ``backend`` and ``quantization`` to a Keras layer.

    Subclasses call :meth:`_am_setup` after the Keras constructor, compute their products with
    :meth:`_am_product` and add :meth:`_am_config` to ``get_config()``. With an integer
    multiplier, ``build`` also makes the non-trainable activation ranges of the layer's products.
    """

    def _am_setup(self, multiplier, backward, backend, quantization=None):
        if multiplier is None:
            raise ValueError(f"{type(self).__name__} needs a multiplier, e.g. multiplier='mbm7' "
                             "(see approxsim.multipliers.available()). Received: multiplier=None")
        mult, backward, _ = resolve_options(multiplier, backward, backend)
        self._am_multiplier = mult
        self.backward = backward
        self.backend = backend
        self._am_quantization = None if quantization is None else Quantization.of(quantization)
        if mult.is_integer:
            from approxsim.layers._quant import QuantSpec

            self._am_quant = QuantSpec(mult, self._am_quantization)
        # tf.numpy_function has no XLA kernel; Keras would otherwise turn XLA on by itself on GPUs.
        self.supports_jit = False
        self._am_check_quantization()

    def build(self, input_shape):  # Keras passes the shape by this parameter's name
        super().build(input_shape)
        self._am_build_slots()

    # The stock layers save their own weights by index and check the count on loading: the
    # activation ranges of an integer layer follow them, at the next indices.
    def _am_range_variables(self):
        return [v for pair in getattr(self, "_am_ranges", {}).values() for v in pair]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        start = len(store.keys())
        for i, v in enumerate(self._am_range_variables()):
            store[str(start + i)] = v

    def load_own_variables(self, store):
        super().load_own_variables(store)
        extra = self._am_range_variables()
        start = len(store.keys()) - len(extra)
        for i, v in enumerate(extra):
            v.assign(store[str(start + i)])

    @property
    def multiplier(self):
        """The :class:`~approxsim.Multiplier` this layer's products go through."""
        return self._am_multiplier

    @property
    def quantization(self):
        """The :class:`~approxsim.Quantization` of an integer multiplier's operands (``None``: the defaults;
        float multipliers ignore it)."""
        return self._am_quantization

    def _am_describe(self) -> str:
        """The integer quantization in a few words (``approxsim.report``); ``""`` for float multipliers."""
        if not self._am_multiplier.is_integer:
            return ""
        from approxsim.layers._quant import describe

        state, seen = next(iter(getattr(self, "_am_ranges", {}).values()), (None, None))
        return describe(self._am_quant, state, seen)

    def _am_config(self) -> dict:
        q = self._am_quantization
        return {"multiplier": self._am_multiplier.name, "multiplier_fingerprint": self._am_multiplier.fingerprint,
                "backward": self.backward, "backend": self.backend,
                "quantization": None if q is None else q.get_config()}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        saved = config.pop("multiplier_fingerprint", None)
        layer = super().from_config(config)
        now = layer.multiplier.fingerprint
        if saved is not None and saved != now and not getattr(_accepting, "on", False):
            raise ValueError(
                f"Layer {layer.name!r} was saved with multiplier {layer.multiplier.name!r} of fingerprint {saved}, but "
                f"the multiplier registered under that name now has fingerprint {now} (another model was registered "
                f"as {layer.multiplier.name!r} since). Register the original model again, or load inside `with "
                f"approxsim.layers.accept_multiplier_changes():` to use the current one.")
        return layer

    def _am_check_quantization(self):
        mode = getattr(self, "quantization_mode", None)
        if mode is not None or getattr(self, "quantization_config", None) is not None:
            raise ValueError(f"{type(self).__name__} cannot be quantized: approxsim simulates the multiplier on "
                             f"float32 operands. Use a float dtype policy. Received: quantization_mode={mode!r}")

    def _am_weight(self, get):
        """``get()`` (a weight read) as a float32 tensor, without the mixed-precision cast to float16."""
        if _AutocastScope is None:
            if self.compute_dtype != "float32":
                raise RuntimeError(f"{type(self).__name__} under a mixed-precision policy needs a Keras in the range "
                                   f"approxsim supports (see pyproject.toml); Keras {keras.__version__} would cast "
                                   f"its float32 weights down first.")
            return tf.convert_to_tensor(get())
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


RANGE_PREFIX = "am_"  # the activation-range variables of integer layers (ProductsMixin._am_build_slots)


def stock_weights(model) -> list:
    """``model.weights`` without the integer layers' activation ranges: the weights a float model of
    the same network has, in the same order (convert and PTQ copy weights through it)."""
    return [v for v in model.weights if not v.name.startswith(RANGE_PREFIX)]


def check_channels_last(layer, data_format):
    if data_format != "channels_last":
        raise ValueError(f"{type(layer).__name__} supports data_format='channels_last' only (approxsim kernels "
                         f"take NHWC activations). Transpose the input, or exclude this layer from conversion. "
                         f"Received: data_format={data_format!r}")
