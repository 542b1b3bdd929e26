"""approxsim.analyze, summary_line, the stats/compare subcommands and the plots."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import approxsim
from approxsim import multipliers
from approxsim.analysis import STAT_KEYS, analyze, summary_line
from approxsim.cli import main

MITCHELL_MEAN = -0.0385  # Mitchell 1962: mean relative error -3.85%
MITCHELL_WORST = 1 / 9  # ... and worst case -11.11%, at x = y = 1/2
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _check_png(path):
    data = open(path, "rb").read()
    assert data[:8] == PNG_MAGIC
    assert 10_000 < len(data) < 5_000_000
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width >= 600 and height >= 300


def _json_from(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


# --- statistics ----------------------------------------------------------------------------

@pytest.mark.parametrize("m, tol", [(4, 2.5e-4), (5, 1e-4), (7, 1e-4), (11, 5e-5)])
def test_mitchell_published_figures_on_the_grid(m, tol):
    t = analyze(f"mitchell{m}", samples=1000)["table"]
    assert t["mean_rel_error"] == pytest.approx(MITCHELL_MEAN, abs=tol)
    assert t["mean_abs_rel_error"] == pytest.approx(-t["mean_rel_error"])  # never overestimates
    assert t["max_abs_rel_error"] == pytest.approx(MITCHELL_WORST, abs=1e-12)
    w = t["worst_case"]
    assert (w["i"], w["j"], w["a"], w["b"]) == (1 << (m - 1), 1 << (m - 1), 1.5, 1.5)
    assert (w["approx"], w["exact"]) == (2.0, 2.25)
    assert w["rel_error"] == pytest.approx(-MITCHELL_WORST, abs=1e-12)
    assert t["grid_bits"] == m


def test_mitchell11_within_the_issue_tolerances():
    t = analyze("mitchell11", samples=1000)["table"]
    assert abs(t["mean_rel_error"] - MITCHELL_MEAN) < 2e-4
    assert abs(t["max_abs_rel_error"] - 0.1111) < 5e-4


def test_fp32_statistics_are_all_zero():
    s = analyze("fp32", samples=100_000)
    assert s["kind"] == "exact" and s["mantissa_bits"] is None
    for section in ("table", "random"):
        for key in STAT_KEYS:
            assert s[section][key] == 0.0, (section, key)
    assert s["table"]["grid_bits"] == 11


def test_hand_built_table_statistics():
    # Operands 1 and 1.5 (M=1). Exact products [[1, 1.5], [1.5, 2.25]]; the table is exact
    # except T[1][0] = 1.25 for 1.5 x 1 = 1.5, a relative error of -1/6.
    mult = approxsim.Multiplier("hand", 1, np.array([[1.0, 1.5], [1.25, 2.25]]))
    s = analyze(mult, samples=200_000, seed=3)
    t = s["table"]
    assert t["mean_rel_error"] == pytest.approx(-1 / 24, rel=1e-12)
    assert t["mean_abs_rel_error"] == pytest.approx(1 / 24, rel=1e-12)
    assert t["max_abs_rel_error"] == pytest.approx(1 / 6, rel=1e-12)
    assert t["std_rel_error"] == pytest.approx(math.sqrt(3) / 24, rel=1e-12)
    assert t["error_probability"] == 0.25
    assert t["worst_case"] == {"i": 1, "j": 0, "a": 1.5, "b": 1.0, "approx": 1.25, "exact": 1.5,
                               "rel_error": pytest.approx(-1 / 6, rel=1e-12)}
    # Random operands: a in [1, 1.5) uses row 0, [1.5, 2) row 1 (likewise b, columns), so
    # E[T/(ab)] = 1/4 sum_ij T[i][j] A_i A_j with A_0 = E[1/a | a < 1.5] = 2 ln 1.5 and
    # A_1 = 2 ln(4/3).
    A = [2 * math.log(1.5), 2 * math.log(4 / 3)]
    T = [[1.0, 1.5], [1.25, 2.25]]
    expected = sum(T[i][j] * A[i] * A[j] for i in range(2) for j in range(2)) / 4 - 1
    r = s["random"]
    assert r["mean_rel_error"] == pytest.approx(expected, abs=5 * r["std_rel_error"] / math.sqrt(200_000))
    assert r["error_probability"] > 0.999
    assert r["samples"] == 200_000 and r["seed"] == 3
    # The worst pair: a -> 2, b -> 1.5 from below, T[1][0] = 1.25 for about 3: -7/12.
    assert 0.57 < r["max_abs_rel_error"] < 7 / 12


def test_random_section_counts_input_truncation():
    # On the grid, trunc{M} loses under one unit in the last place; on random operands the
    # truncated inputs add about as much again.
    s = analyze("trunc7", samples=100_000)
    assert s["random"]["mean_rel_error"] < 2 * s["table"]["mean_rel_error"] < 0
    w = s["random"]["worst_case"]
    assert w["rel_error"] == pytest.approx(w["approx"] / w["exact"] - 1)
    assert abs(w["rel_error"]) == s["random"]["max_abs_rel_error"]


def test_same_seed_same_statistics_and_other_seed_differs():
    a = analyze("mbm5", samples=20_000, seed=1)
    assert analyze("mbm5", samples=20_000, seed=1) == a
    b = analyze("mbm5", samples=20_000, seed=2)
    assert b["table"] == a["table"]
    assert b["random"]["mean_rel_error"] != a["random"]["mean_rel_error"]


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"samples": 2.5}, {"seed": -1}, {"samples": True}])
def test_bad_arguments_are_rejected(kwargs):
    with pytest.raises(ValueError, match="Received"):
        analyze("mitchell3", **kwargs)


def test_unknown_multiplier():
    with pytest.raises(approxsim.UnknownMultiplierError):
        analyze("no_such_multiplier")


class _ExactDirect:
    """A stand-in for a direct model: the float32 product."""

    def multiply(self, a, b):
        return np.multiply(a, b, dtype=np.float32)


def test_direct_multiplier_uses_the_11_bit_grid():
    mult = approxsim.Multiplier("fake_direct", 16, direct=_ExactDirect())
    s = analyze(mult, samples=10_000)
    assert s["kind"] == "direct"
    assert s["table"]["grid_bits"] == 11
    assert all(s[section][key] == 0.0 for section in ("table", "random") for key in STAT_KEYS)


def test_approxtrain_mit7_table_gives_the_same_statistics(shared_dir):
    path = os.path.join(shared_dir, "reference", "approxtrain_luts", "MIT_7.bin")
    imported = multipliers.from_approxtrain(path)
    a = analyze(imported, samples=50_000)
    b = analyze("mitchell7", samples=50_000)
    assert a["table"] == b["table"] and a["random"] == b["random"]


def test_summary_line():
    line = summary_line("mitchell7")
    assert "\n" not in line and len(line) < 200
    assert "128x128 grid" in line and "-3.85%" in line and "-11.1%" in line


# --- command line ----------------------------------------------------------------------------

def _mit7_random_mean_independently(shared_dir, samples=1_000_000, seed=12345):
    """The random-operand bias of ApproxTrain's MIT_7 table, decoded and sampled here."""
    raw = np.fromfile(os.path.join(shared_dir, "reference", "approxtrain_luts", "MIT_7.bin"), dtype=np.uint8)
    assert raw.size == 128 * 128
    carry = (raw >> 7) & 1
    mant = raw & 0x7F
    table = ((1 + mant / 128.0) * np.where(carry == 1, 2.0, 1.0)).reshape(128, 128)
    rng = np.random.default_rng(seed)
    a = 1 + rng.random(samples)
    b = 1 + rng.random(samples)
    i = np.floor((a - 1) * 128).astype(int)
    j = np.floor((b - 1) * 128).astype(int)
    return float(np.mean(table[i, j] / (a * b) - 1))


