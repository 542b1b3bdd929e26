"""AMMultiHeadAttention: ``keras.layers.MultiHeadAttention`` through an approximate multiplier."""

from __future__ import annotations

import keras
import tensorflow as tf

from approxsim.layers._base import PACKAGE, AMLayerMixin
from approxsim.layers.einsum_dense import AMEinsumDense
from approxsim.ops import am_einsum

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
      backward: ``"approx"`` or ``"exact"``.
      backend: ``None`` (auto), ``"reference"``, ``"cpu"`` or ``"cuda"``.
    """

    def __init__(self, num_heads, key_dim, *args, multiplier=None, backward="approx", backend=None, **kwargs):
        super().__init__(num_heads, key_dim, *args, **kwargs)
        self._am_setup(multiplier, backward, backend)

    def build(self, query_shape, value_shape, key_shape=None):
        super().build(query_shape, value_shape, key_shape)
        # The stock build creates EinsumDense projections; make them approximate in place, so that
        # their names, variables and weight order stay those of the stock layer.
        for attr in _PROJECTIONS:
            sub = getattr(self, attr, None)
            if sub is not None and not isinstance(sub, AMEinsumDense):
                sub.__class__ = AMEinsumDense
                sub._am_setup(self._am_multiplier, self.backward, self.backend)

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
        scores = am_einsum(f"{query_spec},{key_spec}->{out}", query, key, **self._am_options())
        scores = self._masked_softmax(scores, attention_mask)
        weights = self._dropout_layer(scores, training=training) if self._dropout > 0.0 else scores
        output = am_einsum(self._combine_equation, weights, value, **self._am_options())
        return output, scores

    def get_config(self):
        return {**super().get_config(), **self._am_config()}
