"""Whole-model conversion: swap a Keras model's multiply-heavy layers for approxsim layers.

>>> model = keras.applications.MobileNet(weights=None, input_shape=(32, 32, 3))
>>> am = approxsim.convert(model, multiplier={"conv_pw_*": "mbm7", "*": "fp32"})
>>> print(approxsim.report(am))
"""

from __future__ import annotations

import dataclasses
import fnmatch
import warnings
from typing import Mapping, Optional

import keras

from approxsim import multipliers
from approxsim.layers import (AMConv1D, AMConv2D, AMDense, AMDepthwiseConv2D, AMEinsumDense,
                              AMMultiHeadAttention, AMSeparableConv2D)
from approxsim.layers._base import AMLayerMixin, stock_weights
from approxsim.multiplier import Multiplier

__all__ = ["convert", "report", "ConversionReport", "LayerReport"]

# Exact stock type -> approxsim type (subclasses have their own code and are left alone).
_REPLACE = {
    keras.layers.Dense: AMDense,
    keras.layers.Conv2D: AMConv2D,
    keras.layers.DepthwiseConv2D: AMDepthwiseConv2D,
    keras.layers.Conv1D: AMConv1D,
    keras.layers.MultiHeadAttention: AMMultiHeadAttention,
    keras.layers.EinsumDense: AMEinsumDense,
    keras.layers.SeparableConv2D: AMSeparableConv2D,
}
# Layers full of products that approxsim has no replacement for (they stay exact).
_UNSUPPORTED = tuple(getattr(keras.layers, n) for n in (
    "Conv1DTranspose", "Conv2DTranspose", "Conv3D", "Conv3DTranspose", "SeparableConv1D",
    "LSTM", "GRU", "SimpleRNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Attention", "AdditiveAttention",
    "GroupQueryAttention", "Dot", "Multiply") if hasattr(keras.layers, n))
_HEAVY = tuple(_REPLACE) + _UNSUPPORTED


@dataclasses.dataclass
class LayerReport:
    """One layer of a model as approxsim sees it.

    Attributes:
      name: the layer's name (nested models' layers are prefixed ``outer/``).
      class_name: the layer's class.
      status: ``"approximate"``, ``"exact"`` (a multiply-heavy layer left exact) or ``"-"``
        (no matrix products).
      multiplier: the multiplier's name, ``None`` unless approximate.
      backward: ``"approx"`` or ``"exact"`` (``"ste"``, ``"table"`` or ``"exact"`` for integer
        multipliers), ``None`` unless approximate.
      reason: why a multiply-heavy layer stayed exact.
      quantization: for an integer multiplier, its codes and the layer's calibrated input range
        (``"8-bit unsigned codes 0..255, affine, weights per-tensor, input range [0, 6.1]"``).
    """
    name: str
    class_name: str
    status: str
    multiplier: Optional[str] = None
    backward: Optional[str] = None
    reason: str = ""
    quantization: str = ""


class ConversionReport:
    """Every layer of a model with its multiplier; ``str()`` gives a table."""

    def __init__(self, rows):
        self.rows = list(rows)

    @property
    def approximate(self):
        """The rows of approximate layers."""
        return [r for r in self.rows if r.status == "approximate"]

    @property
    def exact(self):
        """The multiply-heavy layers that stayed exact (each with its reason)."""
        return [r for r in self.rows if r.status == "exact"]

    def __getitem__(self, name):
        for r in self.rows:
            if r.name == name or r.name.rsplit("/", 1)[-1] == name:
                return r
        raise KeyError(f"No layer named {name!r} in this report.")

    def __str__(self):
        head = ("layer", "class", "multiplier", "backward", "note")
        body = [(r.name, r.class_name, r.multiplier or ("exact" if r.status == "exact" else "-"),
                 r.backward or "-", "; ".join(v for v in (r.quantization, r.reason) if v)) for r in self.rows]
        widths = [max(len(str(row[i])) for row in [head] + body) for i in range(4)]
        lines = ["  ".join(str(v).ljust(w) for v, w in zip(row[:4], widths)) + ("  " + row[4] if row[4] else "")
                 for row in [head] + body]
        lines.append(f"{len(self.approximate)} approximate, {len(self.exact)} multiply-heavy layers exact.")
        return "\n".join(lines)

    __repr__ = __str__


