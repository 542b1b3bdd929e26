"""``show_config()``: versions, backends, SIMD level, GPU and cache folder."""

from __future__ import annotations

import importlib
import os
import platform
import sys

from approxsim._version import __version__
from approxsim.backends import BACKEND_NAMES, backend_status
from approxsim.compile import cache_dir


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # an installed package may fail to import for many reasons
        return f"not available ({type(e).__name__})"
    return getattr(mod, "__version__", "installed")


def _simd_level() -> str:
    try:
        from approxsim import _cpu
    except ImportError as e:
        return f"C++ extension not built ({e})"
    return _cpu.simd_level()


def config() -> dict:
    """The facts :func:`show_config` prints, as a dict."""
    info = {
        "approxsim": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "tensorflow": _version("tensorflow") if "tensorflow" in sys.modules else "(not imported)",
        "cache": str(cache_dir()),
        "APPROXSIM_BACKEND": os.environ.get("APPROXSIM_BACKEND", "(unset: auto)"),
        "APPROXSIM_NUM_THREADS": os.environ.get("APPROXSIM_NUM_THREADS", f"(unset: all {os.cpu_count()} cores)"),
        "cpu SIMD": _simd_level(),
        "backends": {},
    }
    for name in BACKEND_NAMES:
        ok, reason = backend_status(name)
        info["backends"][name] = ("usable: " if ok else "unavailable: ") + reason
    return info


def show_config(file=None) -> None:
    """Prints versions, backends (with the reason any is unusable), and the cache folder."""
    file = file or sys.stdout
    info = config()
    backends = info.pop("backends")
    for key, value in info.items():
        print(f"{key + ':':<24}{value}", file=file)
    for name, state in backends.items():
        print(f"{'backend ' + name + ':':<24}{state}", file=file)
    try:
        from approxsim.backends import get_backend

        print(f"{'auto backend:':<24}{get_backend('auto').name}", file=file)
    except Exception as e:  # nothing usable is itself worth reporting
        print(f"{'auto backend:':<24}none ({e})", file=file)
