"""approxsim sweep / merge / demo, the sweep models and the sweep files.

The MNIST test uses the shared 10,000 real test digits (../shared/data/mnist) with the fixed
split the mnist loader applies to a folder that holds only the t10k files: the first 8,000
digits train, the last 2,000 test.
"""

import csv
import json
import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from approxsim import multipliers  # noqa: E402
from approxsim.cli import main  # noqa: E402
from approxsim.multiplier import Multiplier  # noqa: E402
from approxsim.sweep import build_model, read_results  # noqa: E402
from approxsim.sweep.report import COLUMNS  # noqa: E402

TINY = ["--model", "smallcnn", "--dataset", "digits", "--limit-train", "96", "--limit-test", "64",
        "--batch-size", "32", "--lr", "0.01", "--quiet"]
USER = "user:mbm3-copy"  # a user-registered multiplier whose name is no folder name


@pytest.fixture(scope="module", autouse=True)
def user_multiplier():
    mult = Multiplier(USER, 3, table=multipliers.get("mbm3").table, description="test copy of mbm3")
    multipliers.register(mult, overwrite=True)
    yield mult
    multipliers.unregister(USER)


def _png(path):
    with open(path, "rb") as f:
        return f.read(8) == b"\x89PNG\r\n\x1a\n"


def _rows(out):
    return {(r["multiplier"], r["epoch"]): r for r in read_results(str(out))}


@pytest.fixture(scope="module")
def tiny_sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep") / "both"
    assert main(["sweep", *TINY, "--multipliers", f"fp32,{USER}", "--epochs", "2", "--out", str(out)]) == 0
    return out


def test_outputs(tiny_sweep):
    out = tiny_sweep
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == COLUMNS
    assert [(r["multiplier"], r["epoch"]) for r in rows] == [("fp32", "1"), ("fp32", "2"), (USER, "1"), (USER, "2")]
    for r in rows:
        assert 0 <= float(r["test_accuracy"]) <= 1 and float(r["seconds"]) > 0
    summary = (out / "summary.md").read_text()
    assert "| fp32 | 2 |" in summary and f"| {USER} | 2 |" in summary and "vs fp32" in summary
    assert _png(out / "accuracy.png") and _png(out / "loss.png")
    assert (out / "initial.weights.h5").is_file()
    for name in ("fp32", "user_mbm3-copy"):
        run = out / "runs" / name
        hist = json.loads((run / "history.json").read_text())
        assert {"loss", "accuracy", "val_loss", "val_accuracy", "seconds"} <= set(hist)
        assert len(hist["val_accuracy"]) == 2
        assert (run / "weights.weights.h5").is_file()
    cfg = json.loads((out / "sweep.json").read_text())
    assert cfg["multipliers"] == ["fp32", USER] and cfg["model"] == "smallcnn"


