"""approxsim sweep with integer circuits: QAT and PTQ modes, circuit figures, the Pareto plot.

Tiny runs (a small CNN on 96 of scikit-learn's 8x8 digits, one epoch) in the session's isolated
cache (tests/conftest.py sets APPROXSIM_CACHE). The EvoApproxLib circuit is registered under a
name of its own and unregistered afterwards.
"""

import json
import os
import re

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from approxsim import multipliers  # noqa: E402
from approxsim.cli import main  # noqa: E402
from approxsim.int_metrics import error_metrics, published_figures  # noqa: E402
from approxsim.sweep import build_model, read_results  # noqa: E402
from approxsim.sweep.ptq import load_float_weights  # noqa: E402
from approxsim.sweep.report import COLUMNS, write_results  # noqa: E402

TINY = ["--model", "smallcnn", "--dataset", "digits", "--limit-train", "96", "--limit-test", "64",
        "--batch-size", "32", "--lr", "0.01", "--epochs", "1", "--quiet"]
EVO_FILE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "reference", "evoapprox", "mul8u_2AC.c")
EVO = "sweep-mul8u_2AC"
APPROX = "bam8u_v4"


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _final(out):
    """The last row of every multiplier in a sweep folder's results.csv."""
    rows = {}
    for r in read_results(str(out)):
        rows[r["multiplier"]] = r
    return rows


def _header_figure(path, key):
    """A figure of an EvoApproxLib header, read here with a regex of its own."""
    with open(path) as f:
        match = re.search(rf"^//\s*{re.escape(key)}\s*=\s*([0-9.]+)", f.read(), re.M)
    return float(match.group(1))


@pytest.fixture(scope="module")
def evo():
    """mul8u_2AC registered (skipped where the shared EvoApproxLib files are absent)."""
    if not os.path.isfile(EVO_FILE):
        pytest.skip("../shared/reference/evoapprox/mul8u_2AC.c is not beside this checkout")
    mult = multipliers.register_c(EVO_FILE, function="mul8u_2AC", bits=8, signed=False, name=EVO, replace=True)
    yield mult
    multipliers.unregister(EVO)


