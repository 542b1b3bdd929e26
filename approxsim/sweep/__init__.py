"""Convergence sweeps: train one network with several multipliers and compare the curves.

>>> from approxsim import sweep
>>> result = sweep.run(model="lenet5", dataset="mnist", multipliers=["fp32", "mbm7"],
...                    epochs=1, out="runs/lenet5", data_dir="../shared/data/mnist")  # doctest: +SKIP

Every multiplier starts from the same initial weights, sees the same data in the
same order and uses the same seed, so the curves differ only by the arithmetic.
The outputs (``results.csv``, ``summary.md``, ``accuracy.png``, ``loss.png``, and
per run ``history.json`` and weights) are described in :func:`run`.

Integer circuits (``int8``, ``bam8u_v4``, registered EvoApproxLib files, ...) sweep like float
multipliers: trained with their quantized layers (``mode="qat"``), or evaluated on one fp32 run
after calibration (``mode="ptq"``, :mod:`approxsim.sweep.ptq`); their MAE%, WCE% and published
power and area go into the results (:mod:`approxsim.sweep.circuits`), and ``plot_pareto=True``
draws accuracy against power (``pareto.png``).

Importing this package does not import TensorFlow; its functions do.
"""

from approxsim.sweep.config import SweepConfig, load_sweep_file
from approxsim.sweep.datasets import DATASETS, load_dataset
from approxsim.sweep.models import MODELS, build_model
from approxsim.sweep.report import merge, read_results, summary_table, write_plots
from approxsim.sweep.runner import run, run_config

__all__ = ["run", "run_config", "SweepConfig", "load_sweep_file", "DATASETS", "load_dataset", "MODELS",
           "build_model", "merge", "read_results", "summary_table", "write_plots"]