def _walk(model, prefix=""):
    for layer in model.layers if hasattr(model, "layers") else []:
        yield prefix + layer.name, layer
        if isinstance(layer, AMMultiHeadAttention) or isinstance(layer, keras.layers.MultiHeadAttention):
            continue  # its projections belong to it
        if hasattr(layer, "layers"):
            yield from _walk(layer, prefix + layer.name + "/")


def report(model) -> ConversionReport:
    """Lists every layer of ``model`` (nested models included) with its multiplier.

    Multiply-heavy layers (Dense, convolutions, attention, recurrent layers) that
    compute exactly are marked ``exact``, with the reason convert recorded, or the
    reason that applies to a model that was not converted.
    """
    reasons = getattr(model, "_approxsim_reasons", {})
    rows = []
    for name, layer in _walk(model):
        cls = type(layer).__name__
        if isinstance(layer, AMLayerMixin):
            rows.append(LayerReport(name, cls, "approximate", layer.multiplier.name, layer.backward,
                                    quantization=layer._am_describe()))
        elif isinstance(layer, _HEAVY):
            if layer.name in reasons:
                reason = reasons[layer.name]
            elif isinstance(layer, _UNSUPPORTED) or type(layer) not in _REPLACE:
                reason = f"approxsim has no approximate {cls}"
            else:
                reason = "stock Keras layer (not converted)"
            rows.append(LayerReport(name, cls, "exact", reason=reason))
        else:
            rows.append(LayerReport(name, cls, "-"))
    return ConversionReport(rows)


def _patterns(value, arg):
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    try:
        items = list(value)
    except TypeError:
        items = None
    if items is None or not all(isinstance(v, str) for v in items):
        raise TypeError(f"`{arg}` must be a layer name, a glob pattern or a list of them. Received: {arg}={value!r}")
    return items


def _matches(name, patterns):
    return any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def _multiplier_for(name, spec):
    """``(Multiplier or None, reason)`` for the layer called ``name``."""
    if not isinstance(spec, Mapping):
        return spec, ""
    if name in spec:
        key = name
    else:
        key = next((p for p in spec if fnmatch.fnmatchcase(name, p)), None)
    if key is None:
        return None, "no entry of the multiplier mapping matches its name"
    if spec[key] is None:
        return None, f"multiplier mapping gives None for {key!r}"
    return spec[key], ""


