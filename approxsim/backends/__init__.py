"""Backend selection: the one place that decides where the arithmetic runs.

Order: the ``backend=`` argument, then ``$APPROXSIM_BACKEND``, then ``auto``:
``cuda`` when CuPy and a GPU are usable, else ``cpu`` (the C++ extension), else
``reference`` (NumPy).
"""

from __future__ import annotations

import importlib
import os
import threading

from approxsim.errors import BackendUnavailableError

__all__ = ["get_backend", "bind", "available_backends", "backend_status", "BACKEND_NAMES"]

BACKEND_NAMES = ("reference", "cpu", "cuda")
_MODULES = {name: f"approxsim.backends.{name}" for name in BACKEND_NAMES}
_instances = {}
_lock = threading.Lock()


def backend_status(name: str) -> tuple[bool, str]:
    """``(usable, reason)`` for a backend name, without raising."""
    if name not in _MODULES:
        return False, f"unknown backend {name!r}"
    try:
        module = importlib.import_module(_MODULES[name])
    except ImportError as e:
        return False, f"cannot import {_MODULES[name]}: {e}"
    return module.status()


def _check_settings() -> None:
    """Raises ValueError for a backend setting that is wrong (``$APPROXSIM_SIMD``, ...)."""
    for name in BACKEND_NAMES:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError:
            continue
        check = getattr(module, "check_settings", None)
        if check is not None:
            check()


def available_backends() -> list[str]:
    """Names of the backends usable in this process."""
    return [name for name in BACKEND_NAMES if backend_status(name)[0]]


def get_backend(name=None):
    """The backend object for ``name`` (``None`` or ``"auto"``: see the module docstring).

    Raises:
      ValueError: unknown name, or a wrong backend setting (``$APPROXSIM_SIMD``).
      BackendUnavailableError: the backend cannot run here; the message says what to install.
    """
    if name is not None and not isinstance(name, str):
        if hasattr(name, "matmul") and hasattr(name, "conv2d"):
            return name  # a backend object
        raise TypeError(f"backend must be a name. Received: backend={name!r}")
    name = (name or os.environ.get("APPROXSIM_BACKEND") or "auto").lower()
    _check_settings()  # settings the user made wrong are errors, not a reason to pick another backend
    if name == "auto":
        for candidate in ("cuda", "cpu", "reference"):
            if backend_status(candidate)[0]:
                name = candidate
                break
    if name not in _MODULES:
        raise ValueError(f"Unknown backend {name!r}. Choose one of: auto, {', '.join(BACKEND_NAMES)}. "
                         f"Received: backend={name!r}")
    with _lock:
        if name not in _instances:
            ok, reason = backend_status(name)
            if not ok:
                raise BackendUnavailableError(f"Backend {name!r} is not usable here: {reason}")
            _instances[name] = importlib.import_module(_MODULES[name]).create()
        return _instances[name]


def bind(multiplier, backend=None):
    """The kernels that run ``multiplier`` (a name or Multiplier) on ``backend``: one resolution per call.

    Raises:
      UnknownMultiplierError: the multiplier is not registered.
      ValueError, BackendUnavailableError: as :func:`get_backend`.
    """
    from approxsim import multipliers

    return get_backend(backend).bind(multipliers.get(multiplier))
