"""The built-in multipliers: each a C model in the package (``approxsim.builtin_models``).

Their tables are built at first use by the same flow as user models
(:func:`approxsim.compile.build_table`) and cached; direct built-ins compile into the kernels.

References:
  J. N. Mitchell, "Computer Multiplication and Division Using Binary Logarithms", IRE
  Transactions on Electronic Computers, EC-11(4):512-517, 1962.
  M. S. Saadat, H. Zhou, C.-S. Lee, H. Sohn, "Minimally Biased Multipliers for Approximate
  Integer and Floating-Point Multiplication", IEEE TCAD 37(11):2623-2635, 2018.
  J. Gong et al., "ApproxTrain: Fast Simulation of Approximate Multipliers for DNN Training
  and Inference", IEEE TCAD 42(11), 2023.
  D. Kalamkar et al., "A Study of BFLOAT16 for Deep Learning Training", arXiv:1905.12322, 2019.
"""

from __future__ import annotations

from pathlib import Path

from approxsim._resources import data_dir
from approxsim.multiplier import MAX_TABLE_BITS, Multiplier

__all__ = ["builtin_source_dir", "c_model", "builtins", "MITCHELL_REF", "MBM_REF", "APPROXTRAIN_REF", "BF16_REF"]

MITCHELL_REF = ("J. N. Mitchell, \"Computer Multiplication and Division Using Binary Logarithms\", "
                "IRE Transactions on Electronic Computers, EC-11(4):512-517, 1962.")
MBM_REF = ("M. S. Saadat, H. Zhou, C.-S. Lee, H. Sohn, \"Minimally Biased Multipliers for Approximate "
           "Integer and Floating-Point Multiplication\", IEEE TCAD 37(11):2623-2635, 2018.")
APPROXTRAIN_REF = ("J. Gong, H. Saadat, H. Gamaarachchi, H. Javaid, X. S. Hu, S. Parameswaran, "
                   "\"ApproxTrain: Fast Simulation of Approximate Multipliers for DNN Training and "
                   "Inference\", IEEE TCAD 42(11), 2023.")
BF16_REF = ("D. Kalamkar et al., \"A Study of BFLOAT16 for Deep Learning Training\", arXiv:1905.12322, 2019.")


def builtin_source_dir() -> Path:
    """Folder holding the C sources of the built-in multipliers."""
    return data_dir("approxsim.builtin_models", "multipliers")


def c_model(name: str, file: str, function: str, m: int, description: str, references, aliases=()):
    """A table multiplier whose table is built from a built-in C model at first use."""
    def factory():
        from approxsim.compile import build_table

        table, _ = build_table(builtin_source_dir() / file, function=function, mantissa_bits=m, name=name)
        return table

    return Multiplier(name, m, description=description, references=references, aliases=aliases,
                      source=f"builtin:{file}:{function}", table_factory=factory)


def builtins() -> list:
    """Every built-in multiplier, in the order ``approxsim multipliers`` lists them."""
    from approxsim.multipliers import _direct, _library

    out = [Multiplier("fp32", None, description="exact IEEE float32 product (no table)",
                      references=("IEEE Std 754-2019, IEEE Standard for Floating-Point Arithmetic.",)),
           c_model("bf16", "bf16.c", "bf16", 7,
                   "bfloat16: truncate both operands to bf16, multiply in fp32, truncate the product to bf16",
                   (BF16_REF, APPROXTRAIN_REF), aliases=("ACC_7",))]
    out += [c_model(f"mbm{m}", "mbm.c", "mbm", m, f"minimally biased multiplier, {m}-bit mantissas",
                    (MBM_REF, APPROXTRAIN_REF), aliases=(f"MBM_{m}",)) for m in range(1, MAX_TABLE_BITS + 1)]
    out += [c_model(f"mitchell{m}", "mitchell.c", "mitchell", m, f"Mitchell's logarithmic multiplier, {m}-bit mantissas",
                    (MITCHELL_REF, APPROXTRAIN_REF), aliases=(f"MIT_{m}",)) for m in range(1, MAX_TABLE_BITS + 1)]
    return out + _library.builtins() + _direct.builtins()