def test_runs_are_independent_and_merge(tiny_sweep, tmp_path, capsys):
    """A multiplier run alone gives what it gave in a sweep with others (same start, data, seed);
    merging the single-multiplier sweeps gives the two-multiplier table."""
    alone = tmp_path / "user"  # as on another machine, given the first one's initial weights
    assert main(["sweep", *TINY, "--multipliers", USER, "--epochs", "2", "--out", str(alone),
                 "--initial-weights", str(tiny_sweep / "initial.weights.h5")]) == 0
    both = _rows(tiny_sweep)
    for key, row in _rows(alone).items():
        for col in ("train_loss", "test_loss", "test_accuracy"):
            assert row[col] == pytest.approx(both[key][col], rel=1e-4, abs=1e-6), (key, col)
    fp32 = tmp_path / "fp32"
    assert main(["sweep", *TINY, "--multipliers", "fp32", "--epochs", "2", "--out", str(fp32)]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", str(fp32), str(alone), "--out", str(merged)]) == 0
    rows = _rows(merged)
    assert sorted(rows) == sorted(both)
    assert _png(merged / "accuracy.png") and "| fp32 |" in (merged / "summary.md").read_text()
    capsys.readouterr()
    assert main(["merge", str(fp32), str(tiny_sweep), "--out", str(tmp_path / "m2")]) == 2
    assert "in both" in capsys.readouterr().err
    other = tmp_path / "other-seed"
    assert main(["sweep", *TINY, "--multipliers", "bf16", "--epochs", "1", "--seed", "1", "--out", str(other)]) == 0
    assert main(["merge", str(fp32), str(other), "--out", str(tmp_path / "m3")]) == 2
    assert "different settings" in capsys.readouterr().err


def test_resume_continues_unfinished_and_skips_finished(tiny_sweep, tmp_path, capsys):
    out = tmp_path / "resumed"
    base = ["sweep", *TINY, "--multipliers", "fp32", "--out", str(out)]
    assert main([*base, "--epochs", "1"]) == 0
    assert main([*base, "--epochs", "1"]) == 2  # the folder holds a sweep: --resume needed
    assert "--resume" in capsys.readouterr().err
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    resumed, fresh = _rows(out), _rows(tiny_sweep)
    for epoch in (1, 2):  # continuing from epoch 1 equals training 2 epochs at once
        for col in ("train_loss", "test_loss", "test_accuracy"):
            assert resumed["fp32", epoch][col] == pytest.approx(fresh["fp32", epoch][col], rel=1e-4, abs=1e-6)
    weights = out / "runs" / "fp32" / "weights.weights.h5"
    stamp = weights.stat().st_mtime_ns
    capsys.readouterr()
    assert main([*base, "--epochs", "2", "--resume"]) == 0
    assert weights.stat().st_mtime_ns == stamp
    assert main([*base, "--epochs", "2", "--resume", "--batch-size", "16"]) == 2
    assert "other settings" in capsys.readouterr().err


def test_sweep_file_yaml_json_and_overrides(tmp_path):
    yaml = pytest.importorskip("yaml")
    spec = {"model": "lenet300100", "dataset": "digits", "multipliers": ["fp32"], "epochs": 1,
            "batch-size": 64, "limit_train": 64, "limit_test": 32, "verbose": 0, "out": str(tmp_path / "a")}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "s.json").write_text(json.dumps(spec))
    assert main(["sweep", "--config", str(tmp_path / "s.yaml")]) == 0
    assert set(_rows(tmp_path / "a")) == {("fp32", 1)}
    assert main(["sweep", "--config", str(tmp_path / "s.json"), "--out", str(tmp_path / "b"), "--epochs", "2"]) == 0
    assert set(_rows(tmp_path / "b")) == {("fp32", 1), ("fp32", 2)}
    assert json.loads((tmp_path / "b" / "sweep.json").read_text())["batch_size"] == 64
    (tmp_path / "bad.json").write_text(json.dumps({**spec, "colour": "red"}))
    assert main(["sweep", "--config", str(tmp_path / "bad.json")]) == 2


def test_user_errors_are_one_line(tmp_path, capsys):
    cases = [
        (["--multipliers", "nosuch7"], "nosuch7"),
        (["--multipliers", "fp32", "--model", "vgg16"], "Unknown model"),
        (["--multipliers", "fp32", "--dataset", "mnist", "--data-dir", str(tmp_path)], "t10k-images-idx3-ubyte"),
        (["--multipliers", "fp32", "--strategy", "multiworker"], "TF_CONFIG"),
        (["--multipliers", "fp32", "--strategy", "multiworker", "--resume"], "not supported"),
    ]
    for extra, needle in cases:
        argv = ["sweep", "--model", "smallcnn", "--dataset", "digits", "--epochs", "1", "--quiet",
                "--out", str(tmp_path / "e"), *extra]
        capsys.readouterr()
        assert main(argv) == 2, extra
        err = capsys.readouterr().err.strip()
        assert needle in err and "Traceback" not in err and len(err.splitlines()) == 1, err
    capsys.readouterr()
    assert main(["sweep", "--model", "smallcnn"]) == 2
    assert "lacks" in capsys.readouterr().err


@pytest.mark.parametrize("name, shape, classes, params", [
    ("lenet300100", (28, 28, 1), 10, 266_610),
    ("lenet5", (28, 28, 1), 10, 61_706),
    ("lenet5", (8, 8, 1), 10, None),
    ("resnet20", (32, 32, 3), 10, None),
    ("resnet18", (32, 32, 3), 10, None),
    ("resnet50", (224, 224, 3), 1000, None),
])
def test_models(name, shape, classes, params):
    model = build_model(name, shape, classes, multiplier="mbm7", backward="exact")
    assert model.output_shape == (None, classes)
    if params is not None:
        assert model.count_params() == params
    am = [layer for layer in model.layers if hasattr(layer, "multiplier")]
    assert am and all(layer.multiplier.name == "mbm7" and layer.backward == "exact" for layer in am)
    if name == "resnet20":  # 0.27M weights in the convolutions, plus 1x1 projection shortcuts
        assert 270_000 < model.count_params() < 290_000
    if name == "resnet18":
        assert 11_000_000 < model.count_params() < 11_300_000
    if name == "resnet50":
        assert 25_500_000 < model.count_params() < 25_700_000
        assert len([layer for layer in am if type(layer).__name__ == "AMConv2D"]) == 53


def test_model_errors():
    with pytest.raises(ValueError, match="Unknown model"):
        build_model("alexnet", (28, 28, 1), 10)
    with pytest.raises(ValueError, match="num_classes"):
        build_model("lenet5", (28, 28, 1), 1)


