"""The built-in integer multiplier C models (multipliers/int_exact.c, int_approx.c) against the
independent NumPy references of tests/int_models.py, compiled with the independent harness of
tests/c_harness.py; and the error properties the designs' papers establish (each one also
derived in the comments below and checked over all pairs)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import c_harness
import int_models as M

MULTIPLIERS = Path(__file__).resolve().parent.parent / "multipliers"
SMALL = [name for name, m in M.MODELS.items() if m["bits"] <= 8]
APPROX = [name for name, m in M.MODELS.items() if m["file"] == "int_approx.c"]
EXACT = [name for name, m in M.MODELS.items() if m["file"] == "int_exact.c"]

_TABLES: dict[str, np.ndarray] = {}


def c_table(name: str) -> np.ndarray:
    """The C model's exhaustive table, read as approxsim reads it (the low 2n bits of an unsigned
    return sign-extended for a signed circuit), pattern-indexed; cached per session."""
    if name not in _TABLES:
        m = M.MODELS[name]
        raw = c_harness.exhaustive(MULTIPLIERS / m["file"], name, m["signature"], m["bits"], m["signed"])
        if m["signed"] and m["signature"] == "u64":
            raw = M.sign_extend(raw, 2 * m["bits"])
        _TABLES[name] = raw
    return _TABLES[name]


def grid(bits: int = 8, signed: bool = False):
    c = M.codes(bits, signed)
    return np.meshgrid(c, c, indexing="ij")


def metrics(name: str) -> dict:
    m = M.MODELS[name]
    a, b = grid(m["bits"], m["signed"])
    return M.error_metrics(c_table(name), a, b)


# --------------------------------------------------------------------------------------------
# The registry of models and the C prototypes approxsim parses


def test_models_registry():
    assert set(M.MODELS) >= {"int8", "uint8", "int16", "int4", "uint4", "bam8u_v4", "bam8u_v8",
                             "drum8u_k4", "drum8u_k6", "mitchell8u"}
    for name, m in M.MODELS.items():
        assert set(m) == {"file", "bits", "signed", "signature", "reference", "citation"}, name
        assert m["signature"] in ("s8", "u8", "s16", "u64"), name
        assert callable(m["reference"]) and m["citation"], name


@pytest.mark.parametrize("name", list(M.MODELS))
def test_prototype_in_source(name):
    m = M.MODELS[name]
    ret, param = c_harness.SIGNATURES[m["signature"]]
    const = r"(const\s+)?" if m["signature"] == "u64" else ""
    proto = rf"^{ret}\s+{name}\(\s*{const}{param}\s+\w+\s*,\s*{const}{param}\s+\w+\s*\)"
    source = (MULTIPLIERS / m["file"]).read_text()
    assert len(re.findall(proto, source, re.MULTILINE)) == 1, (name, proto)
    assert re.findall(r"#\s*include\s*[<\"]([^>\"]+)", source) == ["stdint.h"]


# --------------------------------------------------------------------------------------------
# The C models equal the references


@pytest.mark.parametrize("name", SMALL)
def test_exhaustive_equals_reference(name):
    got, want = c_table(name), M.table(name)
    assert got.shape == want.shape == (1 << M.MODELS[name]["bits"],) * 2
    bad = np.argwhere(got != want)
    assert bad.size == 0, f"{name}: {len(bad)} pairs differ, first (patterns) {bad[:5].tolist()}"


def test_int4_returns_low_8_bits_only():
    raw = c_harness.exhaustive(MULTIPLIERS / "int_exact.c", "int4", "u64", 4, True)
    assert raw.min() >= 0 and raw.max() <= 0xFF
    a, b = grid(4, True)
    assert np.array_equal(M.sign_extend(raw, 8), a * b)


def test_int16_random_and_extremes():
    rng = np.random.default_rng(1234)
    a = rng.integers(-32768, 32768, size=10**6, dtype=np.int64)
    b = rng.integers(-32768, 32768, size=10**6, dtype=np.int64)
    ext = np.array([-32768, -1, 0, 1, 32767], np.int64)
    ea, eb = (x.ravel() for x in np.meshgrid(ext, ext, indexing="ij"))
    a, b = np.concatenate([a, ea]), np.concatenate([b, eb])
    got = c_harness.call(MULTIPLIERS / "int_exact.c", "int16", "s16", a, b)
    assert np.array_equal(got, a * b)
    assert np.array_equal(M.MODELS["int16"]["reference"](a, b), a * b)
    assert got[-25:].max() == 32768 * 32768 and got[-25:].min() == -32768 * 32767


@pytest.mark.parametrize("name", [n for n in SMALL if n in EXACT])
def test_exact_models_have_zero_error(name):
    e = metrics(name)
    assert e["MAE"] == 0 and e["WCE"] == 0 and e["EP_pct"] == 0 and e["WCRE_pct"] == 0


@pytest.mark.parametrize("name", APPROX)
def test_approx_results_fit_uint16_and_are_not_exact(name):
    t = c_table(name)
    assert t.min() >= 0 and t.max() <= 0xFFFF
    assert metrics(name)["EP_pct"] > 0


# --------------------------------------------------------------------------------------------
# Broken-array multiplier (Mahdiani et al. 2010)


def _omitted(vbl: int, bits: int = 8) -> int:
    """The weight of all the omitted partial-product positions: sum over i + j < VBL of 2^(i+j)."""
    return sum(1 << (i + j) for i in range(bits) for j in range(bits) if i + j < vbl)


def test_bam_reference_parameterisation():
    a, b = grid()
    assert np.array_equal(M.bam(a, b, 0), a * b)           # VBL = 0: nothing broken
    assert np.array_equal(M.bam(a, b, 15), np.zeros_like(a))  # all 15 columns broken
    for vbl in range(16):                                   # more breaking, never larger
        assert np.all(M.bam(a, b, vbl + 1) <= M.bam(a, b, vbl))


@pytest.mark.parametrize("name,vbl", [(n, int(n.rsplit("_v", 1)[1])) for n in APPROX if n.startswith("bam")])
def test_bam_error(name, vbl):
    t, e = c_table(name), metrics(name)
    # The low VBL product bits are never produced; the error is one-sided (omitted bits only).
    assert np.all(t & ((1 << vbl) - 1) == 0)
    assert e["max_rel"] == 0 and e["ME"] == -e["MAE"]
    # The worst case omits every position (a = b = 255) and each bit a_i b_j is 1 on a quarter of
    # the pairs, so WCE and the mean error follow from the omitted weight.
    assert e["WCE"] == _omitted(vbl) == -(t[255, 255] - 255 * 255)
    assert e["ME"] == -_omitted(vbl) / 4


# --------------------------------------------------------------------------------------------
# DRUM (Hashemi et al. 2015)


@pytest.mark.parametrize("name,k", [(n, int(n.rsplit("_k", 1)[1])) for n in APPROX if n.startswith("drum")])
def test_drum_error(name, k):
    t, e = c_table(name), metrics(name)
    a, b = grid()
    # Operands of at most k significant bits pass unchanged: exact on that square, not beyond.
    small = (a < 1 << k) & (b < 1 << k)
    assert np.array_equal(t[small], (a * b)[small])
    assert np.any(t[~small] != (a * b)[~small])
    # Each rebuilt operand is within 2^s of the operand (s the number of dropped bits) and the
    # operand is at least 2^(s+k-1), so |relative error| <= (1 + 2^(1-k))^2 - 1; it is attained
    # (a = b = 2^k).
    bound = (1 + 2.0 ** (1 - k)) ** 2 - 1
    assert e["WCRE_pct"] == pytest.approx(100 * bound, abs=1e-12)
    assert e["max_rel"] == pytest.approx(bound, abs=1e-12)
    # Unbiasing: errors take both signs, the mean error is a small part of the mean absolute
    # error, and it is exactly what the forced 1 gives: the dropped bits and the lowest kept one
    # (true mean 2^s - 1/2 over uniform bits) become 2^s, so each truncated operand gains 1/2 on
    # average; over the independent uniform operands of the grid, ME = 2 E[a] d + d^2.
    assert e["min_rel"] < 0 < e["max_rel"]
    assert abs(e["ME"]) < 0.5 * e["MAE"]
    d = 0.5 * np.mean(np.arange(256) >= 1 << k)
    assert e["ME"] == pytest.approx(2 * 127.5 * d + d * d, abs=1e-9)


def test_drum_bias_small_compared_with_bam():
    """BAM only ever drops bits, so its mean error is minus its MAE and its mean relative error
    is large; DRUM's truncation is unbiased per operand, so for a comparable or larger MAE its
    mean (relative) error is far smaller."""
    bam = metrics("bam8u_v8")
    for name in [n for n in APPROX if n.startswith("drum")]:
        drum = metrics(name)
        assert abs(drum["ME"]) < 0.3 * abs(bam["ME"])
        assert abs(drum["mean_rel"]) < 0.2 * abs(bam["mean_rel"])
        assert abs(drum["ME"]) / drum["MAE"] < 0.5
    assert bam["ME"] == -bam["MAE"]


# --------------------------------------------------------------------------------------------
# Mitchell (1962)


def test_mitchell_error():
    t, e = c_table("mitchell8u"), metrics("mitchell8u")
    a, b = grid()
    # Mitchell's value is an integer for integer operands: truncation drops nothing.
    value = M.mitchell_value(a, b)
    assert np.array_equal(value, np.trunc(value)) and np.array_equal(t, value.astype(np.int64))
    # Never above the exact product; worst relative error exactly -1/9, at x_a = x_b = 1/2
    # (3 * 3 -> 8); the mean relative error near Mitchell's -3.8%.
    assert e["max_rel"] == 0 and e["ME"] == -e["MAE"]
    assert e["min_rel"] == pytest.approx(-1 / 9, abs=1e-12)
    assert t[3, 3] == 8 and t[96, 96] == 8192
    assert -0.045 < e["mean_rel"] < -0.03
    # When x_a + x_b < 1 the error is exactly the dropped cross term -f_a f_b (f = the fraction
    # bits as integers, a = 2^ka + f_a), so a power-of-two operand gives the exact product.
    ka, kb = np.floor(np.log2(np.maximum(a, 1))), np.floor(np.log2(np.maximum(b, 1)))
    fa, fb = a - (2 ** ka).astype(np.int64), b - (2 ** kb).astype(np.int64)
    low = (a > 0) & (b > 0) & (fa * 2 ** kb + fb * 2 ** ka < 2 ** (ka + kb))
    assert np.array_equal((t - a * b)[low], -(fa * fb)[low])


# --------------------------------------------------------------------------------------------
# Kulkarni's underdesigned multiplier (2011)


def test_kulkarni_error():
    t, e = c_table("kulkarni8u"), metrics("kulkarni8u")
    # Each 2 x 2 block errs only on 3 * 3 (by -2, i.e. -2/9): one-sided, at most 2/9 relative,
    # attained; each block fails on 1/16 of the pairs, so ME = -2/16 (sum of the block weights).
    assert e["max_rel"] == 0 and e["ME"] == -e["MAE"]
    assert e["min_rel"] == pytest.approx(-2 / 9, abs=1e-12)
    weights = sum(4 ** i for i in range(4)) ** 2
    assert e["WCE"] == 2 * weights and e["ME"] == -2 / 16 * weights
    assert t[3, 3] == 7 and t[255, 255] == 255 * 255 - 2 * weights
