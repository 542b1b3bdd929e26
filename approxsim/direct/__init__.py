"""Direct multipliers: full-width models (12..23 mantissa bits) compiled into the kernels, no table.

A table covers mantissas up to 11 bits. A *direct* multiplier instead calls its
C/C++ model on the real operands inside the GEMM and convolution kernels: on the
CPU the model is compiled with approxsim's kernel loops into a cached shared
library (:mod:`approxsim.direct.build`); on the GPU it becomes a ``__device__``
function of NVRTC-compiled kernels (:mod:`approxsim.direct.cuda`). No assumption
about the model is made: it may depend on the exponents, and it handles special
values itself.

The object behind ``Multiplier.direct`` is a :class:`DirectModel`. Backends call:

* CPU (NumPy float32, C-contiguous): ``multiply(a, b)``, ``matmul(a, b, transpose_a=,
  transpose_b=)``, ``conv2d(x, w, geom)``, ``conv2d_input_grad(dy, w, geom)``,
  ``conv2d_filter_grad(x, dy, geom)``.
* GPU (CuPy arrays in, CuPy arrays out): ``cuda_multiply``, ``cuda_matmul``,
  ``cuda_conv2d``, ``cuda_conv2d_input_grad``, ``cuda_conv2d_filter_grad``, with the
  same arguments; ``cuda_source()`` gives the generated CUDA source for backends that
  launch their own kernels (entry points listed in ``approxsim/csrc/direct_cuda.h``).
"""

from approxsim.direct.model import MAX_DIRECT_BITS, DirectModel, num_threads

__all__ = ["DirectModel", "MAX_DIRECT_BITS", "num_threads"]
