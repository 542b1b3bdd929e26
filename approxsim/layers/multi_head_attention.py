"""AMMultiHeadAttention: ``keras.layers.MultiHeadAttention`` through an approximate multiplier."""

from __future__ import annotations

import keras
import tensorflow as tf

from approxsim.layers._base import PACKAGE, AMLayerMixin
from approxsim.layers.einsum_dense import AMEinsumDense

_PROJECTIONS = ("_query_dense", "_key_dense", "_value_dense", "_gate_dense", "_output_dense")


@keras.saving.register_keras_serializable(package=PACKAGE)
class AMMultiHeadAttention(AMLayerMixin, keras.layers.MultiHeadAttention):
    """A drop-in ``keras.layers.MultiHeadAttention`` with every matrix product approximate.

    The query, key, value (and gate) projections and the output projection are
    :class:`AMEinsumDense` layers (products ``T[x][kernel]``); the attention scores
    ``Q K^T`` look up ``T[q][k]`` and the attention output ``weights V`` looks up
    ``T[weights][v]``. Softmax, masking, scaling and dropout stay exact. The fused
    ``dot_product_attention`` kernels (flash attention) are never used.

    Args:
      num_heads, key_dim, ...: every argument of ``keras.layers.MultiHeadAttention``.
      multiplier: name or :class:`~approxsim.Multiplier`.
      backward: ``"approx"`` or ``"exact"`` (exact fp32 gradients); integer multipliers: ``"ste"``
        (the default), ``"table"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
      quantization: an :class:`~approxsim.Quantization` (or its config) for an integer multiplier
        (``None``: the defaults); float multipliers ignore it. The
        attention products quantize both operands with their own batch ranges.
    """

    def __init__(self, num_heads, key_dim, *args, multiplier=None, backward="approx", backend=None, quantization=None,
                 **kwargs):
        super().__init__(num_heads, key_dim, *args, **kwargs)
        self._am_setup(multiplier, backward, backend, quantization)

    _AM_SLOTS = ()  # the attention products quantize with their batch ranges

    def build(self, query_shape, value_shape, key_shape=None):
        keras.layers.MultiHeadAttention.build(self, query_shape, value_shape, key_shape)
        # The stock build creates EinsumDense projections; make them approximate in place, so that
        # their names, variables and weight order stay those of the stock layer.
        for attr in _PROJECTIONS:
            sub = getattr(self, attr, None)
            if sub is not None and not isinstance(sub, AMEinsumDense):
                sub.__class__ = AMEinsumDense
                sub._am_setup(self._am_multiplier, self.backward, self.backend, self._am_quantization)
                sub._am_build_slots()
        self._am_build_slots()

    def _compute_attention(self, query, key, value, attention_mask=None, training=None,
                           return_attention_scores=False, use_causal_mask=False):
        if self._flash_attention and return_attention_scores:
            raise ValueError("Returning attention scores is not supported when flash attention is enabled. "
                             "Received: flash_attention=True, return_attention_scores=True")
        if use_causal_mask:
            causal = self._compute_causal_mask(query, value)
            attention_mask = causal if attention_mask is None else tf.logical_and(
                tf.cast(attention_mask, tf.bool), causal)
        query = query * tf.cast(self._inverse_sqrt_key_dim, query.dtype)
        # Keras writes the scores as einsum(eq, key, query); we put the query first: T[q][k].
        lhs, out = self._dot_product_equation.split("->")
        key_spec, query_spec = lhs.split(",")
        scores = self._am_product("einsum", query, key, training=training, slot=None, weight=False,
                                  equation=f"{query_spec},{key_spec}->{out}")
        scores = self._masked_softmax(scores, attention_mask)
        weights = self._dropout_layer(scores, training=training) if self._dropout > 0.0 else scores
        output = self._am_product("einsum", weights, value, training=training, slot=None, weight=False,
                                  equation=self._combine_equation)
        return output, scores

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
