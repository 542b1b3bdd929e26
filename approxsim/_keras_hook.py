"""Registers approxsim's Keras layers as soon as Keras is there, so ``.keras`` files load after ``import approxsim``.

Keras finds custom layers (``"approxsim>AMConv2D"``) only among registered classes; the layers
register when :mod:`approxsim.layers` is imported, which imports TensorFlow. ``import approxsim``
stays light: if Keras is already imported, the layers are imported now; otherwise a one-shot
import hook imports them right after Keras itself is first imported.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys

_TARGET = "keras"


def _register() -> None:
    try:
        import approxsim.layers  # noqa: F401  (the decorators register the classes)
    except Exception:  # TensorFlow missing or broken: the layers are unusable anyway; say so where used
        pass


class _AfterKeras(importlib.abc.MetaPathFinder):
    """Wraps Keras's loader so that the layers are imported once Keras has finished importing."""

    def find_spec(self, fullname, path, target=None):
        if fullname != _TARGET:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding us
        spec = importlib.util.find_spec(fullname)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def exec_then_register(module):
            exec_module(module)
            _register()

        loader.exec_module = exec_then_register
        return spec


def install() -> None:
    """Imports the layers now if Keras is imported, else after Keras's first import."""
    if _TARGET in sys.modules:
        _register()
    elif not any(isinstance(f, _AfterKeras) for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterKeras())
