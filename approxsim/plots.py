"""Error plots of multipliers: a relative-error map over the table and histograms (float
multipliers), an error map over the operand codes and an error histogram (integer ones); and
the accuracy of a network against the cost of its integer circuits (:func:`pareto_plot`).

matplotlib is imported on first use, with the non-interactive Agg backend, so
that ``import approxsim`` does not need it and plots work without a display.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["plot_errors", "plot_comparison", "error_map_plot", "error_histogram_plot", "pareto_plot"]

_MAX_MAP_SIDE = 512  # larger error maps are shown block-averaged (an 11-bit map has 2048x2048 cells)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise ImportError("Plots need matplotlib. Install it with `pip install matplotlib`, "
                          "or run without --plot.") from None
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _check_plot_path(path) -> tuple[Path, str]:
    path = Path(os.fspath(path)).expanduser()
    fmt = path.suffix[1:].lower()
    if not fmt:
        raise ValueError(f"The plot file needs a suffix that names its format, such as .png. "
                         f"Received: path={str(path)!r}")
    _pyplot()  # matplotlib with the Agg backend, or a clear ImportError
    from matplotlib.backend_bases import FigureCanvasBase

    if fmt not in FigureCanvasBase.get_supported_filetypes():
        raise ValueError(f"matplotlib cannot write .{fmt} files; use .png, .pdf or .svg. "
                         f"Received: path={str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder of the plot file does not exist; create it first. "
                                f"Received: path={str(path)!r}")
    return path, fmt


def _save_atomic(fig, path: Path, fmt: str, dpi=None) -> Path:
    """Renders ``fig`` to a temporary file beside ``path``, then renames it over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fig.savefig(fh, format=fmt, **({"dpi": dpi} if dpi else {}))
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _block_mean(rel: np.ndarray) -> np.ndarray:
    side = rel.shape[0]
    if side <= _MAX_MAP_SIDE:
        return rel
    f = side // _MAX_MAP_SIDE
    return rel.reshape(_MAX_MAP_SIDE, f, _MAX_MAP_SIDE, f).mean(axis=(1, 3))


def _limit(values: np.ndarray) -> float:
    finite = np.abs(values[np.isfinite(values)])
    top = float(finite.max()) if finite.size else 0.0
    return top if top > 0 else 1e-12


def _hist_range(arrays) -> tuple:
    lo = min(float(np.nanmin(x)) for x in arrays)
    hi = max(float(np.nanmax(x)) for x in arrays)
    if hi <= lo:
        pad = max(abs(lo), 1e-6) * 0.05
        lo, hi = lo - pad, hi + pad
    return lo, hi


def plot_errors(errors: dict, stats: dict, path, *, dpi: int = 110) -> Path:
    """Writes a multiplier's relative-error map over its table grid and an error histogram.

    Args:
      errors: :func:`approxsim.analysis.relative_errors` of the multiplier.
      stats: :func:`approxsim.analyze` of the same multiplier (for titles).
      path: the image file (its suffix picks the format, e.g. ``.png``).
      dpi: resolution.

    Returns:
      The path written.
    """
    path, fmt = _check_plot_path(path)
    plt = _pyplot()
    name, bits = stats["multiplier"], errors["grid_bits"]
    fig, (ax_map, ax_hist) = plt.subplots(1, 2, figsize=(12, 5))
    rel = _block_mean(errors["table"])
    lim = _limit(rel)
    image = ax_map.imshow(rel, origin="lower", extent=(1, 2, 1, 2), cmap="RdBu_r", vmin=-lim, vmax=lim,
                          interpolation="nearest", aspect="equal")
    bar = fig.colorbar(image, ax=ax_map)
    bar.set_label("relative error (approx - exact) / exact")
    ax_map.set_xlabel(f"second operand b = 1 + j/2^{bits} (column j)")
    ax_map.set_ylabel(f"first operand a = 1 + i/2^{bits} (row i)")
    t = stats["table"]
    ax_map.set_title(f"{name}: error over the {1 << bits}x{1 << bits} grid\n"
                     f"mean {100 * t['mean_rel_error']:+.3g}%, max |err| {100 * t['max_abs_rel_error']:.3g}%")
    r = stats["random"]
    data = [errors["table"].ravel(), errors["random"]]
    rng = _hist_range(data)
    ax_hist.hist(data[1], bins=100, range=rng, density=True, alpha=0.6,
                 label=f"random operands ({r['samples']:,})")
    ax_hist.hist(data[0], bins=100, range=rng, density=True, histtype="step", linewidth=1.5,
                 label="table grid")
    ax_hist.set_xlabel("relative error (approx - exact) / exact")
    ax_hist.set_ylabel("density")
    ax_hist.set_title(f"{name}: histogram of relative errors\n"
                      f"random: mean {100 * r['mean_rel_error']:+.3g}%, MRED {100 * r['mean_abs_rel_error']:.3g}%")
    ax_hist.legend()
    fig.tight_layout()
    try:
        return _save_atomic(fig, path, fmt, dpi=dpi)
    finally:
        plt.close(fig)