def test_stats_mitchell7_json_random_mean_matches_approxtrain_mit7(capsys, shared_dir):
    s = _json_from(capsys, ["stats", "mitchell7", "--json"])
    assert s["random"]["samples"] == 1_000_000
    expected = _mit7_random_mean_independently(shared_dir)
    assert abs(s["random"]["mean_rel_error"] - expected) < 5e-4
    assert s["random"]["mean_rel_error"] == pytest.approx(-0.0437, abs=5e-4)


def test_stats_json_is_exactly_analyze(capsys):
    s = _json_from(capsys, ["stats", "mitchell11", "--json", "--samples", "20000", "--seed", "4"])
    assert s == analyze("mitchell11", samples=20_000, seed=4)
    assert set(s) == {"multiplier", "kind", "mantissa_bits", "table", "random"}
    assert abs(s["table"]["mean_rel_error"] - MITCHELL_MEAN) < 2e-4
    assert abs(s["table"]["max_abs_rel_error"] - 0.1111) < 5e-4


def test_stats_text_and_plot(capsys, tmp_path):
    out = tmp_path / "m5.png"
    assert main(["stats", "MIT_5", "--samples", "20000", "--plot", str(out)]) == 0
    text = capsys.readouterr().out
    assert "mitchell5" in text and "MRED" in text and "-11.1111%" in text and "worst case" in text
    _check_png(out)


