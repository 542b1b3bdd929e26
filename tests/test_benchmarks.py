"""The benchmark scripts apply the settings they are given (their numbers are only as good as that)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"

pytest.importorskip("tensorflow")


def test_bench_keras_applies_its_thread_settings():
    """``--threads`` reaches approxsim (``APPROXSIM_NUM_THREADS``) and TF's intra-op pool, ``--inter-op``
    TF's inter-op pool: the run's own header says what it ran with, one step of a small MLP."""
    env = {k: v for k, v in os.environ.items() if k != "APPROXSIM_NUM_THREADS"}
    run = subprocess.run([sys.executable, str(BENCHMARKS / "bench_keras.py"), "--threads", "1", "--inter-op", "1",
                          "--steps", "1", "--batch", "8", "--models", "mlp", "--multipliers", "mbm7", "--markdown"],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "threads: approxsim 1, TF intra-op 1, inter-op 1" in run.stdout, run.stdout
    assert "| MLP 784-300-100-10 | approxsim mbm7 |" in run.stdout, run.stdout


@pytest.mark.parametrize("flag", ["--threads", "--inter-op"])
def test_bench_keras_rejects_a_thread_count_below_one(flag):
    run = subprocess.run([sys.executable, str(BENCHMARKS / "bench_keras.py"), flag, "0"],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert f"argument {flag}: must be positive" in run.stderr, run.stderr
