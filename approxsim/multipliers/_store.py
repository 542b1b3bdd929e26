"""The persistent registry of user multipliers: ``registry.json`` in the cache folder.

``{"version": 2, "multipliers": {name: record}}``. Paths in records are relative to the cache
folder, so the folder can be moved or copied. A record holds what rebuilds its multiplier from
nothing but the cache: the kept copy of the model and of every file it reads (``sources/``),
the function, the options, and the cache key of its table (which the table file must carry).

A registry that cannot be parsed is never overwritten: reading it raises
:class:`RegistryError`, which names the file, the problem and the fix. Every write also writes
``registry.json.bak`` (the last good copy), which :func:`restore_backup` puts back. Writers hold a file lock, so concurrent registrations
(other processes too) do not lose each other's records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from pathlib import Path
from typing import Optional

from approxsim.cache import cache_dir
from approxsim.errors import RegistryError
from approxsim.lut import atomic_write_bytes

__all__ = ["registry_file", "backup_file", "read_records", "update_records", "restore_backup", "to_cache_path",
           "from_cache_path", "FORMAT_VERSION"]

FORMAT_VERSION = 2


def registry_file() -> Path:
    return cache_dir() / "registry.json"


def backup_file() -> Path:
    return cache_dir() / "registry.json.bak"


def to_cache_path(path) -> str:
    """``path`` relative to the cache folder (as records store it), or absolute if outside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(cache_dir().resolve()).as_posix()
    except ValueError:
        return str(path)


def from_cache_path(text: str) -> Path:
    """A record's path: relative ones are inside the cache folder (absolute ones, from older registries, as they are)."""
    path = Path(text)
    return path if path.is_absolute() else cache_dir() / path


@contextlib.contextmanager
def _lock():
    path = cache_dir() / ".registry.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _damaged(path: Path, problem: str) -> RegistryError:
    backup = backup_file()
    keep = (f"The last good copy is {backup}: restore it with `approxsim restore-registry` (or "
            f"approxsim.multipliers.restore_registry()), which keeps the damaged file beside it."
            if backup.is_file() else
            f"No earlier copy exists; move the file away and register your models again (their kept "
            f"sources are under {cache_dir() / 'sources'}).")
    return RegistryError(f"The registry of user multipliers {path} cannot be read: {problem}. It was left as it is "
                         f"(nothing overwrites it). {keep}")


def read_records() -> dict:
    """The records by name ({} when there is no registry yet).

    Raises:
      RegistryError: the file exists but cannot be read or parsed.
    """
    path = registry_file()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as e:
        raise _damaged(path, f"{type(e).__name__}: {e}") from None
    except ValueError as e:
        raise _damaged(path, f"it is not valid JSON ({e}; truncated?)") from None
    if not isinstance(data, dict) or not isinstance(data.get("multipliers", {}), dict):
        raise _damaged(path, "it does not hold {\"multipliers\": {...}}")
    return dict(data.get("multipliers", {}))


_cached = {"stamp": None, "records": {}}


def records_if_changed():
    """The records when the registry file changed since the last call (by size and time), else None.

    Raises:
      RegistryError: as :func:`read_records`.
    """
    path = registry_file()
    try:
        st = path.stat()
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
    except OSError:
        stamp = None
    if stamp == _cached["stamp"]:
        return None
    records = read_records()
    _cached.update(stamp=stamp, records=records)
    return records


def update_records(change) -> dict:
    """Applies ``change(records)`` (which edits the dict in place) under the lock and writes the result
    (to the registry and to its backup). Returns the records written.

    Raises:
      RegistryError: the current registry cannot be read (it is not touched).
      OSError: the cache folder cannot be written.
    """
    with _lock():
        records = read_records()
        change(records)
        payload = json.dumps({"version": FORMAT_VERSION, "multipliers": records}, indent=2, sort_keys=True).encode()
        atomic_write_bytes(registry_file(), payload)
        atomic_write_bytes(backup_file(), payload)  # the last good copy, should the registry be damaged later
        return records


def restore_backup() -> Path:
    """Puts the last good copy back; the damaged file is kept as ``registry.json.damaged-<time>``.

    Returns:
      The path of the kept damaged file (or of the registry, if it was not damaged).

    Raises:
      RegistryError: there is no backup, or it cannot be read either.
    """
    with _lock():
        backup, path = backup_file(), registry_file()
        if not backup.is_file():
            raise RegistryError(f"There is no backup of the registry ({backup} does not exist).")
        try:
            json.loads(backup.read_text())
        except (OSError, ValueError) as e:
            raise RegistryError(f"The backup {backup} cannot be read either ({e}).") from None
        kept = path
        if path.is_file():
            kept = path.with_name(f"registry.json.damaged-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
            shutil.copyfile(path, kept)
        atomic_write_bytes(path, backup.read_bytes())
        return kept


def source_file(mult) -> Optional[Path]:
    """The C/C++ file a user-registered multiplier was compiled from, or None (built-ins, Python tables).

    The registry records the source as ``"path:function"``; where that file has gone since, the
    copy the registry kept of it (``source_copy``) is used.
    """
    source = getattr(mult, "source", "") or ""
    if ":" not in source or source.startswith(("builtin:", "approxtrain:")):
        return None
    path = Path(source.rsplit(":", 1)[0])
    if path.is_file():
        return path
    try:
        copy = read_records().get(mult.name, {}).get("source_copy", "")
    except RegistryError:  # a damaged registry: the source is unknown here (its users go on without it)
        return None
    if copy and from_cache_path(copy).is_file():
        return from_cache_path(copy)
    return None