@pytest.fixture(scope="module")
def qat_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("qat") / "out"
    assert main(["sweep", *TINY, "--multipliers", f"fp32,int8,{APPROX}", "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def ptq_sweep(tmp_path_factory, evo):
    out = tmp_path_factory.mktemp("ptq") / "out"
    assert main(["sweep", *TINY, "--mode", "ptq", "--calibration-examples", "64", "--plot-pareto",
                 "--multipliers", f"int8,{APPROX},mbm7,{EVO}", "--out", str(out)]) == 0
    return out


def _check_figures(rows):
    """MAE%/WCE% of each integer circuit equal int_metrics' own figures; empty for float multipliers."""
    assert rows["int8"]["mae_percent"] == 0 and rows["int8"]["wce_percent"] == 0  # exact
    for name, row in rows.items():
        mult = multipliers.get(name)
        if not mult.is_integer:
            assert all(row[k] is None for k in ("mae_percent", "wce_percent", "power_mw", "area_um2")), name
            continue
        m = error_metrics(mult.table, mult.bits, mult.signed)
        assert row["mae_percent"] == pytest.approx(m["MAE%"], rel=1e-5, abs=1e-12), name
        assert row["wce_percent"] == pytest.approx(m["WCE%"], rel=1e-5, abs=1e-12), name
    assert rows[APPROX]["mae_percent"] > 0


def test_qat_rows_carry_accuracy_and_circuit_figures(qat_sweep):
    with open(qat_sweep / "results.csv") as f:
        assert tuple(f.readline().strip().split(",")) == COLUMNS
    rows = _final(qat_sweep)
    assert list(rows) == ["fp32", "int8", APPROX]
    for row in rows.values():  # every multiplier trained (QAT)
        assert 0 <= row["test_accuracy"] <= 1 and row["train_loss"] is not None and row["epoch"] == 1
    _check_figures(rows)
    assert rows[APPROX]["power_mw"] is None and rows[APPROX]["area_um2"] is None  # a built-in: not published
    for name in ("fp32", "int8", APPROX):
        assert (qat_sweep / "runs" / name / "weights.weights.h5").is_file()
    summary = (qat_sweep / "summary.md").read_text()
    assert "MAE%" in summary and "power (mW)" in summary and "| int8 | 1 |" in summary
    assert json.loads((qat_sweep / "sweep.json").read_text())["mode"] == "qat"


def test_qat_circuit_starts_from_the_fp32_initial_weights(tmp_path):
    """An integer model (with activation-range variables) loads the fp32 initial weights file."""
    fp32 = build_model("smallcnn", (8, 8, 1), 10)
    path = str(tmp_path / "initial.weights.h5")
    fp32.save_weights(path)
    model = build_model("smallcnn", (8, 8, 1), 10, multiplier="int8")
    load_float_weights(model, path, lambda: build_model("smallcnn", (8, 8, 1), 10))
    stock = [v for v in model.weights if not v.name.startswith("am_")]
    assert len(stock) == len(fp32.weights) < len(model.weights)
    for a, b in zip(stock, fp32.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_ptq_trains_fp32_once_and_evaluates_each_circuit(ptq_sweep, capsys):
    rows = _final(ptq_sweep)
    assert list(rows) == ["fp32", "int8", APPROX, "mbm7", EVO]  # fp32 trained first, though not listed
    runs = ptq_sweep / "runs"
    assert sorted(p.name for p in runs.iterdir() if (p / "weights.weights.h5").is_file()) == ["fp32"]
    assert len(json.loads((runs / "fp32" / "history.json").read_text())["loss"]) == 1  # one epoch, once
    for name in ("int8", APPROX, "mbm7", "sweep-mul8u_2AC"):
        assert sorted(os.listdir(runs / name)) == ["state.json"], name
        state = json.loads((runs / name / "state.json").read_text())
        assert state["mode"] == "ptq" and state["fp32_epochs"] == 1
        assert state["calibration_examples"] == (0 if name == "mbm7" else 64)  # float: no calibration
        row = rows[name]
        assert row["train_loss"] is None and row["train_accuracy"] is None and row["epoch"] == 1
        assert 0 <= row["test_accuracy"] <= 1
    # The exact int8 circuit on the trained weights: the fp32 network up to 8-bit rounding.
    assert rows["int8"]["test_loss"] == pytest.approx(rows["fp32"]["test_loss"], rel=0.02)
    _check_figures(rows)
    assert "| int8 | 1 |" in (ptq_sweep / "summary.md").read_text()
    assert _png(ptq_sweep / "pareto.png")
    # --resume: nothing trains or is evaluated again.
    before = (ptq_sweep / "results.csv").read_text()
    argv = ["sweep", *[a for a in TINY if a != "--quiet"], "--mode", "ptq", "--calibration-examples", "64",
            "--multipliers", f"int8,{APPROX},mbm7,{EVO}", "--out", str(ptq_sweep), "--resume"]
    capsys.readouterr()
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "fp32: finished (1 epochs), skipped" in text and text.count("before, skipped") == 4
    assert (ptq_sweep / "results.csv").read_text() == before


def test_published_power_and_area_of_a_registered_evoapprox_file(ptq_sweep, evo):
    row = _final(ptq_sweep)[EVO]
    assert row["power_mw"] == _header_figure(EVO_FILE, "PDK45_PWR") == 0.311
    assert row["area_um2"] == _header_figure(EVO_FILE, "PDK45_AREA") == 508.3
    stated = published_figures(EVO_FILE)
    assert stated["MAE%"] == _header_figure(EVO_FILE, "MAE%") and stated["PDK45_DELAY"] == 1.39
    assert row["mae_percent"] == pytest.approx(stated["MAE%"], abs=5e-4)  # computed, near the published 0.037


def test_plot_pareto_on_an_existing_folder(qat_sweep, capsys):
    png = qat_sweep / "pareto.png"
    assert not png.exists()
    capsys.readouterr()
    assert main(["sweep", "--plot-pareto", "--out", str(qat_sweep)]) == 0
    assert _png(png) and "pareto.png" in capsys.readouterr().out
    assert not [p for p in os.listdir(qat_sweep) if p.endswith(".tmp")]  # saved atomically


def test_plot_pareto_without_integer_circuits_is_a_clear_error(tmp_path, capsys):
    out = tmp_path / "float"
    capsys.readouterr()
    assert main(["sweep", *TINY, "--multipliers", "fp32,mbm7", "--plot-pareto", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "integer circuits" in err and "fp32, mbm7" in err and len(err.splitlines()) == 1, err
    assert not out.exists()  # refused before any training
    out.mkdir()
    write_results([{"multiplier": "fp32", "epoch": 1, "train_loss": 1.0, "train_accuracy": 0.5, "test_loss": 1.0,
                    "test_accuracy": 0.5, "seconds": 1.0}], str(out / "results.csv"))
    assert main(["sweep", "--plot-pareto", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "integer circuits" in err and "results.csv" in err and len(err.splitlines()) == 1, err


def test_unknown_mode_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", *TINY, "--multipliers", "int8", "--mode", "fast", "--out", str(tmp_path / "a")])
    assert e.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err
    spec = {"model": "smallcnn", "dataset": "digits", "multipliers": ["int8"], "epochs": 1, "mode": "fast",
            "out": str(tmp_path / "b")}
    (tmp_path / "s.json").write_text(json.dumps(spec))
    assert main(["sweep", "--config", str(tmp_path / "s.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert "Unknown mode" in err and "'fast'" in err and len(err.splitlines()) == 1
