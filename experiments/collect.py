"""Copies the small outputs of experiments/mnist_lenet.sh and mnist_integer.sh into the repository.

Usage: python experiments/collect.py [OUT]   (default experiments/out)

Writes experiments/results/<model>.csv and <model>.md (the summary table) and
experiments/figures/<model>_accuracy.png and <model>_loss.png (and <model>_pareto.png for the
integer sweeps); prints the total wall
time of each sweep. Weights and histories stay in OUT (not committed).
"""

import os
import shutil
import sys

from approxsim.sweep import read_results
from approxsim.sweep.report import plot, summary_table

HERE = os.path.dirname(os.path.abspath(__file__))
TITLES = {"lenet300100": "LeNet-300-100 on MNIST (8,000/2,000)", "lenet5": "LeNet-5 on MNIST (8,000/2,000)",
          "lenet5_int_ptq": "LeNet-5 on MNIST, integer circuits, PTQ",
          "lenet5_int_qat": "LeNet-5 on MNIST, integer circuits, QAT"}


def main(out):
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    os.makedirs(os.path.join(HERE, "figures"), exist_ok=True)
    for model, title in TITLES.items():
        folder = os.path.join(out, model)
        if not os.path.isfile(os.path.join(folder, "results.csv")):
            print(f"{model}: no results in {folder}")
            continue
        rows = read_results(folder)
        shutil.copyfile(os.path.join(folder, "results.csv"), os.path.join(HERE, "results", f"{model}.csv"))
        with open(os.path.join(HERE, "results", f"{model}.md"), "w") as f:
            f.write(f"# {title}\n\n{summary_table(rows)}")
        for kind in ("accuracy", "loss"):
            plot(rows, os.path.join(HERE, "figures", f"{model}_{kind}.png"), kind=kind, title=title)
        if os.path.isfile(os.path.join(folder, "pareto.png")):
            shutil.copyfile(os.path.join(folder, "pareto.png"), os.path.join(HERE, "figures", f"{model}_pareto.png"))
        seconds = sum(r["seconds"] for r in rows)
        epochs = max(r["epoch"] for r in rows)
        print(f"{model}: {len({r['multiplier'] for r in rows})} multipliers, {epochs} epochs, "
              f"{seconds / 60:.1f} min of training and evaluation")
        print(summary_table(rows))


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "out"))
