"""Sweep outputs: ``results.csv``, the Markdown summary, the plots, and merging folders."""

from __future__ import annotations

import csv
import json
import os
from typing import Iterable, Optional

from approxsim.lut import atomic_write_bytes
from approxsim.sweep.circuits import FIGURE_COLUMNS

__all__ = ["COLUMNS", "write_results", "read_results", "summary_table", "write_plots", "plot", "merge",
           "write_outputs", "pareto_rows", "write_pareto", "NO_CIRCUITS"]

RUN_COLUMNS = ("multiplier", "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "seconds")
# The run's numbers, then the circuit's (approxsim.sweep.circuits); empty cells are None (a float
# multiplier's circuit figures, a PTQ circuit's train columns).
COLUMNS = RUN_COLUMNS + FIGURE_COLUMNS
BASELINE = "fp32"
NO_CIRCUITS = ("--plot-pareto draws test accuracy against the power (or MAE%) of integer circuits, and {what} "
               "has none. Sweep integer multipliers (e.g. --multipliers fp32,int8,bam8u_v4, or a registered "
               "EvoApproxLib file), or drop --plot-pareto.")


def _atomic_write(path: str, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def _cell(value) -> str:
    if value is None:
        return ""
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def write_results(rows: Iterable[dict], path: str) -> None:
    """Writes rows (dicts with :data:`COLUMNS`; missing or None values are empty cells) as CSV."""
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in COLUMNS})
    _atomic_write(path, buf.getvalue())


def read_results(path: str) -> list:
    """Reads a ``results.csv`` (or the folder holding it) into a list of dicts (empty cells: None).

    Files of sweeps before the circuit columns (:data:`RUN_COLUMNS` only) read with those None.

    Raises:
      FileNotFoundError: no such file.
      ValueError: the columns are not :data:`COLUMNS` (or :data:`RUN_COLUMNS`).
    """
    if os.path.isdir(path):
        path = os.path.join(path, "results.csv")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No results.csv there; pass the output folder of a sweep. Received: {path!r}")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) not in (COLUMNS, RUN_COLUMNS):
            raise ValueError(f"{path} is not a sweep's results.csv: its columns are {reader.fieldnames}, "
                             f"expected {list(COLUMNS)}.")
        rows = []
        for r in reader:
            row = {"multiplier": r["multiplier"], "epoch": int(r["epoch"])}
            row.update({k: float(r[k]) if r.get(k) else None for k in COLUMNS[2:]})
            rows.append(row)
    return rows


def _by_multiplier(rows) -> dict:
    out = {}
    for row in rows:
        out.setdefault(row["multiplier"], []).append(row)
    for runs in out.values():
        runs.sort(key=lambda r: r["epoch"])
    return out


# The circuit columns of the summary: (row key, heading, format).
_FIGURE_CELLS = (("mae_percent", "MAE%", "{:.4g}"), ("wce_percent", "WCE%", "{:.4g}"),
                 ("power_mw", "power (mW)", "{:.4g}"), ("area_um2", "area (um2)", "{:.5g}"))


