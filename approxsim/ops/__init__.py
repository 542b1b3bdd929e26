"""TensorFlow ops whose products go through an approximate multiplier, with gradients.

Every op computes in float32 (other float inputs are cast to float32 and the result is cast
back to the first input's dtype) and has a ``tf.custom_gradient``:

* ``backward="approx"`` (the default, as ApproxTrain): both gradient products go through the
  multiplier, in the operand order of DESIGN.md section 1: for ``y = a (*) b`` the gradient
  of ``a`` is ``dy (*) b^T`` (``T[dy][b]``) and the gradient of ``b`` is ``a^T (*) dy``
  (``T[a][dy]``); for convolutions the input gradient looks up ``T[dy][w]`` and the filter
  gradient ``T[x][dy]``.
* ``backward="exact"``: straight-through, the same gradients with the exact ``fp32`` product.

The exact product runs in TensorFlow's own kernels wherever this TensorFlow has them and they
are exact, else in the backend (:mod:`approxsim.ops._plan` decides, once per call: for example
dilated convolution gradients on CPUs without oneDNN, grouped convolutions, TF32 on a GPU).
Tables and direct models run in the chosen backend through ``tf.numpy_function``, or
``tf.py_function`` and DLPack for the CUDA backend on GPU tensors. Neither has an XLA kernel:
do not ``jit_compile`` functions that call these ops.
"""

from approxsim.ops._plan import OpPlan, plan, resolve_options
from approxsim.ops.conv import am_conv1d, am_conv2d, am_depthwise_conv2d
from approxsim.ops.einsum import am_einsum
from approxsim.ops.matmul import am_matmul

__all__ = ["am_matmul", "am_conv2d", "am_depthwise_conv2d", "am_conv1d", "am_einsum", "resolve_options", "plan",
           "OpPlan"]
