"""Quantization for integer multipliers (DESIGN.md section 1b): the settings and the arithmetic.

A layer with an integer multiplier represents ``x ~ s_x (q_x - z_x)`` and ``w ~ s_w (q_w - z_w)``
and computes ``s_x s_w * sum(f(q_x, q_w) - z_w q_x - z_x q_w + z_x z_w)``: the approximate
multiplier sees the codes, the zero-point terms are exact (as TFApprox and TorchApprox do), and
the sum is exact integer arithmetic before the one float multiply that dequantizes it. Biases and
the output stay float32, as in TFLite-style integer inference.

:class:`Quantization` (serializable, in the layers' ``get_config``) chooses:

* ``codes``: ``"symmetric"`` (``z = 0``; the default for signed multipliers), ``"affine"``
  (a zero point per tensor; the default for unsigned ones) or ``"sign-magnitude"`` (an unsigned
  circuit on signed data: ``sign(a) sign(b) f(|a|, |b|)``, run as the signed ``n+1``-bit table
  :func:`sign_magnitude` derives);
* ``weights``: ``"per-tensor"`` or ``"per-channel"`` (one scale per output channel) ranges;
* ``calibration`` of the activations' range: ``"minmax"`` (the widest range seen),
  ``"moving-average"`` (of the batch ranges during training, ``momentum``) or ``"percentile"``
  (the mean over calibration batches of the ``percentile``-th percentiles of both tails).

Codes are ``clip(round(x / s) + z, lo, hi)``, with ``round`` half to even (``tf.round``); ranges
always include 0, so that 0 has an exact code. The gradients (``backward=``) are in
:mod:`approxsim.layers._quant`.

References:
  B. Jacob et al., "Quantization and Training of Neural Networks for Efficient
  Integer-Arithmetic-Only Inference", CVPR 2018 (affine codes, zero-point terms).
  F. Vaverka, V. Mrazek, Z. Vasicek, L. Sekanina, "TFApprox: Towards a Fast Emulation of DNN
  Approximate Hardware Accelerators on GPU", DATE 2020.
"""

from __future__ import annotations

import contextlib
import functools
import threading

import numpy as np

__all__ = ["Quantization", "calibrating", "is_calibrating", "sign_magnitude", "exact_multiplier",
           "derivative_tables", "CODES", "WEIGHTS", "CALIBRATIONS"]

CODES = ("symmetric", "affine", "sign-magnitude")
WEIGHTS = ("per-tensor", "per-channel")
CALIBRATIONS = ("minmax", "moving-average", "percentile")

_state = threading.local()


@contextlib.contextmanager
def calibrating():
    """Inside, approxsim's integer layers update their activation ranges on every (eager) call, as
    in training: post-training calibration (:func:`approxsim.quantize` uses it)."""
    before = getattr(_state, "on", False)
    _state.on = True
    try:
        yield
    finally:
        _state.on = before


def is_calibrating() -> bool:
    return getattr(_state, "on", False)


class Quantization:
    """How a layer with an integer multiplier quantizes its operands (see the module docstring).

    Args:
      codes: ``"symmetric"``, ``"affine"``, ``"sign-magnitude"``, or ``None``: symmetric for a
        signed multiplier, affine for an unsigned one.
      weights: ``"per-tensor"`` or ``"per-channel"`` weight ranges.
      calibration: ``"minmax"``, ``"moving-average"`` or ``"percentile"`` activation ranges.
      momentum: of the moving average, in [0, 1).
      percentile: of the percentile calibration, in (50, 100].

    Raises:
      ValueError: an option outside the choices above.
    """

    def __init__(self, codes=None, weights="per-tensor", calibration="minmax", momentum=0.99, percentile=99.99):
        if codes is not None and codes not in CODES:
            raise ValueError(f"codes must be one of {', '.join(CODES)} or None. Received: codes={codes!r}")
        if weights not in WEIGHTS:
            raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}. Received: weights={weights!r}")
        if calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {', '.join(CALIBRATIONS)}. "
                             f"Received: calibration={calibration!r}")
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or not 0 <= momentum < 1:
            raise ValueError(f"momentum must be a number in [0, 1). Received: momentum={momentum!r}")
        if isinstance(percentile, bool) or not isinstance(percentile, (int, float)) or not 50 < percentile <= 100:
            raise ValueError(f"percentile must be a number in (50, 100]. Received: percentile={percentile!r}")
        self.codes, self.weights, self.calibration = codes, weights, calibration
        self.momentum, self.percentile = float(momentum), float(percentile)

    def get_config(self) -> dict:
        return {"codes": self.codes, "weights": self.weights, "calibration": self.calibration,
                "momentum": self.momentum, "percentile": self.percentile}

    @classmethod
    def from_config(cls, config) -> "Quantization":
        return cls(**config)

    @classmethod
    def of(cls, value) -> "Quantization":
        """A Quantization from ``None`` (the defaults), a dict (a config) or a Quantization."""
        if value is None:
            return cls()
        if isinstance(value, Quantization):
            return value
        if isinstance(value, dict):
            return cls.from_config(value)
        raise TypeError(f"quantization must be an approxsim.Quantization, its config dict or None. "
                        f"Received: {value!r}")

    def codes_for(self, mult) -> str:
        """The code mode for a multiplier (the default follows its signedness)."""
        mode = self.codes or ("symmetric" if mult.signed else "affine")
        if mode == "sign-magnitude" and mult.signed:
            raise ValueError(f"codes='sign-magnitude' serves unsigned circuits on signed data; {mult.name!r} is "
                             f"signed. Use codes='symmetric'.")
        return mode

    def __eq__(self, other):
        return isinstance(other, Quantization) and self.get_config() == other.get_config()

    def __repr__(self):
        return "Quantization(" + ", ".join(f"{k}={v!r}" for k, v in self.get_config().items()) + ")"


