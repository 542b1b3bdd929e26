"""Error plots of multipliers: a relative-error map over the table and histograms.

matplotlib is imported on first use, with the non-interactive Agg backend, so
that ``import approxsim`` does not need it and plots work without a display.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["plot_errors", "plot_comparison"]

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


def _check_path(path) -> Path:
    path = Path(path).expanduser()
    if not path.suffix:
        raise ValueError(f"The plot file needs a suffix that names its format, such as .png. "
                         f"Received: path={str(path)!r}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"The folder of the plot file does not exist; create it first. "
                                f"Received: path={str(path)!r}")
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
    path = _check_path(path)
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
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path


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
    path = _check_path(path)
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
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
