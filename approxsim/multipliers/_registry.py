"""The in-process registry: names and aliases to multipliers, built-ins first.

Names are looked up case-insensitively (an exact match first). A new name must not equal a
built-in's name or alias in any case, nor another user name up to case, and must be usable as
a file name (no path separators, ``..``, spaces or control characters). User multipliers
recorded in the persistent registry (:mod:`approxsim.multipliers._store`) are added on demand,
so a name registered by another process is found.
"""

from __future__ import annotations

import difflib
import threading
import warnings

from approxsim.errors import RegistryError, UnknownMultiplierError
from approxsim.multiplier import Multiplier

__all__ = ["lock", "available", "get", "add", "remove", "check_name", "is_builtin", "user_names"]

lock = threading.RLock()
_registry: dict = {}
_aliases: dict = {}
_folded: dict = {}  # lower-cased name or alias -> name
_builtin: frozenset = frozenset()
_registry_problem = None  # the RegistryError of the last read, if the registry is damaged
_records_in_use: dict = {}  # user name -> the registry record its multiplier was made from
_MAX_NAME = 100


def add(mult: Multiplier) -> None:
    """Adds (or replaces) a multiplier under its name and aliases (no checks: see check_name)."""
    with lock:
        old = _registry.get(mult.name)
        if old is not None:
            for alias in old.aliases:
                _aliases.pop(alias, None)
                _folded.pop(alias.lower(), None)
        _registry[mult.name] = mult
        _folded[mult.name.lower()] = mult.name
        for alias in mult.aliases:
            _aliases[alias] = mult.name
            _folded[alias.lower()] = mult.name


def remove(name: str) -> None:
    with lock:
        _records_in_use.pop(name, None)
        mult = _registry.pop(name, None)
        if mult is not None:
            _folded.pop(name.lower(), None)
            for alias in mult.aliases:
                _aliases.pop(alias, None)
                _folded.pop(alias.lower(), None)


def _install_builtins() -> None:
    global _builtin
    from approxsim.multipliers._builtin import builtins

    for mult in builtins():
        add(mult)
    _builtin = frozenset(_registry)


def is_builtin(name: str) -> bool:
    """Whether ``name`` (any case) is a built-in's name or alias."""
    target = _folded.get(name.lower())
    return target is not None and target in _builtin


def user_names() -> list:
    return sorted(n for n in _registry if n not in _builtin)


def check_name(name) -> str:
    """A valid name for a new user multiplier.

    Raises:
      ValueError: not a usable name, or a built-in's name or alias in some case.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"A multiplier name must be a non-empty string. Received: name={name!r}")
    bad = [c for c in name if c.isspace() or ord(c) < 32 or ord(c) == 127 or c in "/\\\"'"]
    if bad or ".." in name or len(name) > _MAX_NAME or name.startswith("."):
        raise ValueError(f"A multiplier name may not contain spaces, control characters, quotes, path separators "
                         f"or '..', start with '.', or exceed {_MAX_NAME} characters; use letters, digits, '_', "
                         f"'-', '.'. Received: name={name!r}")
    if is_builtin(name):
        raise ValueError(f"{name!r} is a built-in multiplier's name (as {_folded[name.lower()]!r}); names are compared "
                         "without regard to case. Pass another name=.")
    return name


def _load_user(refresh: bool) -> None:
    """Adds the persisted user multipliers this process does not have, and replaces those whose record
    another process changed since (another model registered under the name): no stale arithmetic."""
    global _registry_problem
    from approxsim.multipliers import _register, _store

    try:
        records = _store.records_if_changed()
    except RegistryError as e:
        _registry_problem = e
        return
    if records is None:  # unchanged since the last look
        return
    _registry_problem = None
    for name, rec in records.items():
        if not isinstance(rec, dict) or name in _builtin:
            continue
        if name in _registry and (name not in _records_in_use or _records_in_use[name] == rec):
            continue
        try:
            add(_register.from_record(name, rec))
            _records_in_use[name] = rec
        except (KeyError, ValueError, TypeError):
            continue


def note_record(name: str, rec: dict) -> None:
    """Records which registry record the in-process multiplier ``name`` was made from."""
    _records_in_use[name] = rec


def registry_problem():
    """The RegistryError of a damaged registry, or None."""
    return _registry_problem


def available() -> list:
    """Names of every registered multiplier: built-ins first, then user ones (sorted).

    A damaged registry of user multipliers gives a warning (and only the names it could read).
    """
    with lock:
        _load_user(refresh=True)
        if _registry_problem is not None:
            warnings.warn(str(_registry_problem), stacklevel=2)
        return [n for n in _registry if n in _builtin] + user_names()


def _lookup(name: str):
    if name in _registry:
        return _registry[name]
    if name in _aliases:
        return _registry[_aliases[name]]
    target = _folded.get(name.lower())
    return None if target is None else _registry[target]


def get(name_or_multiplier) -> Multiplier:
    """The :class:`Multiplier` for a name or alias (case-insensitive); a Multiplier passes through.

    Raises:
      UnknownMultiplierError: no multiplier of that name; the message suggests the closest names
        (and names the registry if it is damaged).
      TypeError: neither a name nor a Multiplier.
    """
    if isinstance(name_or_multiplier, Multiplier):
        return name_or_multiplier
    if not isinstance(name_or_multiplier, str):
        raise TypeError("multiplier must be a name (str) or an approxsim.Multiplier. "
                        f"Received: multiplier={name_or_multiplier!r}")
    name = name_or_multiplier
    with lock:
        _load_user(refresh=True)  # another process may have registered or replaced it since (cheap if not)
        found = _lookup(name)
        if found is not None:
            return found
        names = list(_registry) + list(_aliases)
    close = difflib.get_close_matches(name.lower(), [n.lower() for n in names], n=4, cutoff=0.6)
    suggestion = ""
    if close:
        shown = [_folded.get(c, c) for c in close]
        suggestion = f" Did you mean {', '.join(repr(s) for s in dict.fromkeys(shown))}?"
    damaged = f" Note: {_registry_problem}" if _registry_problem is not None else ""
    users = user_names()
    mine = f"; yours: {', '.join(users[:4])}{f' and {len(users) - 4} more' if len(users) > 4 else ''}" if users else ""
    raise UnknownMultiplierError(
        f"Unknown multiplier {name!r}.{suggestion} Available: {_families([n for n in _registry if n in _builtin])}"
        f"{mine} (`approxsim multipliers` describes each; approxsim.multipliers.register_c adds yours)."
        f"{damaged} Received: multiplier={name!r}")


def _families(names) -> str:
    """Names that differ only in a trailing number, shortened: ``mbm1..mbm11`` for runs, ``int4/8/16`` else."""
    import re

    groups: dict = {}
    for n in names:
        match = re.fullmatch(r"(.*?)(\d+)", n)
        key = match.group(1) if match else n
        groups.setdefault(key, []).append((int(match.group(2)) if match else None, n))
    parts = []
    for key, items in groups.items():
        numbers = sorted(v for v, _ in items if v is not None)
        parts.extend(n for v, n in items if v is None)
        runs = []
        for v in numbers:
            if runs and v == runs[-1][-1] + 1:
                runs[-1].append(v)
            else:
                runs.append([v])
        singles = [v for run in runs if len(run) <= 2 for v in run]
        parts.extend(f"{key}{run[0]}..{key}{run[-1]}" for run in runs if len(run) > 2)
        if singles:
            parts.append(key + "/".join(str(v) for v in singles))  # int4/8/16
    return ", ".join(parts)


_install_builtins()
