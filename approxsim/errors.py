"""Exceptions raised by approxsim.

Every error names what is wrong and how to fix it. They all derive from
:class:`ApproxsimError`, so ``except approxsim.ApproxsimError`` catches any of them.
"""


class ApproxsimError(Exception):
    """Base class of every approxsim error."""


class CompileError(ApproxsimError):
    """A C/C++ multiplier model did not compile; the message holds the compiler's output."""


class ModelError(ApproxsimError):
    """A multiplier model compiled but misbehaved: crashed, hung or returned NaN/Inf."""


class TableFileError(ApproxsimError, ValueError):
    """A table file is truncated, corrupt, of the wrong size or of an unknown format."""


class UnknownMultiplierError(ApproxsimError, KeyError):
    """A multiplier name that is not registered."""

    def __str__(self):  # KeyError would quote the message.
        return str(self.args[0]) if self.args else ""


class BackendUnavailableError(ApproxsimError, RuntimeError):
    """A backend was asked for that cannot run here (missing extension, CuPy or GPU)."""


class RegistryError(ApproxsimError):
    """The persistent registry of user multipliers cannot be read; it is left untouched."""
