"""The hardware side of a sweep's integer circuits: error figures and published power and area.

Every row of ``results.csv`` carries, for an integer multiplier, :data:`FIGURE_COLUMNS`:

- ``mae_percent``, ``wce_percent``: EvoApproxLib's MAE% and WCE% (:mod:`approxsim.int_metrics`),
  computed from the circuit itself (exhaustively over a table; sampled for a direct model
  without one, see :func:`approxsim.analysis.analyze_integer`), so built-ins get them too;
- ``power_mw``, ``area_um2``: the power and area that the circuit's C file states in its header
  (``// PDK45_PWR = 0.311 mW``, ``// PDK45_AREA = 508.3 um2``;
  :func:`approxsim.int_metrics.published_figures`), empty when it states none (the built-ins,
  files that are not EvoApproxLib's).

Float multipliers have all four empty: they are no integer circuits.
"""

from __future__ import annotations


__all__ = ["FIGURE_COLUMNS", "figures", "with_figures", "integer_names"]

FIGURE_COLUMNS = ("mae_percent", "wce_percent", "power_mw", "area_um2")
_PUBLISHED = {"power_mw": "PDK45_PWR", "area_um2": "PDK45_AREA"}  # column -> the header's name (mW, um2)
_EMPTY = dict.fromkeys(FIGURE_COLUMNS)


def _compute(mult) -> dict:
    from approxsim.analysis import analyze_integer
    from approxsim.int_metrics import published_figures
    from approxsim.multipliers._store import source_file

    metrics = analyze_integer(mult)["metrics"]
    out = {"mae_percent": metrics["MAE%"], "wce_percent": metrics["WCE%"], "power_mw": None, "area_um2": None}
    path = source_file(mult)
    if path is not None:
        stated = published_figures(path)
        out.update({col: stated.get(key) for col, key in _PUBLISHED.items()})
    return out


def figures(name) -> dict:
    """:data:`FIGURE_COLUMNS` of a multiplier (a name or Multiplier): floats, or None where unknown.

    Computed once per multiplier object and cached on it.

    Raises:
      approxsim.UnknownMultiplierError: the name is not registered.
    """
    from approxsim import multipliers

    mult = multipliers.get(name)
    if not mult.is_integer:
        return dict(_EMPTY)
    return dict(mult.derived("sweep_circuit_figures", lambda: _compute(mult)))


def with_figures(rows) -> list:
    """The rows with :data:`FIGURE_COLUMNS` filled in from their multiplier (empty for float ones, and
    for a multiplier no longer registered in this process, e.g. of an earlier sweep being resumed)."""
    from approxsim.errors import UnknownMultiplierError

    cache = {}
    out = []
    for row in rows:
        name = row["multiplier"]
        if name not in cache:
            try:
                cache[name] = figures(name)
            except UnknownMultiplierError:
                cache[name] = {k: row.get(k) for k in FIGURE_COLUMNS}
        out.append({**row, **cache[name]})
    return out


def integer_names(names) -> list:
    """The names among ``names`` of registered integer multipliers."""
    from approxsim import multipliers
    from approxsim.errors import UnknownMultiplierError

    out = []
    for name in names:
        try:
            if multipliers.get(name).is_integer:
                out.append(name)
        except UnknownMultiplierError:
            continue
    return out