def test_stats_plot_for_fp32_and_zeros(tmp_path):
    for name in ("fp32", "zeros"):
        out = tmp_path / f"{name}.png"
        assert main(["stats", name, "--json", "--samples", "5000", "--plot", str(out)]) == 0
        _check_png(out)


def test_compare_table_and_plot(capsys, tmp_path):
    out = tmp_path / "cmp.png"
    assert main(["compare", "mitchell7", "mbm7", "lmul7", "bf16", "fp32", "--samples", "20000",
                 "--plot", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[1:6]}
    assert list(rows) == ["mitchell7", "mbm7", "lmul7", "bf16", "fp32"]
    assert "-3.8485%" in rows["mitchell7"]
    _check_png(out)


def test_compare_json(capsys):
    s = _json_from(capsys, ["compare", "trunc7", "bf16", "--json", "--samples", "5000"])
    assert [x["multiplier"] for x in s] == ["trunc7", "bf16"]
    assert s[0]["table"] == s[1]["table"] and s[0]["random"] == s[1]["random"]


@pytest.mark.parametrize("argv, message", [
    (["stats", "no_such_multiplier"], "Unknown multiplier"),
    (["stats", "mitchell3", "--samples", "0"], "samples must be"),
    (["stats", "mitchell3", "--samples", "100", "--plot", "/no/such/folder/x.png"], "folder"),
    (["compare", "mitchell3", "nope", "--samples", "100"], "Unknown multiplier"),
])
def test_cli_user_errors(capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_cli_in_a_subprocess(tmp_path):
    out = tmp_path / "s.png"
    proc = subprocess.run([sys.executable, "-m", "approxsim.cli", "stats", "lmul7", "--json", "--samples", "20000",
                           "--plot", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == analyze("lmul7", samples=20_000)
    _check_png(out)


def test_register_prints_an_error_summary(capsys, tmp_path):
    src = tmp_path / "halfway.c"
    # Mitchell's multiplier in a user file: the summary shows its published figures.
    src.write_text("float halfway(float a, float b) {\n"
                   "  unsigned ua, ub; memcpy(&ua, &a, 4); memcpy(&ub, &b, 4);\n"
                   "  float x = (float)(ua & 0x7FFFFF) / 8388608.0f, y = (float)(ub & 0x7FFFFF) / 8388608.0f;\n"
                   "  float s = x + y;\n"
                   "  return s < 1.0f ? 1.0f + s : 2.0f * s;\n"
                   "}\n")
    try:
        assert main(["register", str(src), "-f", "halfway", "-m", "6", "--name", "test_analysis_halfway"]) == 0
        out = capsys.readouterr().out
        assert "registered 'test_analysis_halfway'" in out
        assert "error on the 64x64 grid" in out and "-11.1%" in out
    finally:
        multipliers.unregister("test_analysis_halfway")
