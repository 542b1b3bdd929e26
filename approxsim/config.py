"""``show_config()``: versions, backends, SIMD level (detected and forced), GPU, cache folder."""

from __future__ import annotations

import importlib
import os
import platform
import sys

from approxsim._version import __version__
from approxsim.backends import BACKEND_NAMES, backend_status
from approxsim.cache import cache_dir


def _version(module: str) -> str:
    try:
        mod = importlib.import_module(module)
    except Exception as e:  # an installed package may fail to import for many reasons
        return f"not available ({type(e).__name__})"
    return getattr(mod, "__version__", "installed")


def _simd_level() -> str:
    """The SIMD level the CPU kernels use, the best this CPU has, and what $APPROXSIM_SIMD asks for."""
    from approxsim.backends import cpu

    if cpu._cpu is None:
        return f"C++ extension not built ({cpu._IMPORT_ERROR})"
    try:
        forced = cpu.forced_simd()
    except ValueError as e:
        return f"error: {e}"
    cpu.check_settings()
    used = cpu.simd_name(cpu._cpu.simd_level())
    how = f"forced by APPROXSIM_SIMD={forced}" if forced else "APPROXSIM_SIMD unset: the best"
    halved = ("; 512-bit operations in two halves (AMD Zen 4): expanded operands before byte permutes"
              if cpu._cpu.halved_512bit_ops() else "")
    return (f"{used} (detected: {cpu.detected_simd()}; {how}; this CPU runs {', '.join(cpu.supported_simd())}"
            f"{halved})")


def _cache() -> str:
    from approxsim.cache import writable

    try:
        path = str(cache_dir())
    except NotADirectoryError as e:
        return f"error: {e}"
    ok, reason = writable()
    return path + ("" if ok else f" (NOT writable: {reason}; tables are used from memory, registrations "
                                 "last one process)")


def config() -> dict:
    """The facts :func:`show_config` prints, as a dict."""
    info = {
        "approxsim": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "numpy": _version("numpy"),
        "tensorflow": _version("tensorflow") if "tensorflow" in sys.modules else "(not imported)",
        "cache": _cache(),
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