def sign_magnitude(mult):
    """The signed ``n+1``-bit integer multiplier ``sign(a) sign(b) f(|a|, |b|)`` of an unsigned
    ``n``-bit table multiplier ``f``, for codes ``-(2^n - 1) .. 2^n - 1`` (code ``-2^n`` is never
    produced; its entries are 0). Made once per multiplier.

    Raises:
      ValueError: ``mult`` is signed, wider than 11 bits, or has no table.
    """
    from approxsim.integer import IntFormat
    from approxsim.int_multiplier import IntTableMultiplier

    if mult.signed or mult.kind != "int-table" or mult.bits > 11:
        raise ValueError(f"sign-magnitude codes need an unsigned integer table of at most 11 bits. Received: "
                         f"{mult.name!r} ({mult.kind}, {mult.format.describe()})")

    def build():
        fmt = IntFormat(mult.bits + 1, True)
        c = fmt.codes()
        mag = np.abs(c).clip(0, (1 << mult.bits) - 1)
        table = np.sign(c)[:, None] * np.sign(c)[None, :] * mult.table.astype(np.int64)[mag[:, None], mag[None, :]]
        table[c == fmt.lo, :] = 0
        table[:, c == fmt.lo] = 0
        return IntTableMultiplier(f"{mult.name}_sm", fmt.bits, True, table,
                                  description=f"sign-magnitude form of {mult.name}", references=mult.references)

    return mult.derived("sign_magnitude", build)


@functools.lru_cache(maxsize=None)
def exact_multiplier(fmt):
    """An exact integer multiplier of the format (for the zero-point terms): the built-in of its width
    where there is one, else an exact table; one per format (every layer shares it, and its kernels)."""
    from approxsim import multipliers
    from approxsim.int_multiplier import IntTableMultiplier

    try:
        mult = multipliers.get(fmt.name)
        if mult.is_integer and mult.format == fmt:
            return mult
    except Exception:  # noqa: BLE001 - no built-in of this width
        pass
    c = fmt.codes()
    return IntTableMultiplier(f"exact_{fmt.name}", fmt.bits, fmt.signed, np.outer(c, c),
                              description=f"exact {fmt.describe()} product")


def derivative_tables(mult, smooth: int = 0):
    """Finite-difference partial derivatives of an integer table, in code units:
    ``Da[a][b] = (f(a+1, b) - f(a-1, b)) / 2`` and ``Db[a][b] = (f(a, b+1) - f(a, b-1)) / 2``
    (one-sided at the ends of the code range), indexed by patterns like the table, float32.
    ``smooth > 0`` averages each over ``2 * smooth + 1`` neighbouring codes along its axis (for
    ragged circuits). Made once per multiplier and ``smooth``.

    References:
      The difference-based gradients of approximate-multiplier-aware retraining (AppMult-aware
      retraining, DATE 2025).
    """
    def build():
        fmt = mult.format
        order = np.argsort(fmt.codes(), kind="stable")  # patterns in code order
        t = mult.table.astype(np.float64)[np.ix_(order, order)]
        da, db = np.gradient(t, axis=0), np.gradient(t, axis=1)  # central inside, one-sided at the ends
        if smooth:
            kernel = np.ones(2 * smooth + 1) / (2 * smooth + 1)
            da = np.apply_along_axis(lambda v: np.convolve(np.pad(v, smooth, mode="edge"), kernel, "valid"), 0, da)
            db = np.apply_along_axis(lambda v: np.convolve(np.pad(v, smooth, mode="edge"), kernel, "valid"), 1, db)
        back = np.argsort(order)  # code order back to patterns
        return da[np.ix_(back, back)].astype(np.float32), db[np.ix_(back, back)].astype(np.float32)

    return mult.derived(f"derivative_tables_{int(smooth)}", build)
