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

import numpy as np
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


TWO_WORKERS = r"""
import json, sys
import numpy as np
from approxsim.sweep import run
out, data_dir, strategy, limit_train, epochs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
result = run(model="lenet5", dataset="mnist", data_dir=data_dir, multipliers=["mbm7"], epochs=epochs, out=out,
             limit_train=limit_train, limit_test=256, batch_size=64, lr=0.002, strategy=strategy, verbose=0)
print("ROWS " + json.dumps(result["rows"]))
"""


def _weights(path):
    import h5py

    arrays = []
    with h5py.File(path, "r") as f:
        f.visititems(lambda name, obj: arrays.append(np.asarray(obj)) if isinstance(obj, h5py.Dataset) else None)
    return arrays


def _rows(stdout):
    return json.loads(next(s for s in stdout.splitlines() if s.startswith("ROWS "))[5:])


def _two_workers(out, data, limit_train, epochs):
    """A real MultiWorkerMirroredStrategy sweep: two worker processes on 127.0.0.1 (TF_CONFIG), one
    thread each; returns each worker's rows."""
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               "APPROXSIM_NUM_THREADS": "1"}
        procs.append(subprocess.Popen([sys.executable, "-c", TWO_WORKERS, str(out / f"w{index}"), data, "multiworker",
                                       str(limit_train), str(epochs)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env=env))
    outputs = []
    for p in procs:
        try:
            stdout, stderr = p.communicate(timeout=900)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail("the two-worker sweep did not finish within 15 minutes")
        assert p.returncode == 0, stderr[-4000:]
        outputs.append(stdout)
    return [_rows(o) for o in outputs]


def _results(rows):
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rows]


@pytest.mark.slow
def test_two_workers_agree_with_one_worker_of_the_same_global_batch(tmp_path, shared_dir):
    """Two workers (global batch 64, 32 images each) and one worker (batch 64) train LeNet-5 with mbm7
    for four steps to the same weights, within 1e-4 of each layer's largest magnitude: only the
    gradient all-reduce sums in another order (measured on AMD Zen 5: gaps of 2e-6 to 4e-6 after 4
    and 8 steps). Not more steps: training through a 7-bit-mantissa multiplier with Adam is chaotic.
    One-ulp noise in half the entries of one gradient moved some weights by 10% after 32 steps, and
    the all-reduce's own rounding did so for three of four seeds, so a longer run's gap says nothing
    about the strategy."""
    data = os.path.join(shared_dir, "data", "mnist")
    rows = _two_workers(tmp_path, data, limit_train=256, epochs=1)
    assert _results(rows[0]) == _results(rows[1])  # both workers report the same (all-reduced) results
    single = subprocess.run([sys.executable, "-c", TWO_WORKERS, str(tmp_path / "one"), data, "none", "256", "1"],
                            capture_output=True, text=True, timeout=900)
    assert single.returncode == 0, single.stderr[-4000:]
    one = _rows(single.stdout)
    assert abs(rows[0][-1]["test_accuracy"] - one[-1]["test_accuracy"]) <= 0.02
    w_multi = _weights(tmp_path / "w0" / "runs" / "mbm7" / "weights.weights.h5")
    w_one = _weights(tmp_path / "one" / "runs" / "mbm7" / "weights.weights.h5")
    assert len(w_multi) == len(w_one) > 0
    for a, b in zip(w_multi, w_one):
        assert a.shape == b.shape
        assert np.max(np.abs(a - b)) <= 1e-4 * max(np.max(np.abs(b)), 1e-6)


@pytest.mark.slow
def test_two_workers_learn(tmp_path, shared_dir):
    """The two-worker sweep of two epochs (32 steps) learns: both workers report the same results, and
    the test accuracy is above 50% (ten classes)."""
    rows = _two_workers(tmp_path, os.path.join(shared_dir, "data", "mnist"), limit_train=1024, epochs=2)
    assert _results(rows[0]) == _results(rows[1])
    assert rows[0][-1]["test_accuracy"] > 0.5
