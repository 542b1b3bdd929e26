"""``approxsim sweep``, ``approxsim demo`` and ``approxsim merge``."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from approxsim.sweep.config import MODES, OPTIMIZERS, STRATEGIES

__all__ = ["add_parser", "sweep_command", "demo_command", "merge_command"]

DEMO_MULTIPLIERS = "fp32,bf16,mbm7,mitchell7,int8,mitchell8u"  # float and integer circuits
DEMO_EPOCHS = 5


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_parser(subparsers) -> None:
    """Adds the ``sweep``, ``demo`` and ``merge`` subcommands."""
    p = subparsers.add_parser(
        "sweep", help="train a network once per multiplier and compare the convergence",
        description="Train MODEL on DATASET once per multiplier, from the same initial weights, data order "
                    "and seed; evaluate on the test set each epoch; write results.csv, summary.md, "
                    "accuracy.png, loss.png and per run the Keras history and weights into --out. "
                    "Integer circuits train with their quantized layers (--mode qat), or are evaluated "
                    "on the fp32 run after calibration (--mode ptq); their MAE%, WCE% and published "
                    "power and area are in results.csv and summary.md. `approxsim sweep --plot-pareto "
                    "--out DIR` alone draws DIR/pareto.png from an existing sweep (or merge).")
    p.add_argument("--config", metavar="FILE", help="a YAML or JSON sweep file (options given here override it)")
    p.add_argument("--model", help="lenet300100, lenet5, resnet20, resnet18, resnet50 or smallcnn")
    p.add_argument("--dataset", help="mnist, cifar10, imagenet or digits")
    p.add_argument("--multipliers", help="comma-separated multiplier names, float or integer, e.g. "
                                         "fp32,bf16,mbm7,mitchell7 or fp32,int8,bam8u_v4,mul8u_2AC")
    p.add_argument("--mode", choices=MODES,
                   help="qat (default): train with each multiplier; ptq: train fp32 once, then quantize "
                        "(integer: calibrate) and evaluate each multiplier on its weights, without training")
    p.add_argument("--calibration-examples", type=_positive_int, metavar="N",
                   help="ptq: calibrate integer circuits on the first N training examples (default 256)")
    p.add_argument("--plot-pareto", action="store_true", default=None,
                   help="also write pareto.png: test accuracy of each integer circuit against its published "
                        "power (mW), or its MAE%% where the power is not known; with only --out, draw it "
                        "from that folder's results.csv without running a sweep")
    p.add_argument("--epochs", type=_positive_int)
    p.add_argument("--out", metavar="DIR", help="output folder")
    p.add_argument("--batch-size", type=_positive_int, help="global batch size (default 32)")
    p.add_argument("--lr", type=float, help="learning rate (default 1e-3 for adam/adamw/rmsprop, 0.1 for sgd)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, help="default adam; momentum is SGD with momentum 0.9")
    p.add_argument("--weight-decay", type=float, help="decoupled weight decay of the optimizer (default 0)")
    p.add_argument("--seed", type=int, help="seed of the initial weights and the data order (default 0)")
    p.add_argument("--backward", choices=("approx", "exact"),
                   help="gradients through the multiplier (approx, default) or exact fp32 (exact)")
    p.add_argument("--backend", help="reference, cpu, cuda or auto (default: $APPROXSIM_BACKEND, then auto)")
    p.add_argument("--data-dir", metavar="DIR", help="folder with the dataset's files (see approxsim.sweep.datasets)")
    p.add_argument("--limit-train", type=_positive_int, metavar="N", help="use the first N training examples")
    p.add_argument("--limit-test", type=_positive_int, metavar="N", help="use the first N test examples")
    p.add_argument("--image-size", type=_positive_int, metavar="PX", help="imagenet: network input side (224)")
    p.add_argument("--initial-weights", metavar="FILE",
                   help="start every run from this .weights.h5 file (e.g. initial.weights.h5 of another sweep)")
    p.add_argument("--resume", action="store_true", default=None,
                   help="skip finished runs in --out and continue unfinished ones from their last epoch")
    p.add_argument("--strategy", choices=STRATEGIES,
                   help="tf.distribute: mirrored (the local GPUs), multiworker (machines listed in TF_CONFIG)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=sweep_command)

    d = subparsers.add_parser(
        "demo", help="a quick offline sweep on the 8x8 digits; prints the table, writes approxsim-demo.png",
        description=f"Train a small CNN on scikit-learn's digits with {DEMO_MULTIPLIERS} and compare. "
                    "Runs offline in about a minute on two CPU cores; writes approxsim-demo.png and "
                    "approxsim-demo.csv into the current folder.")
    d.add_argument("--epochs", type=_positive_int, default=DEMO_EPOCHS)
    d.add_argument("--multipliers", default=DEMO_MULTIPLIERS)
    d.add_argument("--backend", help="reference, cpu, cuda or auto")
    d.add_argument("--quiet", action="store_true")
    d.set_defaults(func=demo_command)

    m = subparsers.add_parser(
        "merge", help="combine sweep output folders (e.g. multiplier subsets run on different machines)",
        description="Combine the results of several sweeps of the same model, dataset and settings into "
                    "one results.csv, summary.md and plot.")
    m.add_argument("folders", nargs="+", metavar="DIR")
    m.add_argument("--out", required=True, metavar="DIR")
    m.add_argument("--force", action="store_true", help="merge even when the settings differ")
    m.set_defaults(func=merge_command)


_OPTION_KEYS = ("model", "dataset", "multipliers", "epochs", "out", "batch_size", "lr", "optimizer", "weight_decay",
                "seed", "backward", "backend", "data_dir", "limit_train", "limit_test", "initial_weights", "resume",
                "strategy", "mode", "calibration_examples", "plot_pareto")
_SWEEP_ONLY = ("config", *(k for k in _OPTION_KEYS if k not in ("out", "plot_pareto")), "image_size")


def pareto_command(out: str) -> int:
    """``approxsim sweep --plot-pareto --out DIR``: draws DIR/pareto.png from DIR's results.csv."""
    import json

    from approxsim.sweep.report import read_results, write_pareto

    rows = read_results(out)
    cfg_path = os.path.join(out, "sweep.json")
    cfg = {}
    if os.path.isfile(cfg_path):
        with open(cfg_path) as f:
            cfg = json.load(f)
    title = f"{cfg.get('model')} on {cfg.get('dataset')}" if cfg else ""
    print(f"Wrote {write_pareto(rows, out, title=title, what=os.path.join(out, 'results.csv'))}")
    return 0


