"""Integer direct models: an integer C model compiled into the kernels and called on the codes.

The same loops as float direct models (``csrc/direct_loops.h`` with ``APPROXSIM_DL_INTEGER``:
int32 codes, exact int64 sums, in a fixed order), with the model called through the wrapper of
:mod:`approxsim.compile_int` (:func:`~approxsim.compile_int.wrapper_source`), the same C
expression the integer table driver evaluates, so a direct product equals the table entry of
the same model. Widths up to 16 bits; no table is built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from approxsim.direct.model import DirectModel

__all__ = ["IntDirectModel"]


class IntDirectModel(DirectModel):
    """An integer C model run on the codes by compiled CPU (and CUDA) kernels.

    Args:
      path: the model's C or C++ source.
      function: the model function's name.
      sig: its prototype (:func:`approxsim.compile_int.parse_signature`).
      fmt: the codes (:class:`approxsim.integer.IntFormat`).
      name: a label used in messages.
    """

    _OUT = np.int64

    def __init__(self, path, *, function: str, sig, fmt, name: str = ""):
        super().__init__(path, function=function, mantissa_bits=None, name=name)
        self.sig, self.format = sig, fmt

    def __repr__(self):
        return f"IntDirectModel({self.path.name!r}, function={self.function!r}, {self.format.describe()})"

    def __eq__(self, other):
        if not isinstance(other, IntDirectModel):
            return NotImplemented
        return (self._digest, self.function, self.sig, self.format) == (other._digest, other.function, other.sig,
                                                                        other.format)

    def __hash__(self):
        return hash((self._digest, self.function, self.format))

    @property
    def fingerprint(self) -> str:
        return f"int-direct-sha256:{self._digest[:16]}:{self.function}:{self.format.name}"

    @property
    def result_bound(self) -> int:
        """A bound on ``|f(a, b)|`` from the C return type (sums of more products need int64)."""
        if self.format.signed and not self.sig.ret_signed:
            return 1 << (2 * self.format.bits - 1)
        bits = self.sig.ret_bits - (1 if self.sig.ret_signed else 0)
        return (1 << bits) - (0 if self.sig.ret_signed else 1)

    def wrapper(self) -> str:
        from approxsim.compile_int import wrapper_source

        return wrapper_source(self.function, self.sig, self.format)

    def _operand(self, x, name: str) -> np.ndarray:
        return self.format.check_codes(x, name)

    def _build_library(self) -> Path:
        from approxsim.compile_int import WRAPPER
        from approxsim.direct.build import build_library

        return build_library(self.path, self.function, self.format.bits, defines=("APPROXSIM_DL_INTEGER=1",),
                             signature=f"{self.sig.ret} (*)({self.sig.param}, {self.sig.param})",
                             extra_source=self.wrapper(), kernel_function=WRAPPER)

    def check(self, *, timeout: float = 60.0) -> None:
        """Runs the model on every pair of extreme codes and on random ones in a separate process.

        Raises:
          approxsim.CompileError: the model does not compile or has the wrong signature.
          approxsim.ModelError: it crashes, exits or hangs on the sample.
        """
        self.sample_products(timeout=timeout)

    def sample_products(self, *, count: int = 4096, timeout: float = 60.0):
        """``(a, b, f(a, b))`` on the extremes and ``count`` random code pairs, computed in a separate process."""
        from approxsim.compile_int import run_int_pairs

        fmt = self.format
        edges = np.unique(np.array([fmt.lo, fmt.lo + 1, -1, 0, 1, fmt.hi - 1, fmt.hi], np.int64).clip(fmt.lo, fmt.hi))
        ea, eb = (v.ravel() for v in np.meshgrid(edges, edges))
        rng = np.random.default_rng(0)
        a = np.concatenate([ea, rng.integers(fmt.lo, fmt.hi + 1, count)])
        b = np.concatenate([eb, rng.integers(fmt.lo, fmt.hi + 1, count)])
        return a, b, run_int_pairs(self.path, function=self.function, sig=self.sig, fmt=fmt, a=a, b=b,
                                   timeout=timeout)

    def cuda_source(self) -> str:
        from approxsim.direct.cuda_source import generate_source

        return generate_source(self)