def convert(model, *, multiplier, backward="approx", include=None, exclude=None, backend=None, quantization=None):
    """A copy of ``model`` (same weights) with its Dense, Conv2D, DepthwiseConv2D, Conv1D,
    SeparableConv2D, EinsumDense and MultiHeadAttention layers replaced by approxsim layers.

    Args:
      model: a built Sequential or Functional Keras model (nested models and
        ``keras.applications`` models included). Subclassed models cannot be cloned:
        build them from :mod:`approxsim.layers` instead.
      multiplier: a name or :class:`~approxsim.Multiplier` for every layer, or a mapping from
        layer names or glob patterns (``"conv_pw_*"``) to multipliers; an exact name wins over
        patterns, patterns are tried in order, and a layer that no key matches (or that maps to
        ``None``) stays exact.
      backward: ``"approx"`` or ``"exact"``, for every converted layer (integer multipliers: ``"approx"``
        means ``"ste"``; ``"table"`` is theirs only).
      include: names or glob patterns; only matching layers are converted.
      exclude: names or glob patterns; matching layers stay exact.
      backend: the backend of every converted layer (``None``: auto).
      quantization: the :class:`~approxsim.Quantization` of the layers with integer multipliers
        (``None``: the defaults). Their activation ranges start uncalibrated (each batch's own);
        :func:`approxsim.quantize` calibrates them.

    Returns:
      The new model, not compiled. Its ``approxsim_report`` attribute (also
      ``approxsim.report(new_model)``) lists every layer and why multiply-heavy
      layers stayed exact.

    Raises:
      UnknownMultiplierError: a multiplier name that is not registered.
      ValueError: a layer to be converted uses an argument approxsim does not support (the
        message names the layer and the argument; exclude the layer to keep it exact), or
        the model is not a built Sequential/Functional model.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"convert() takes a keras.Model. Received: model={type(model).__name__}")
    if not isinstance(model, (keras.Sequential,)) and not _is_functional(model):
        raise ValueError("convert() works on Sequential and Functional models; a subclassed model cannot be "
                         "cloned. Build it from approxsim.layers instead. "
                         f"Received: model of class {type(model).__name__}")
    if not model.built:
        raise ValueError(f"convert() needs a built model (call it once or give it an Input). "
                         f"Received: unbuilt model {model.name!r}")
    if isinstance(multiplier, Mapping):
        spec = {str(k): (None if v is None else multipliers.get(v)) for k, v in multiplier.items()}
    elif isinstance(multiplier, (str, Multiplier)):
        spec = multipliers.get(multiplier)
    else:
        raise TypeError("`multiplier` must be a name, a Multiplier or a mapping from layer names/patterns to "
                        f"them. Received: multiplier={multiplier!r}")
    include, exclude = _patterns(include, "include"), _patterns(exclude, "exclude")
    from approxsim.ops import resolve_options

    resolve_options("fp32", "approx" if backward in ("ste", "table") else backward, backend)  # once, here
    reasons = {}

    def clone(layer):
        config = layer.get_config()
        target = _REPLACE.get(type(layer))
        if isinstance(layer, _HEAVY):
            if target is None:
                reasons[layer.name] = f"approxsim has no approximate {type(layer).__name__}"
            elif include is not None and not _matches(layer.name, include):
                reasons[layer.name] = "not matched by include"
                target = None
            elif exclude is not None and _matches(layer.name, exclude):
                reasons[layer.name] = "matched by exclude"
                target = None
            else:
                mult, why = _multiplier_for(layer.name, spec)
                if mult is None:
                    reasons[layer.name] = why
                    target = None
                else:
                    # "ste"/"table" are the integer multipliers' modes; float ones then take their own gradients
                    bw = "approx" if backward in ("ste", "table") and not mult.is_integer else backward
                    config.update(multiplier=mult, backward=bw, backend=backend, quantization=quantization)
        if target is None:
            return type(layer).from_config(config)
        try:
            return target.from_config(config)
        except (ValueError, TypeError) as e:
            inner = e.__context__ if isinstance(e, TypeError) and e.__context__ is not None else e
            raise ValueError(f"Cannot convert layer {layer.name!r} ({type(layer).__name__}): {inner} "
                             f"To keep it exact, pass exclude=[{layer.name!r}].") from e

    new = keras.models.clone_model(model, clone_function=clone, recursive=True)
    old_weights = model.get_weights()
    stock = stock_weights(new)  # integer layers add their activation ranges, which start uncalibrated
    if len(stock) != len(old_weights):
        raise RuntimeError(f"Converted model has {len(stock)} weights, the original {len(old_weights)}; "
                           "please report this model to approxsim.")
    for v, value in zip(stock, old_weights):
        v.assign(value)
    object.__setattr__(new, "_approxsim_reasons", reasons)
    rep = report(new)
    object.__setattr__(new, "approxsim_report", rep)
    left = [r.name for r in rep.exact if "has no approximate" in r.reason]
    if left:
        warnings.warn(f"{len(left)} multiply-heavy layers have no approxsim replacement and stay exact: "
                      f"{', '.join(left[:5])}{' ...' if len(left) > 5 else ''}. See approxsim.report(model).",
                      stacklevel=2)
    return new


def _is_functional(model):
    """A Functional model (``keras.Model(inputs, outputs)``, ``keras.applications``): Keras's own class name."""
    return any(c.__name__ == "Functional" for c in type(model).__mro__)
