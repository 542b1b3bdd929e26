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


MAHDIANI_REF = ("H. R. Mahdiani, A. Ahmadi, S. M. Fakhraie, C. Lucas, \"Bio-Inspired Imprecise Computational Blocks "
                "for Efficient VLSI Implementation of Soft-Computing Applications\", IEEE TCAS-I 57(4):850-862, 2010.")
DRUM_REF = ("S. Hashemi, R. I. Bahar, S. Reda, \"DRUM: A Dynamic Range Unbiased Multiplier for Approximate "
            "Applications\", ICCAD 2015.")
KULKARNI_REF = ("P. Kulkarni, P. Gupta, M. D. Ercegovac, \"Trading Accuracy for Power with an Underdesigned "
                "Multiplier Architecture\", Proc. 24th Int. Conf. on VLSI Design, 2011, pp. 346-351.")
TWOS_REF = "Two's complement integer multiplication (exact)."


def int_model(name: str, file: str, description: str, references, *, bits=None, signed=None):
    """An integer multiplier from a built-in C model (function ``name``): a table for up to 12-bit
    codes, built at first use; a direct model (compiled into the kernels) for wider ones."""
    from approxsim import compile_int
    from approxsim.integer import MAX_TABLE_BITS as INT_TABLE_BITS
    from approxsim.int_multiplier import IntDirectMultiplier, IntTableMultiplier

    path = builtin_source_dir() / file
    sig = compile_int.parse_signature(path, name)
    fmt = compile_int.resolve_format(sig, name, bits, signed)
    common = dict(description=description, references=references, source=f"builtin:{file}:{name}")
    if fmt.bits > INT_TABLE_BITS:
        from approxsim.direct.integer import IntDirectModel

        model = IntDirectModel(path, function=name, sig=sig, fmt=fmt, name=name)
        return IntDirectMultiplier(name, fmt.bits, fmt.signed, direct=model, **common)

    def factory():
        return compile_int.build_int_table(path, function=name, sig=sig, fmt=fmt, name=name)[0]

    return IntTableMultiplier(name, fmt.bits, fmt.signed, table_factory=factory, **common)


def _integer_builtins() -> list:
    exact = [int_model("int8", "int_exact.c", "exact signed 8-bit integer product", (TWOS_REF,)),
             int_model("uint8", "int_exact.c", "exact unsigned 8-bit integer product", (TWOS_REF,)),
             int_model("int4", "int_exact.c", "exact signed 4-bit integer product", (TWOS_REF,), bits=4, signed=True),
             int_model("uint4", "int_exact.c", "exact unsigned 4-bit integer product", (TWOS_REF,), bits=4,
                       signed=False),
             int_model("int16", "int_exact.c", "exact signed 16-bit integer product (direct, no table)", (TWOS_REF,))]
    approx = [int_model(f"bam8u_v{v}", "int_approx.c", f"broken-array multiplier, 8-bit unsigned, partial products "
                        f"of the {v} lowest columns omitted (VBL={v})", (MAHDIANI_REF,)) for v in (4, 6, 8)]
    approx += [int_model(f"drum8u_k{k}", "int_approx.c", f"DRUM-{k}: dynamic range unbiased multiplier, 8-bit "
                         f"unsigned, {k}-bit segments", (DRUM_REF,)) for k in (4, 6)]
    approx += [int_model("mitchell8u", "int_approx.c", "Mitchell's logarithmic multiplier on 8-bit unsigned integers",
                         (MITCHELL_REF,)),
               int_model("kulkarni8u", "int_approx.c", "underdesigned multiplier (2x2 blocks with 3x3=7), 8-bit "
                         "unsigned", (KULKARNI_REF,))]
    return exact + approx


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
    return out + _library.builtins() + _direct.builtins() + _integer_builtins()
