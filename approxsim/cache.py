"""The cache folder: where tables, compiled models, kept sources and the registry live.

``$APPROXSIM_CACHE``, else ``~/.cache/approxsim``. Everything in it can be rebuilt from what
the registry keeps, except the registry itself (see :mod:`approxsim.multipliers._store`).
A cache that cannot be written (read-only folder or mount) does not stop work: what would
have been cached is used from memory, with a one-line warning that names the folder and the fix.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from pathlib import Path

__all__ = ["cache_dir", "writable", "write_or_warn", "CacheWarning"]


class CacheWarning(UserWarning):
    """The cache folder could not be written; results are used from memory."""


def cache_dir() -> Path:
    """The cache folder: ``$APPROXSIM_CACHE``, else ``~/.cache/approxsim``.

    Raises:
      NotADirectoryError: the path exists and is not a folder (the message says how to fix it).
    """
    env = os.environ.get("APPROXSIM_CACHE")
    path = Path(env).expanduser() if env else Path.home() / ".cache" / "approxsim"
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(
            f"The approxsim cache {str(path)!r} is a file, not a folder. Point APPROXSIM_CACHE at a folder "
            f"(it is created if missing), or move the file away. Received: APPROXSIM_CACHE={env!r}")
    return path


def writable() -> tuple[bool, str]:
    """``(writable, reason)`` for the cache folder, without changing anything in it."""
    try:
        path = cache_dir()
    except NotADirectoryError as e:
        return False, str(e)
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        return False, f"{probe} is not writable"
    if probe == path:
        try:
            with tempfile.NamedTemporaryFile(dir=path, prefix=".probe-"):
                pass
        except OSError as e:
            return False, f"{path}: {e.strerror or e}"
    return True, "writable"


_warned = set()


def write_or_warn(write, *, what: str):
    """Runs ``write()``; if the cache cannot be written, warns once (per folder) and returns None."""
    try:
        return write()
    except OSError as e:
        folder = str(cache_dir())
        if folder not in _warned:
            _warned.add(folder)
            warnings.warn(
                f"approxsim could not write {what} to its cache {folder} ({e.strerror or e}); using it from memory "
                f"this time. Make the folder writable, or set APPROXSIM_CACHE to a writable folder.",
                CacheWarning, stacklevel=3)
        return None
