"""Keras 3 layers whose products go through an approximate multiplier.

Each subclasses the layer it replaces, takes all of its arguments plus
``multiplier=``, ``backward=`` and ``backend=``, and saves the multiplier's name
and fingerprint in ``get_config()``; ``.keras`` files load with ``keras.models.load_model``
after ``import approxsim``.
"""

from approxsim.layers._base import accept_multiplier_changes
from approxsim.layers.conv1d import AMConv1D
from approxsim.layers.conv2d import AMConv2D
from approxsim.layers.dense import AMDense
from approxsim.layers.depthwise_conv2d import AMDepthwiseConv2D
from approxsim.layers.einsum_dense import AMEinsumDense
from approxsim.layers.multi_head_attention import AMMultiHeadAttention
from approxsim.layers.separable_conv2d import AMSeparableConv2D

__all__ = ["AMDense", "AMConv2D", "AMDepthwiseConv2D", "AMConv1D", "AMEinsumDense", "AMMultiHeadAttention",
           "AMSeparableConv2D", "accept_multiplier_changes"]
