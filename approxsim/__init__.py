"""approxsim: simulate approximate multipliers (floating-point and integer) in neural networks.

Every product in a conv or matmul is replaced by the output of an approximate
multiplier, given as a C/C++ model: as a lookup table built from it, or compiled
into the kernels (direct mode). See README.md and ARCHITECTURE.md.
"""

from approxsim._version import __version__
from approxsim.errors import (ApproxsimError, BackendUnavailableError, CompileError, ModelError, RegistryError,
                              TableFileError, UnknownMultiplierError)
from approxsim.multiplier import DirectMultiplier, Multiplier, TableMultiplier
from approxsim.int_multiplier import IntDirectMultiplier, IntegerMultiplier, IntTableMultiplier
from approxsim import multipliers
from approxsim.functional import conv2d, conv2d_filter_grad, conv2d_input_grad, matmul, multiply
from approxsim.backends import available_backends, get_backend

__all__ = [
    "__version__", "ApproxsimError", "BackendUnavailableError", "CompileError", "ModelError", "RegistryError", "TableFileError",
    "UnknownMultiplierError", "Multiplier", "TableMultiplier", "DirectMultiplier", "IntegerMultiplier",
    "IntTableMultiplier", "IntDirectMultiplier", "multipliers", "multiply", "matmul", "conv2d",
    "conv2d_input_grad", "conv2d_filter_grad", "available_backends", "get_backend",
]

# Parts that import TensorFlow, Keras or matplotlib load on first use, so that
# `import approxsim` stays fast and works without them.
_LAZY = {
    "convert": ("approxsim.conversion", "convert"),
    "report": ("approxsim.conversion", "report"),
    "quantize": ("approxsim.ptq", "quantize"),
    "calibrate": ("approxsim.ptq", "calibrate"),
    "Quantization": ("approxsim.quantization", "Quantization"),
    "analyze": ("approxsim.analysis", "analyze"),
    "show_config": ("approxsim.config", "show_config"),
    "layers": ("approxsim.layers", None),
    "ops": ("approxsim.ops", None),
}
__all__ += list(_LAZY)


from approxsim import _keras_hook  # noqa: E402

_keras_hook.install()  # saved .keras models load after `import approxsim` alone


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module_name, attr = _LAZY[name]
        module = importlib.import_module(module_name)
        value = module if attr is None else getattr(module, attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'approxsim' has no attribute {name!r}")
