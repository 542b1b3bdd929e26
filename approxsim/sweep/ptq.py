"""Sweep modes (``--mode``): quantization-aware training or post-training quantization.

- ``qat`` (the default): every multiplier trains its own run (:func:`approxsim.sweep.run`), an
  integer circuit with its quantized layers in the loop (straight-through gradients unless
  ``--backward exact``).
- ``ptq``: fp32 trains once (``runs/fp32``, a normal run, resumable); then every other multiplier
  is evaluated on those trained weights without training: an integer circuit after calibrating
  its activation ranges on the first ``calibration_examples`` training examples (in the order
  of epoch 0), a float multiplier as it is. ``runs/<multiplier>/state.json`` records the
  evaluation (``"mode": "ptq"``, the fp32 epochs it used); no weights are kept for it.

A PTQ circuit's row in ``results.csv`` has the epoch of the fp32 weights it used, the test loss
and accuracy, empty train columns (it was not trained) and in ``seconds`` the time of the
calibration and evaluation.

Why not :func:`approxsim.quantize` itself: the sweep's models are built from approxsim layers,
which :func:`approxsim.convert` (and so ``quantize``) leaves as they are; it swaps stock Keras
layers only. So a circuit's model is built by the same builder as in QAT, given the trained
fp32 weights (:func:`copy_float_weights`, as ``convert`` copies them) and calibrated with
:func:`approxsim.ptq.calibrate`, the calibration step of ``quantize``.
"""

from __future__ import annotations

import json
import os
import time

from approxsim.layers._base import stock_weights

__all__ = ["BASELINE", "plan", "copy_float_weights", "load_float_weights", "calibration_batches",
           "PostTraining"]

BASELINE = "fp32"  # the multiplier a PTQ sweep trains


def plan(mode: str, names) -> list:
    """The runs of a sweep in order, as ``(multiplier, "train" | "ptq")`` pairs.

    QAT trains every multiplier; PTQ trains fp32 first (added when ``names`` lacks it, since
    every circuit is evaluated on its weights) and evaluates the others.
    """
    if mode == "qat":
        return [(name, "train") for name in names]
    return [(BASELINE, "train")] + [(name, "ptq") for name in names if name != BASELINE]


def copy_float_weights(source, target) -> None:
    """Assigns the weights of ``source`` (a float model) to ``target``, the same network built with
    another multiplier, whose integer layers have activation-range variables besides (left as they
    are: uncalibrated).

    Raises:
      ValueError: the two models do not have the same weights (not the same network).
    """
    src, dst = stock_weights(source), stock_weights(target)
    if len(src) != len(dst) or any(tuple(a.shape) != tuple(b.shape) for a, b in zip(src, dst)):
        raise ValueError(f"Cannot give the weights of {source.name!r} ({len(src)} arrays) to {target.name!r} "
                         f"({len(dst)} arrays): they are not the same network.")
    for a, b in zip(src, dst):
        b.assign(a)


def load_float_weights(model, path: str, build_float) -> None:
    """Loads a ``.weights.h5`` file saved from the float model into ``model``.

    Keras refuses that file for a model with integer layers (their activation ranges are extra
    variables); then ``build_float()`` builds the float twin, which loads the file and gives its
    weights on (:func:`copy_float_weights`).
    """
    if len(stock_weights(model)) == len(model.weights):
        model.load_weights(path)
        return
    twin = build_float()
    twin.load_weights(path)
    copy_float_weights(twin, model)


def calibration_batches(ds, batch_size: int, count: int, *, seed: int) -> list:
    """The inputs of the first ``count`` training examples in the order of epoch 0, as NumPy batches."""
    batches, seen = [], 0
    for x, _ in ds.train(batch_size, seed=seed, epoch=0):
        x = x.numpy()[:count - seen]
        batches.append(x)
        seen += len(x)
        if seen >= count:
            break
    return batches


class PostTraining:
    """Evaluates multipliers on the trained fp32 run of a PTQ sweep in ``out`` (read once)."""

    def __init__(self, cfg, ds, out: str):
        self.cfg, self.ds, self.out = cfg, ds, out
        self._trained = None
        self._calibration = None

    def _build(self, multiplier):
        from approxsim.sweep.models import build_model

        cfg = self.cfg
        return build_model(cfg.model, self.ds.input_shape, self.ds.num_classes, multiplier=multiplier,
                           backward=cfg.backward, backend=cfg.backend)

    def _baseline_epochs(self) -> int:
        from approxsim.sweep.runner import _read_json, run_dir_name

        state = _read_json(os.path.join(self.out, "runs", run_dir_name(BASELINE), "state.json"), {})
        return int(state.get("completed_epochs", 0))

    def _trained_model(self):
        if self._trained is None:
            from approxsim.sweep.runner import run_dir_name

            path = os.path.join(self.out, "runs", run_dir_name(BASELINE), "weights.weights.h5")
            if not os.path.isfile(path):
                raise FileNotFoundError(f"The trained fp32 weights of this PTQ sweep are missing ({path}); "
                                        "rerun the sweep with --resume to train them again.")
            self._trained = self._build(BASELINE)
            self._trained.load_weights(path)
        return self._trained

    def evaluate(self, name: str) -> list:
        """The result row of ``name`` on the trained weights (read from its state when done before)."""
        import keras

        from approxsim import multipliers
        from approxsim.ptq import calibrate
        from approxsim.sweep.report import _atomic_write
        from approxsim.sweep.runner import _print, _read_json, run_dir_name

        cfg = self.cfg
        run_dir = os.path.join(self.out, "runs", run_dir_name(name))
        state_path = os.path.join(run_dir, "state.json")
        epochs = self._baseline_epochs()
        mult = multipliers.get(name)
        calibration = cfg.calibration_examples if mult.is_integer else 0
        key = {"multiplier": name, "mode": "ptq", "trained_from": BASELINE, "fp32_epochs": epochs,
               "calibration_examples": calibration}
        state = _read_json(state_path, {})
        if state.get("rows") and all(state.get(k) == v for k, v in key.items()):
            _print(cfg, f"{name}: evaluated on the fp32 weights of epoch {epochs} before, skipped")
            return state["rows"]
        os.makedirs(run_dir, exist_ok=True)
        keras.utils.set_random_seed(cfg.seed)
        start = time.perf_counter()
        model = self._build(mult)
        copy_float_weights(self._trained_model(), model)
        if mult.is_integer:
            if self._calibration is None:
                self._calibration = calibration_batches(self.ds, cfg.batch_size, cfg.calibration_examples,
                                                        seed=cfg.seed)
            calibrate(model, self._calibration)
        model.compile(loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        logs = model.evaluate(self.ds.test(cfg.batch_size), verbose=0, return_dict=True)
        seconds = time.perf_counter() - start
        rows = [{"multiplier": name, "epoch": epochs, "train_loss": None, "train_accuracy": None,
                 "test_loss": float(logs["loss"]), "test_accuracy": float(logs["accuracy"]), "seconds": seconds}]
        _print(cfg, f"{name}: post-training, test accuracy {rows[0]['test_accuracy']:.4f}, "
                    f"test loss {rows[0]['test_loss']:.4f} ({seconds:.1f} s)")
        _atomic_write(state_path, json.dumps({**key, "rows": rows}, indent=1) + "\n")
        return rows
