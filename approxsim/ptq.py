"""Post-training quantization: a trained float model to one with integer multipliers, calibrated.

>>> q = approxsim.quantize(model, multiplier={"conv*": "mul8u_2AC", "*": "int8"},
...                        calibration_data=x_train[:512])
>>> print(approxsim.report(q))       # each layer's multiplier, codes and calibrated input range
>>> q.compile(...); q.evaluate(x_test, y_test)

The activation ranges are measured on the calibration batches (``Quantization.calibration``:
min/max, moving average or percentile) with the layers in inference mode, then frozen: later
calls in inference mode use them, as TFLite-style integer inference does; training the returned
model (QAT fine-tuning) keeps updating them.
"""

from __future__ import annotations

import itertools

import numpy as np

__all__ = ["quantize", "calibrate"]


def _batches(data, batch_size, max_batches):
    """The input batches of ``data``: an array (split into ``batch_size`` rows), a ``tf.data.Dataset``
    or any iterable of batches; ``(x, y[, w])`` tuples give their ``x``."""
    if isinstance(data, np.ndarray) or hasattr(data, "shape") and not hasattr(data, "element_spec"):
        arr = np.asarray(data)
        if arr.ndim == 0 or len(arr) == 0:
            raise ValueError(f"calibration_data must hold at least one example. Received: shape={arr.shape}")
        items = (arr[i:i + batch_size] for i in range(0, len(arr), batch_size))
    else:
        try:
            items = iter(data)
        except TypeError:
            raise TypeError("calibration_data must be an array, a tf.data.Dataset or an iterable of batches. "
                            f"Received: {type(data).__name__}") from None
    for batch in itertools.islice(items, max_batches):
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


def calibrate(model, calibration_data, *, batch_size=64, max_batches=None) -> int:
    """Measures the activation ranges of ``model``'s integer layers on the calibration batches (in
    inference mode, eagerly). Returns the number of batches seen.

    Raises:
      ValueError: no batch at all in ``calibration_data``.
    """
    from approxsim.quantization import calibrating

    seen = 0
    with calibrating():
        for x in _batches(calibration_data, batch_size, max_batches):
            model(x, training=False)
            seen += 1
    if seen == 0:
        raise ValueError("calibration_data gave no batch: pass a few hundred training examples.")
    return seen


def quantize(model, *, multiplier, calibration_data, quantization=None, backward="ste", batch_size=64,
             max_batches=None, include=None, exclude=None, backend=None):
    """A copy of a trained ``model`` with integer (or float) multipliers, calibrated for inference.

    Args:
      model: a built Sequential or Functional Keras model (as :func:`approxsim.convert` takes).
      multiplier: a name or Multiplier for every layer, or a mapping from layer names or glob
        patterns to them (``{"conv*": "mul8u_2AC", "*": "int8"}``), as in :func:`approxsim.convert`.
      calibration_data: input examples: an array, a ``tf.data.Dataset`` or an iterable of batches
        (``(x, y)`` pairs give their ``x``); a few hundred training examples are enough.
      quantization: an :class:`~approxsim.Quantization` for every integer layer (``None``: defaults).
      backward: the gradients, should the model be fine-tuned afterwards (``"ste"``, ``"table"``, ``"exact"``).
      batch_size: rows per calibration batch when ``calibration_data`` is an array.
      max_batches: at most this many calibration batches (``None``: all).
      include, exclude, backend: as in :func:`approxsim.convert`.

    Returns:
      The new model (not compiled), with ``approxsim_report`` describing every layer.

    Raises:
      As :func:`approxsim.convert`; ValueError for empty calibration data.
    """
    from approxsim.conversion import convert, report

    new = convert(model, multiplier=multiplier, backward=backward, include=include, exclude=exclude,
                  backend=backend, quantization=quantization)
    calibrate(new, calibration_data, batch_size=batch_size, max_batches=max_batches)
    object.__setattr__(new, "approxsim_report", report(new))
    return new