def plot_comparison(results: list, path, *, dpi: int = 110) -> Path:
    """Writes one figure comparing multipliers: their error statistics side by side and histograms.

    Args:
      results: ``(stats, errors)`` pairs: :func:`approxsim.analyze` and
        :func:`approxsim.analysis.relative_errors` of each multiplier.
      path: the image file (its suffix picks the format, e.g. ``.png``).
      dpi: resolution.

    Returns:
      The path written.
    """
    path, fmt = _check_plot_path(path)
    plt = _pyplot()
    names = [s["multiplier"] for s, _ in results]
    fig, (ax_bar, ax_hist) = plt.subplots(1, 2, figsize=(13, 5))
    metrics = (("mean_rel_error", "bias (mean)"), ("mean_abs_rel_error", "MRED"),
               ("max_abs_rel_error", "max |error|"))
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    for k, (key, label) in enumerate(metrics):
        values = [100 * s["random"][key] for s, _ in results]
        ax_bar.bar(x + (k - (len(metrics) - 1) / 2) * width, values, width, label=label)
    ax_bar.axhline(0, color="black", linewidth=0.8)
    ax_bar.set_xticks(x)
    ax_bar.set_xticklabels(names, rotation=30, ha="right")
    ax_bar.set_ylabel("relative error on random operands (%)")
    ax_bar.set_title("error statistics (random full-precision operands)")
    ax_bar.legend()
    data = [e["random"] for _, e in results]
    rng = _hist_range(data)
    for name, values in zip(names, data):
        ax_hist.hist(values, bins=120, range=rng, density=True, histtype="step", linewidth=1.5, label=name)
    ax_hist.set_xlabel("relative error (approx - exact) / exact")
    ax_hist.set_yscale("log")
    ax_hist.set_ylabel("density (log scale)")
    ax_hist.set_title("histograms of relative errors (random operands)")
    ax_hist.legend()
    fig.tight_layout()
    try:
        return _save_atomic(fig, path, fmt, dpi=dpi)
    finally:
        plt.close(fig)


# ------------------------------------------------------------- integer multipliers (int_metrics)

def _kind(bits: int, signed: bool) -> str:
    return f"{bits}-bit {'signed' if signed else 'unsigned'}"


