"""Sweeps under tf.distribute: MirroredStrategy on two logical CPU devices, and a one-worker
MultiWorkerMirroredStrategy configured through TF_CONFIG.

Logical devices can only be configured before TensorFlow initialises its devices, and a
multi-worker strategy owns its process, so each case runs in a fresh Python subprocess.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

pytest.importorskip("tensorflow")

SCRIPT = r"""
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from approxsim.sweep import run
result = run(model="smallcnn", dataset="digits", multipliers=["fp32", "mbm7"], epochs=2, out=sys.argv[1],
             limit_train=192, limit_test=96, batch_size=32, lr=0.01, strategy=sys.argv[2], verbose=2)
print("ROWS " + json.dumps(result["rows"]))
"""


def _run(tmp_path, strategy, env=None):
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(out), strategy], capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(s for s in proc.stdout.splitlines() if s.startswith("ROWS "))
    return out, proc.stdout, json.loads(line[5:])


def _check(out, rows):
    assert [(r["multiplier"], r["epoch"]) for r in rows] == [("fp32", 1), ("fp32", 2), ("mbm7", 1), ("mbm7", 2)]
    assert (out / "results.csv").is_file() and (out / "accuracy.png").is_file()
    for r in rows:  # it learned: ten classes, so chance is 10%
        if r["epoch"] == 2:
            assert r["test_accuracy"] > 0.5, r


def test_mirrored_on_two_logical_cpus(tmp_path):
    out, stdout, rows = _run(tmp_path, "mirrored")
    assert "Strategy: mirrored (MirroredStrategy), 2 replicas" in stdout
    _check(out, rows)


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_multiworker_one_worker_from_tf_config(tmp_path):
    tf_config = {"cluster": {"worker": [f"localhost:{_free_port()}"]}, "task": {"type": "worker", "index": 0}}
    out, stdout, rows = _run(tmp_path, "multiworker", {"TF_CONFIG": json.dumps(tf_config)})
    assert "Strategy: multiworker (CollectiveAllReduceStrategy), 1 replica" in stdout  # one CPU device
    _check(out, rows)
