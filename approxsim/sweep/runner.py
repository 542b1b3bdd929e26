"""Running a sweep: one training run per multiplier, all from the same start (``--mode qat``), or
one fp32 training run that every multiplier is then evaluated on (``--mode ptq``, see
:mod:`approxsim.sweep.ptq`).

Output folder layout (``out``)::

    sweep.json            the settings (checked on --resume and by merge)
    initial.weights.h5    the initial weights every run starts from
    results.csv           multiplier, epoch, train_loss, train_accuracy, test_loss, test_accuracy, seconds,
                          and for integer circuits mae_percent, wce_percent, power_mw, area_um2
                          (approxsim.sweep.circuits)
    summary.md            a Markdown table of the final numbers
    accuracy.png          test accuracy against epoch, one line per multiplier
    loss.png              test (solid) and train (dashed) loss against epoch
    pareto.png            with --plot-pareto: test accuracy against circuit power (or MAE%)
    runs/<multiplier>/    history.json (the Keras history), weights.weights.h5 (after the last
                          completed epoch), optimizer.npz (its state, for --resume), state.json

``train_loss``/``train_accuracy`` are Keras's averages over the epoch's batches;
``test_*`` are measured on the whole test set after the epoch; ``seconds`` is the
epoch's wall time (training and evaluation).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import tempfile
import time

import numpy as np

from approxsim.lut import atomic_write_bytes
from approxsim.sweep.config import SweepConfig
from approxsim.sweep.report import _atomic_write, write_outputs

__all__ = ["run", "run_config", "run_dir_name"]


def run_dir_name(multiplier: str) -> str:
    """A folder name for a multiplier name (characters other than ``A-Za-z0-9._-`` become ``_``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", multiplier)


def _print(cfg, *args):
    if cfg.verbose:
        print(*args, flush=True)


def _make_optimizer(cfg: SweepConfig):
    import keras

    wd = cfg.weight_decay or None
    if cfg.optimizer == "adam":
        return keras.optimizers.Adam(cfg.lr, weight_decay=wd)
    if cfg.optimizer == "adamw":
        return keras.optimizers.AdamW(cfg.lr, weight_decay=cfg.weight_decay or 0.004)
    if cfg.optimizer == "sgd":
        return keras.optimizers.SGD(cfg.lr, weight_decay=wd)
    if cfg.optimizer == "momentum":
        return keras.optimizers.SGD(cfg.lr, momentum=0.9, weight_decay=wd)
    return keras.optimizers.RMSprop(cfg.lr, weight_decay=wd)


def _save_optimizer(optimizer, path: str) -> None:
    arrays = {f"v{i}": np.asarray(v.numpy()) for i, v in enumerate(optimizer.variables)}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def _load_optimizer(optimizer, model, path: str) -> None:
    optimizer.build(model.trainable_variables)
    with np.load(path) as f:
        arrays = [f[f"v{i}"] for i in range(len(f.files))]
    if len(arrays) != len(optimizer.variables):
        raise ValueError(f"{path} holds {len(arrays)} optimizer variables, the optimizer has "
                         f"{len(optimizer.variables)}. Delete that run's folder to restart it.")
    for var, value in zip(optimizer.variables, arrays):
        var.assign(value)


def _read_json(path, default):
    if not os.path.isfile(path):
        return default
    with open(path) as f:
        return json.load(f)


def _check_out(cfg: SweepConfig, names, *, create: bool = True) -> dict:
    """Checks (and with ``create``, creates) the output folder; returns the recorded sweep.json (or {})."""
    path = os.path.join(cfg.out, "sweep.json")
    old = _read_json(path, {})
    runs = os.path.join(cfg.out, "runs")
    if old and not cfg.resume and os.path.isdir(runs) and os.listdir(runs):
        raise ValueError(f"{cfg.out} already holds a sweep. Pass --resume to continue it, or choose another "
                         f"--out. Received: out={cfg.out!r}")
    if old and cfg.resume:
        diff = {k: (old.get(k), v) for k, v in cfg.identity().items() if k in old and old[k] != v}
        if diff:
            raise ValueError(f"--resume: {cfg.out} holds a sweep with other settings ("
                             + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
                             + "). Use the same settings, or another --out.")
    if create:
        os.makedirs(runs, exist_ok=True)
    return old


def _validate(cfg: SweepConfig) -> None:
    """Everything that can be checked before any file is written or any data is read."""
    from approxsim.sweep.datasets import DATASETS
    from approxsim.sweep.models import MODELS

    if cfg.model not in MODELS:
        raise ValueError(f"Unknown model {cfg.model!r}. Choose one of: {', '.join(MODELS)}. Received: model={cfg.model!r}")
    if str(cfg.dataset).lower() not in DATASETS:
        raise ValueError(f"Unknown dataset {cfg.dataset!r}. Choose one of: {', '.join(DATASETS)}. "
                         f"Received: dataset={cfg.dataset!r}")
    if cfg.data_dir is not None and not os.path.isdir(os.path.expanduser(os.fspath(cfg.data_dir))):
        raise FileNotFoundError(f"The data folder does not exist. Pass an existing folder as --data-dir. "
                                f"Received: data_dir={cfg.data_dir!r}")
    if cfg.initial_weights and not os.path.isfile(cfg.initial_weights):
        raise FileNotFoundError("Initial weights file not found; pass an existing .weights.h5 file. "
                                f"Received: initial_weights={cfg.initial_weights!r}")
    if os.path.exists(cfg.out) and not os.path.isdir(cfg.out):
        raise NotADirectoryError(f"--out names a file, not a folder. Received: out={cfg.out!r}")


def _initial_weights(cfg, ds, strategy, path):
    import keras

    from approxsim.sweep.models import build_model

    if cfg.initial_weights:
        if not os.path.isfile(cfg.initial_weights):
            raise FileNotFoundError("Initial weights file not found; pass an existing .weights.h5 file. "
                                    f"Received: initial_weights={cfg.initial_weights!r}")
        if os.path.abspath(cfg.initial_weights) != os.path.abspath(path):
            shutil.copyfile(cfg.initial_weights, path)
        return
    if os.path.isfile(path):
        return
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = build_model(cfg.model, ds.input_shape, ds.num_classes, multiplier="fp32", backward=cfg.backward,
                            backend=cfg.backend)
    model.save_weights(path)


def _one_epoch_callback():
    """A Keras callback that ends ``fit`` after the current epoch."""
    import keras

    class OneEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            self.model.stop_training = True

    return OneEpoch()


def _train_one(cfg, ds, strategy, name, out, initial_path):
    """Trains (or continues) the run of one multiplier; returns its result rows."""
    import keras

    from approxsim.sweep.models import build_model
    from approxsim.sweep.ptq import load_float_weights

    run_dir = os.path.join(out, "runs", run_dir_name(name))
    os.makedirs(run_dir, exist_ok=True)
    state_path = os.path.join(run_dir, "state.json")
    state = _read_json(state_path, {"multiplier": name, "completed_epochs": 0, "rows": [], "history": {}})
    done = int(state["completed_epochs"])
    if done >= cfg.epochs:
        _print(cfg, f"{name}: finished ({done} epochs), skipped")
        return state["rows"][:cfg.epochs]
    keras.utils.set_random_seed(cfg.seed)
    with strategy.scope():
        model = build_model(cfg.model, ds.input_shape, ds.num_classes, multiplier=name, backward=cfg.backward,
                            backend=cfg.backend)
        weights = os.path.join(run_dir, "weights.weights.h5")
        if done:  # before compile: no optimizer in the file
            model.load_weights(weights)
        else:  # the initial weights are the fp32 model's; integer layers add activation ranges
            load_float_weights(model, initial_path, lambda: build_model(
                cfg.model, ds.input_shape, ds.num_classes, multiplier="fp32", backend=cfg.backend))
        optimizer = _make_optimizer(cfg)
        model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        if done:
            _load_optimizer(optimizer, model, os.path.join(run_dir, "optimizer.npz"))
            _print(cfg, f"{name}: resuming after epoch {done}")
    test = ds.test(cfg.batch_size)
    rows, history = list(state["rows"]), dict(state["history"])
    for epoch in range(done, cfg.epochs):
        keras.utils.set_random_seed(cfg.seed + epoch)
        start = time.perf_counter()
        train = ds.train(cfg.batch_size, seed=cfg.seed, epoch=epoch)
        if cfg.strategy == "multiworker":  # Keras 3's fit fails with several workers: our own loop
            from approxsim.sweep import distributed

            logs = {**distributed.train_epoch(model, optimizer, strategy, train, cfg.batch_size),
                    **distributed.evaluate(model, test)}
            _print(cfg, f"{name}: epoch {epoch + 1}/{cfg.epochs}: " + ", ".join(f"{k} {v:.4f}" for k, v in logs.items()))
        else:
            # epochs=cfg.epochs so that Keras prints "Epoch e/E"; the callback stops after this one.
            h = model.fit(train, epochs=cfg.epochs, initial_epoch=epoch, validation_data=test, shuffle=False,
                          verbose=cfg.verbose, callbacks=[_one_epoch_callback()])
            logs = {k: float(v[-1]) for k, v in h.history.items()}
        seconds = time.perf_counter() - start
        for k, v in logs.items():
            history.setdefault(k, []).append(v)
        history.setdefault("seconds", []).append(seconds)
        rows.append({"multiplier": name, "epoch": epoch + 1, "train_loss": logs["loss"],
                     "train_accuracy": logs["accuracy"], "test_loss": logs["val_loss"],
                     "test_accuracy": logs["val_accuracy"], "seconds": seconds})
        model.save_weights(weights)
        _save_optimizer(optimizer, os.path.join(run_dir, "optimizer.npz"))
        state.update(completed_epochs=epoch + 1, rows=rows, history=history)
        _atomic_write(os.path.join(run_dir, "history.json"), json.dumps(history, indent=1) + "\n")
        _atomic_write(state_path, json.dumps(state, indent=1) + "\n")
    return rows


def run_config(cfg: SweepConfig) -> dict:
    """Runs the sweep described by ``cfg``; see :func:`run`."""
    import keras

    from approxsim import multipliers
    from approxsim.sweep import circuits, distributed, ptq
    from approxsim.sweep.datasets import load_dataset
    from approxsim.sweep.report import NO_CIRCUITS, write_pareto

    jobs = ptq.plan(cfg.mode, list(dict.fromkeys(multipliers.get(m).name for m in cfg.multipliers)))
    names = [name for name, _ in jobs]
    folders = {}
    for name in names:
        other = folders.setdefault(run_dir_name(name), name)
        if other != name:
            raise ValueError(f"Multipliers {other!r} and {name!r} would share the run folder "
                             f"runs/{run_dir_name(name)}; run them in separate sweeps (--out) and merge them.")
    if cfg.resume and cfg.strategy == "multiworker":
        raise ValueError("--resume is not supported with --strategy multiworker (only the chief keeps the "
                         "runs' state). Resume with --strategy none or mirrored, or start a new --out.")
    try:  # fail before training, not after it
        import matplotlib  # noqa: F401
    except ImportError:
        from approxsim.errors import ApproxsimError

        raise ApproxsimError("approxsim sweep draws its plots with matplotlib, which is not installed. "
                             "Install it: pip install matplotlib") from None
    _validate(cfg)
    strategy, chief = distributed.strategy_for(cfg)
    out = cfg.out if chief else tempfile.mkdtemp(prefix="approxsim-worker-")
    old = _check_out(cfg, names, create=False) if chief else {}  # nothing written before the data has loaded
    all_names = list(dict.fromkeys([*names, *old.get("multipliers", [])]))
    if cfg.plot_pareto and not circuits.integer_names(all_names):
        raise ValueError(NO_CIRCUITS.format(what=f"this sweep ({', '.join(all_names)})"))
    ds = load_dataset(cfg.dataset, cfg.data_dir, limit_train=cfg.limit_train, limit_test=cfg.limit_test,
                      **cfg.dataset_options)
    if chief:
        _check_out(cfg, names)
    else:
        os.makedirs(os.path.join(out, "runs"))
    _print(cfg, f"Data: {ds.note}")
    if cfg.strategy != "none":
        n = strategy.num_replicas_in_sync
        _print(cfg, f"Strategy: {cfg.strategy} ({type(strategy).__name__}), {n} replica{'' if n == 1 else 's'}")
    record = {**cfg.to_dict(), "multipliers": all_names, "data": ds.note, "keras": keras.__version__}
    record.pop("resume", None)
    record.pop("verbose", None)
    record.pop("plot_pareto", None)
    if chief:
        _atomic_write(os.path.join(out, "sweep.json"), json.dumps(record, indent=2) + "\n")
    initial = os.path.join(out, "initial.weights.h5")
    _initial_weights(cfg, ds, strategy, initial)
    title = f"{cfg.model} on {cfg.dataset}" + (", post-training quantization" if cfg.mode == "ptq" else "")
    results = {}
    post = ptq.PostTraining(cfg, ds, out)
    for i, (name, how) in enumerate(jobs):
        if how == "ptq" and not chief:  # evaluations without collectives: the chief's alone count
            continue
        _print(cfg, f"[{i + 1}/{len(jobs)}] {title}, multiplier {name}" + (" (evaluated)" if how == "ptq" else ""))
        results[name] = _train_one(cfg, ds, strategy, name, out, initial) if how == "train" else post.evaluate(name)
        if chief:  # partial results stay visible while the sweep runs
            write_outputs(_collect(out, all_names, results), out, title=title, note=ds.note)
    rows = _collect(out, all_names, results)
    table = write_outputs(rows, out, title=title, note=ds.note) if chief else ""
    if chief and cfg.plot_pareto:
        write_pareto(rows, out, title=title)
    if not chief:
        shutil.rmtree(out, ignore_errors=True)
    return {"rows": rows, "table": table, "out": out}


def _collect(out, all_names, results):
    """The rows of every run (this invocation's, and earlier ones' from their state), with the
    circuits' figures."""
    from approxsim.sweep.circuits import with_figures

    rows = []
    for name in all_names:
        if name in results:
            rows += results[name]
        else:  # a run of an earlier invocation of this sweep
            rows += _read_json(os.path.join(out, "runs", run_dir_name(name), "state.json"), {}).get("rows", [])
    return with_figures(rows)


def run(*, model: str, dataset: str, multipliers, epochs: int, out: str, **options) -> dict:
    """Trains ``model`` on ``dataset`` once per multiplier and writes the comparison.

    Every run starts from the same initial weights (built once from ``seed``), sees the
    training data in the same order and uses the same seed. Each epoch is evaluated on
    the test set. The output folder is described in the module docstring.

    Args:
      model: a name of :data:`approxsim.sweep.MODELS`.
      dataset: a name of :data:`approxsim.sweep.DATASETS`.
      multipliers: names (any registered multiplier, built-in or user, float or integer) or a
        comma-separated string.
      epochs: epochs per run (``mode="ptq"``: of the fp32 run).
      out: output folder.
      **options: the other fields of :class:`~approxsim.sweep.SweepConfig` (``batch_size=32``,
        ``lr`` (1e-3 for Adam, 0.1 for SGD), ``optimizer="adam"``, ``weight_decay``, ``seed=0``,
        ``backward="approx"``, ``backend``, ``data_dir``, ``limit_train``, ``limit_test``,
        ``resume=False``, ``strategy="none"``, ``verbose=1``, ``initial_weights``, ``dataset_options``,
        ``mode="qat"`` or ``"ptq"``, ``calibration_examples=256`` (PTQ), ``plot_pareto=False``).

    Returns:
      ``{"rows": [...], "table": markdown, "out": folder}``.

    Raises:
      ValueError: bad settings; ``out`` holds another sweep (pass ``resume=True`` or another folder).
      approxsim.UnknownMultiplierError: a multiplier name is not registered.
      FileNotFoundError: the dataset's files are missing (the message says where to put them).
    """
    return run_config(SweepConfig(model=model, dataset=dataset, multipliers=multipliers, epochs=epochs, out=out,
                                  **options))