def test_resnet20_trains_on_synthetic_cifar(tmp_path):
    import pickle

    rng = np.random.default_rng(0)
    d = tmp_path / "cifar"
    d.mkdir()
    for name, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 8)]:
        with open(d / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": list(rng.integers(0, 10, n))}, f)
    out = tmp_path / "out"
    assert main(["sweep", "--model", "resnet20", "--dataset", "cifar10", "--data-dir", str(d), "--multipliers",
                 "fp32", "--epochs", "1", "--batch-size", "10", "--optimizer", "momentum", "--quiet",
                 "--out", str(out)]) == 0
    assert set(_rows(out)) == {("fp32", 1)}


def test_demo_quick(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--epochs", "1", "--multipliers", "fp32,mbm7", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| fp32 |" in out and "| mbm7 |" in out
    assert _png(tmp_path / "approxsim-demo.png") and (tmp_path / "approxsim-demo.csv").is_file()
    assert sorted(os.listdir(tmp_path)) == ["approxsim-demo.csv", "approxsim-demo.png"]


@pytest.mark.slow
def test_demo_full(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    rows = _rows(tmp_path / "approxsim-demo.csv")
    assert {m for m, _ in rows} == {"fp32", "bf16", "mbm7", "mitchell7", "int8", "mitchell8u"}  # README
    assert _png(tmp_path / "approxsim-demo.png")
    last = max(e for _, e in rows)
    assert rows["fp32", last]["test_accuracy"] > 0.9
    assert rows["int8", last]["test_accuracy"] > 0.9  # exact 8-bit quantization-aware training


_MNIST = {}


@pytest.fixture
def mnist_sweep(shared_dir, tmp_path_factory):
    """One epoch of LeNet-5 with fp32 and mbm7 on the shared MNIST (run once)."""
    if not _MNIST:
        out = tmp_path_factory.mktemp("mnist") / "lenet5"
        argv = ["sweep", "--model", "lenet5", "--dataset", "mnist", "--data-dir",
                os.path.join(shared_dir, "data", "mnist"), "--multipliers", "fp32,mbm7", "--epochs", "1", "--quiet",
                "--out", str(out)]
        assert main(argv) == 0
        _MNIST.update(out=out, argv=argv)
    return _MNIST["out"], list(_MNIST["argv"])


@pytest.mark.slow
def test_mnist_lenet5_one_epoch(mnist_sweep):
    out, _ = mnist_sweep
    rows = _rows(out)
    assert set(rows) == {("fp32", 1), ("mbm7", 1)}
    assert rows["fp32", 1]["test_accuracy"] >= 0.95
    assert rows["mbm7", 1]["test_accuracy"] >= 0.90
    assert _png(out / "accuracy.png") and _png(out / "loss.png")
    assert "first 8,000 train, last 2,000 test" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_mnist_resume_skips_finished_runs(mnist_sweep, capsys):
    out, argv = mnist_sweep
    stamps = {p: p.stat().st_mtime_ns for p in (out / "runs").glob("*/weights.weights.h5")}
    before = (out / "results.csv").read_text()
    argv = [a for a in argv if a != "--quiet"]
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 0
    text = capsys.readouterr().out
    assert "fp32: finished (1 epochs), skipped" in text and "mbm7: finished (1 epochs), skipped" in text
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert (out / "results.csv").read_text() == before


def test_results_of_older_sweeps_read_without_circuit_columns(tmp_path):
    """A results.csv from before the circuit columns reads with them empty, and summarises as before."""
    from approxsim.sweep.report import RUN_COLUMNS, summary_table

    (tmp_path / "results.csv").write_text(",".join(RUN_COLUMNS) + "\nfp32,1,0.5,0.8,0.6,0.75,1.5\n")
    (row,) = read_results(str(tmp_path))
    assert row["test_accuracy"] == 0.75 and row["mae_percent"] is None and row["power_mw"] is None
    table = summary_table([row])
    assert "| fp32 | 1 | 75.00% |" in table and "MAE%" not in table


def test_sweep_config_mode_and_pareto_options(tmp_path):
    from approxsim.sweep import SweepConfig

    base = {"model": "smallcnn", "dataset": "digits", "multipliers": "fp32,int8", "epochs": 1, "out": str(tmp_path)}
    cfg = SweepConfig(**base, mode="PTQ")
    assert (cfg.mode, cfg.calibration_examples, cfg.plot_pareto) == ("ptq", 256, False)
    assert SweepConfig(**base).mode == "qat" and "mode" in cfg.identity()
    for bad, needle in [({"mode": "fast"}, "Unknown mode"), ({"calibration_examples": 0}, "calibration_examples"),
                        ({"plot_pareto": "yes"}, "plot_pareto")]:
        with pytest.raises(ValueError, match=needle):
            SweepConfig(**base, **bad)