def summary_table(rows, *, baseline: str = BASELINE) -> str:
    """A Markdown table: one line per multiplier, final and best test accuracy, loss, time, and
    when the sweep holds integer circuits their MAE%, WCE%, power and area (``-`` where unknown).

    The ``vs fp32`` column is the final test accuracy minus the baseline's, in percentage points.
    A PTQ circuit, not trained, has ``-`` as train accuracy.
    """
    runs = _by_multiplier(rows)
    base = runs.get(baseline)
    head = ["multiplier", "epochs", "test acc (final)", "test acc (best)", "test loss (final)",
            "train acc (final)", "seconds"]
    if base:
        head.insert(3, f"vs {baseline}")
    figures = [c for c in _FIGURE_CELLS if any(r.get("mae_percent") is not None for r in rows)]
    head += [title for _, title, _ in figures]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, rs in runs.items():
        last = rs[-1]
        train = "-" if last.get("train_accuracy") is None else f"{100 * last['train_accuracy']:.2f}%"
        cells = [name, str(last["epoch"]), f"{100 * last['test_accuracy']:.2f}%",
                 f"{100 * max(r['test_accuracy'] for r in rs):.2f}%", f"{last['test_loss']:.4f}",
                 train, f"{sum(r['seconds'] for r in rs):.1f}"]
        if base:
            ref = next((r for r in base if r["epoch"] == last["epoch"]), base[-1])
            cells.insert(3, f"{100 * (last['test_accuracy'] - ref['test_accuracy']):+.2f}")
        cells += ["-" if last.get(key) is None else fmt.format(last[key]) for key, _, fmt in figures]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(rows, path: str, *, kind: str = "accuracy", title: Optional[str] = None) -> str:
    """Draws test accuracy (``kind="accuracy"``), loss (``"loss"``: test solid, train dashed)
    or both side by side (``"both"``) against epoch, one line per multiplier, into a PNG."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        from approxsim.errors import ApproxsimError

        raise ApproxsimError("The sweep plots need matplotlib, which is not installed. "
                             "Install it: pip install matplotlib") from None

    runs = _by_multiplier(rows)
    kinds = ["accuracy", "loss"] if kind == "both" else [kind]
    fig = Figure(figsize=(6.4 * len(kinds), 4.4), dpi=100)
    FigureCanvasAgg(fig)
    for k, what in enumerate(kinds):
        ax = fig.add_subplot(1, len(kinds), k + 1)
        for i, (name, rs) in enumerate(runs.items()):
            color = f"C{i % 10}"
            epochs = [r["epoch"] for r in rs]
            if what == "accuracy":
                ax.plot(epochs, [100 * r["test_accuracy"] for r in rs], "o-", color=color, label=name, ms=3)
            else:
                ax.plot(epochs, [r["test_loss"] for r in rs], "o-", color=color, label=name, ms=3)
                trained = [r for r in rs if r.get("train_loss") is not None]  # none for a PTQ circuit
                ax.plot([r["epoch"] for r in trained], [r["train_loss"] for r in trained], "--", color=color,
                        alpha=0.6)
        ax.set_xlabel("epoch")
        ax.set_ylabel("test accuracy (%)" if what == "accuracy" else "loss (test solid, train dashed)")
        all_epochs = sorted({r["epoch"] for r in rows})
        if len(all_epochs) <= 20:
            ax.set_xticks(all_epochs)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncol=1 if len(runs) <= 8 else 2)
        if title:
            ax.set_title(title if len(kinds) == 1 else f"{title}: {what}", fontsize="medium")
    fig.tight_layout()
    fig.savefig(path)
    return path


def write_plots(rows, out_dir: str, *, title: Optional[str] = None) -> list:
    """Writes ``accuracy.png`` and ``loss.png`` into ``out_dir``; returns their paths."""
    return [plot(rows, os.path.join(out_dir, f"{k}.png"), kind=k, title=title) for k in ("accuracy", "loss")]


def write_outputs(rows, out_dir: str, *, title: str, note: str = "") -> str:
    """Writes ``results.csv``, ``summary.md`` and the plots; returns the summary table."""
    write_results(rows, os.path.join(out_dir, "results.csv"))
    table = summary_table(rows)
    text = f"# {title}\n\n" + (f"{note}\n\n" if note else "") + table
    _atomic_write(os.path.join(out_dir, "summary.md"), text)
    if rows:
        write_plots(rows, out_dir, title=title)
    return table


def pareto_rows(rows, *, what: str = "this sweep") -> list:
    """The final row of every integer circuit (a multiplier with circuit figures) among ``rows``.

    Raises:
      ValueError: there is none (the message names ``what``).
    """
    out = [rs[-1] for rs in _by_multiplier(rows).values() if rs[-1].get("mae_percent") is not None]
    if not out:
        raise ValueError(NO_CIRCUITS.format(what=what))
    return out


def write_pareto(rows, out_dir: str, *, title: Optional[str] = None, what: str = "this sweep") -> str:
    """Writes ``pareto.png`` into ``out_dir``: the final test accuracy of every integer circuit against
    its published power (mW), or its MAE% where the power is not known, with fp32's accuracy as a
    reference line (:func:`approxsim.plots.pareto_plot`). Returns its path.

    Raises:
      ValueError: ``rows`` hold no integer circuit.
    """
    from approxsim.plots import pareto_plot

    circuits = pareto_rows(rows, what=what)
    base = _by_multiplier(rows).get(BASELINE)
    return str(pareto_plot(circuits, os.path.join(out_dir, "pareto.png"), title=title or "",
                           baseline=None if not base else base[-1]["test_accuracy"]))


def _title(cfg: dict) -> str:
    return f"{cfg.get('model')} on {cfg.get('dataset')}"


def merge(folders, out: str, *, force: bool = False) -> str:
    """Combines the outputs of several sweeps (e.g. multiplier subsets run on different machines).

    Args:
      folders: sweep output folders (each with ``results.csv`` and ``sweep.json``).
      out: folder for the merged ``results.csv``, ``summary.md`` and plots (created).
      force: merge even when the sweeps' settings (model, dataset, seed, ...) differ.

    Returns:
      The merged summary table (Markdown).

    Raises:
      ValueError: fewer than one folder, settings that differ, or one multiplier in two folders
        with different results.
    """
    from approxsim.sweep.config import IDENTITY_KEYS

    folders = [os.fspath(f) for f in folders]
    if not folders:
        raise ValueError("merge needs at least one sweep output folder. Received: folders=[]")
    rows, first, sources = [], None, {}
    for folder in folders:
        cfg_path = os.path.join(folder, "sweep.json")
        cfg = {}
        if os.path.isfile(cfg_path):
            with open(cfg_path) as f:
                cfg = json.load(f)
        if first is None:
            first = (folder, cfg)
        elif not force:
            diff = [k for k in IDENTITY_KEYS if k in cfg and k in first[1] and cfg[k] != first[1][k]]
            if diff:
                raise ValueError(
                    f"{folder} and {first[0]} are sweeps with different settings ("
                    + ", ".join(f"{k}: {first[1][k]!r} vs {cfg[k]!r}" for k in diff)
                    + "); their curves are not comparable. Pass --force to merge them anyway.")
        for row in read_results(folder):
            name = row["multiplier"]
            if name in sources and sources[name] != folder:
                raise ValueError(f"Multiplier {name!r} is in both {sources[name]} and {folder}. "
                                 "Merge folders that hold different multipliers (or remove one run).")
            sources[name] = folder
            rows.append(row)
    os.makedirs(out, exist_ok=True)
    cfg = dict(first[1])
    cfg["merged_from"] = folders
    cfg["multipliers"] = list(dict.fromkeys(r["multiplier"] for r in rows))
    _atomic_write(os.path.join(out, "sweep.json"), json.dumps(cfg, indent=2) + "\n")
    return write_outputs(rows, out, title=_title(cfg), note=f"Merged from: {', '.join(folders)}.")