def error_map_plot(table: np.ndarray, bits: int, signed: bool, path, title: str = "") -> Path:
    """Writes a heatmap of the error ``f(a, b) - a*b`` over the operand codes.

    The first operand ``a`` is on the y axis, ``b`` on the x axis, both ordered by code value (signed
    codes run from the minimum through 0 to the maximum) and labelled in codes. Tables of more than
    256 codes per side (``n > 8``) are shown over blocks of codes, each cell holding the error of
    largest magnitude in its block (with its sign). The file is written atomically.

    Args:
      table: the ``(2^n, 2^n)`` integer table of products, as for :func:`error_metrics`.
      bits: the operand width ``n``, 2 to 12.
      signed: whether the codes are two's complement.
      path: the image file; its suffix names the format (``.png``, ``.pdf``, ``.svg``, ...).
      title: the plot's title; a description of the circuit when empty.

    Returns:
      The path written, as a :class:`pathlib.Path`.

    Raises:
      ValueError: a bad table, ``bits`` or ``signed`` (see :func:`error_metrics`), or a path without
        a suffix or with one matplotlib cannot write.
      FileNotFoundError: the path's folder does not exist.
      ImportError: matplotlib is not installed.
    """
    from approxsim.int_metrics import error_map

    emap, c, f = error_map(table, bits, signed)
    path, fmt = _check_plot_path(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    try:
        lim = max(1, int(np.abs(emap).max()))
        lo, hi = int(c.min()), int(c.max())
        im = ax.imshow(emap, cmap="RdBu_r", vmin=-lim, vmax=lim, origin="lower", interpolation="nearest",
                       extent=(lo - 0.5, hi + 0.5, lo - 0.5, hi + 0.5), aspect="equal")
        ax.set_xlabel("b (code)")
        ax.set_ylabel("a (code)")
        label = "error f(a, b) - a*b"
        if f > 1:
            label += f" (largest |e| per {f}x{f} block)"
        fig.colorbar(im, ax=ax, label=label)
        ax.set_title(title or f"{_kind(bits, signed)} multiplier: error map")
        fig.tight_layout()
        return _save_atomic(fig, path, fmt)
    finally:
        plt.close(fig)


def error_histogram_plot(table: np.ndarray, bits: int, signed: bool, path, title: str = "") -> Path:
    """Writes a histogram of the error ``f(a, b) - a*b`` over all ``2^(2n)`` pairs.

    The y axis is the share of pairs (log scale). Bins are one integer wide when the errors span
    at most 200 values, else 200 equal bins of integer width. The file is written atomically.

    Args:
      table: the ``(2^n, 2^n)`` integer table of products, as for :func:`error_metrics`.
      bits: the operand width ``n``, 2 to 12.
      signed: whether the codes are two's complement.
      path: the image file; its suffix names the format (``.png``, ``.pdf``, ``.svg``, ...).
      title: the plot's title; a description of the circuit when empty.

    Returns:
      The path written, as a :class:`pathlib.Path`.

    Raises:
      ValueError: a bad table, ``bits`` or ``signed`` (see :func:`error_metrics`), or a path without
        a suffix or with one matplotlib cannot write.
      FileNotFoundError: the path's folder does not exist.
      ImportError: matplotlib is not installed.
    """
    from approxsim.int_metrics import error_histogram

    edges, counts = error_histogram(table, bits, signed)
    path, fmt = _check_plot_path(path)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    try:
        centres = (edges[:-1] + edges[1:]) / 2
        ax.hist(centres, bins=edges, weights=counts / float(1 << (2 * bits)), color="tab:blue")
        ax.set_yscale("log")
        ax.set_xlabel("error f(a, b) - a*b")
        ax.set_ylabel("share of pairs")
        ax.set_title(title or f"{_kind(bits, signed)} multiplier: errors over {1 << (2 * bits)} pairs")
        fig.tight_layout()
        return _save_atomic(fig, path, fmt)
    finally:
        plt.close(fig)


# ------------------------------------------------------------------ accuracy against circuit cost

_PARETO_AXES = {"power_mw": "power (mW, as published)", "mae_percent": "MAE (%)"}


def _front(points: list) -> list:
    """The points no other point beats on both counts (lower cost, higher accuracy), by cost."""
    front, best = [], -np.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def pareto_plot(circuits: list, path, *, title: str = "", baseline=None) -> Path:
    """Writes the test accuracy of a network with each integer circuit against the circuit's cost.

    The x axis is the circuit's published power; when some circuits state none, a second panel
    puts every circuit against its MAE% (and when none states it, that panel alone). The Pareto
    front (no other circuit both cheaper and more accurate) is drawn as a step line, fp32's
    accuracy as a dashed line. The file is written atomically.

    Args:
      circuits: dicts with ``multiplier``, ``test_accuracy`` (0..1), ``mae_percent`` and
        ``power_mw`` (None where unknown), e.g. the final rows of a sweep's ``results.csv``.
      path: the image file; its suffix names the format (``.png``, ``.pdf``, ``.svg``, ...).
      title: the figure's title.
      baseline: fp32's test accuracy (0..1), or None.

    Returns:
      The path written, as a :class:`pathlib.Path`.

    Raises:
      ValueError: no circuit, a circuit without ``mae_percent``, or a bad path (as :func:`error_map_plot`).
      FileNotFoundError: the path's folder does not exist.
      ImportError: matplotlib is not installed.
    """
    circuits = list(circuits)
    if not circuits or any(c.get("mae_percent") is None for c in circuits):
        raise ValueError("pareto_plot needs at least one integer circuit, each with its MAE% (mae_percent). "
                         f"Received: {[c.get('multiplier') for c in circuits]}")
    path, fmt = _check_plot_path(path)
    powered = [c for c in circuits if c.get("power_mw") is not None]
    panels = [("power_mw", powered)] if powered else []
    if len(powered) < len(circuits):
        panels.append(("mae_percent", circuits))
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(6.4 * len(panels), 4.8), squeeze=False)
    try:
        for ax, (key, shown) in zip(axes[0], panels):
            points = [(float(c[key]), 100 * float(c["test_accuracy"])) for c in shown]
            ax.scatter(*zip(*points), color="tab:blue", zorder=3)
            for c, (x, y) in zip(shown, points):
                ax.annotate(c["multiplier"], (x, y), textcoords="offset points", xytext=(4, 4), fontsize="small")
            front = _front(points)
            ax.step(*zip(*front), where="post", color="tab:orange", marker="o", markersize=11, fillstyle="none",
                    label="Pareto front")
            if baseline is not None:
                ax.axhline(100 * float(baseline), color="gray", linestyle="--", label="fp32")
            ax.set_xlabel(_PARETO_AXES[key])
            ax.set_ylabel("test accuracy (%)")
            note = "" if len(shown) == len(circuits) else f" ({len(shown)} of {len(circuits)} state it)"
            ax.set_title(f"accuracy against {_PARETO_AXES[key].split(' (')[0]}{note}", fontsize="medium")
            ax.grid(alpha=0.3)
            ax.legend(fontsize="small")
        if title:
            fig.suptitle(title)
        fig.tight_layout()
        return _save_atomic(fig, path, fmt)
    finally:
        plt.close(fig)