def sweep_command(args) -> int:
    from approxsim.sweep.config import SweepConfig, load_sweep_file
    from approxsim.sweep.runner import run_config

    if args.plot_pareto and args.out and all(getattr(args, k) is None for k in _SWEEP_ONLY):
        return pareto_command(args.out)
    data = load_sweep_file(args.config) if args.config else {}
    data = {k.replace("-", "_"): v for k, v in data.items()}
    for key in _OPTION_KEYS:
        value = getattr(args, key)
        if value is not None:
            data[key] = value
    if args.image_size is not None:
        data["dataset_options"] = {**data.get("dataset_options", {}), "image_size": args.image_size}
    if args.quiet:
        data["verbose"] = 0
    cfg = SweepConfig.from_dict(data, source=args.config or "the command line")
    result = run_config(cfg)
    if result["table"]:  # the chief of a multi-worker run
        print("\n" + result["table"])
        plots = "accuracy.png, loss.png" + (", pareto.png" if cfg.plot_pareto else "")
        print(f"Results in {cfg.out}: results.csv, summary.md, {plots}, runs/")
    return 0


def demo_command(args) -> int:
    from approxsim.sweep.report import plot
    from approxsim.sweep.runner import run

    start = time.perf_counter()
    work = tempfile.mkdtemp(prefix="approxsim-demo-")
    try:
        result = run(model="smallcnn", dataset="digits", multipliers=args.multipliers, epochs=args.epochs,
                     out=work, batch_size=32, lr=3e-3, seed=0, backend=args.backend,
                     verbose=0 if args.quiet else 2)
        png = os.path.abspath("approxsim-demo.png")
        plot(result["rows"], png, kind="both", title="small CNN on 8x8 digits")
        shutil.copyfile(os.path.join(work, "results.csv"), "approxsim-demo.csv")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n" + result["table"])
    print(f"Wrote {png} and approxsim-demo.csv ({time.perf_counter() - start:.0f} s).")
    return 0


def merge_command(args) -> int:
    from approxsim.sweep.report import merge

    print(merge(args.folders, args.out, force=args.force))
    print(f"Merged results in {args.out}: results.csv, summary.md, accuracy.png, loss.png")
    return 0
