"""Helpers every op shares: float32 inputs (integer codes for integer multipliers), broadcast
gradients, transposes."""

from __future__ import annotations

import tensorflow as tf


def as_float32(*tensors):
    """Converts to tensors; returns the float32 tensors and the dtype to cast results back to.

    Raises:
      TypeError: a tensor that does not hold real numbers.
    """
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    dtype = tensors[0].dtype
    for t in tensors:
        if not (t.dtype.is_floating or t.dtype.is_integer):
            raise TypeError(f"approxsim ops take real numbers (computed in float32). Received: dtype={t.dtype.name}")
    if not dtype.is_floating:
        dtype = tf.float32
    return [tf.cast(t, tf.float32) for t in tensors], dtype


def as_codes(mult, *tensors):
    """Integer code tensors of an integer multiplier, as int32 (their range is checked by the kernels).

    Raises:
      TypeError: a float tensor (quantize it first: approxsim's layers do, see approxsim.Quantization).
    """
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    for t in tensors:
        if not (t.dtype.is_integer or t.dtype == tf.bool):
            raise TypeError(
                f"{mult.name!r} is an integer multiplier ({mult.format.describe()}): approxsim ops take its "
                f"integer codes and return their exact sums as int64. Quantize the operands first (the "
                f"approxsim layers do it, see approxsim.Quantization), or pass integer tensors. "
                f"Received: dtype={t.dtype.name}")
    return [tf.cast(t, tf.int32) for t in tensors]


def sum_to_shape(grad, shape):
    """Sums ``grad`` over the dimensions that were broadcast to reach it from ``shape``."""
    _, axes = tf.raw_ops.BroadcastGradientArgs(s0=tf.shape(grad), s1=shape)
    return tf.reshape(tf.reduce_sum(grad, axis=axes), shape)


def swap_last(t):
    """``t`` with its last two dimensions swapped."""
    rank = t.shape.rank
    return tf.transpose(t, list(range(rank - 2)) + [rank - 1, rank - 2])


def check_format(data_format, expected, op):
    """Raises unless ``data_format`` is ``None`` or ``expected``."""
    if data_format not in (None, expected):
        raise ValueError(f"{op} supports data_format={expected!r} only (transpose the input first). "
                         f"Received: data_format={data_format!r}")
