"""approxsim: simulate approximate floating-point multipliers in neural networks.

Every product in a conv or matmul is replaced by the output of an approximate
multiplier, given as a lookup table built from a C/C++ model. See README.md.
"""

from approxsim._version import __version__
from approxsim.errors import (ApproxsimError, BackendUnavailableError, CompileError, ModelError,
                              TableFileError, UnknownMultiplierError)
from approxsim.multiplier import Multiplier
from approxsim import multipliers
from approxsim.product import multiply
from approxsim.functional import conv2d, conv2d_filter_grad, conv2d_input_grad, matmul
from approxsim.backends import available_backends, get_backend

__all__ = [
    "__version__", "ApproxsimError", "BackendUnavailableError", "CompileError", "ModelError", "TableFileError",
    "UnknownMultiplierError", "Multiplier", "multipliers", "multiply", "matmul", "conv2d",
    "conv2d_input_grad", "conv2d_filter_grad", "available_backends", "get_backend",
]
