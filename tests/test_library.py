"""The library's built-ins: trunc{M}, lmul{M} and zeros, against their definitions."""

import numpy as np
import pytest

import approxsim
from approxsim import multipliers
from approxsim.multipliers._library import lmul_offset_exponent


def _grid_fractions(m):
    """Integer fractions i (operand 1 + i/2^M) of the table grid, as an outer pair."""
    k = np.arange(1 << m, dtype=np.int64)
    return k[:, None], k[None, :]


def _trunc_formula(m):
    """trunc{M} from integers: (2^M + i)(2^M + j) / 2^2M, truncated to M fraction bits."""
    i, j = _grid_fractions(m)
    p = (2**m + i) * (2**m + j)  # the exact product in units of 2^-2M, in [2^2M, 2^(2M+2))
    shift = np.where(p >= 2 ** (2 * m + 1), m + 1, m)  # keep 1 + M significant bits
    kept = (p >> shift) << shift
    return kept / 2.0 ** (2 * m)


def _lmul_formula(m):
    """L-Mul (Luo & Sun): S = x + y + 2^-l(M); significand 1 + S, or 2S when S carries."""
    i, j = _grid_fractions(m)
    s = (i + j) / 2.0**m + 2.0 ** -lmul_offset_exponent(m)
    return np.where(s < 1, 1 + s, 2 * s)


def test_library_names_descriptions_and_references():
    names = multipliers.available()
    expected = [f"trunc{m}" for m in range(1, 12)] + [f"lmul{m}" for m in range(1, 12)] + ["zeros"]
    for name in expected:
        assert name in names
        mult = multipliers.get(name)
        assert mult.kind == "table"
        assert mult.description and mult.references
    assert multipliers.get("lmul5").mantissa_bits == 5
    assert multipliers.get("zeros").mantissa_bits == 1
    assert any("2410.00907" in ref for ref in multipliers.get("lmul7").references)
    assert any("754" in ref for ref in multipliers.get("trunc10").references)


def test_trunc7_equals_bf16():
    t7 = multipliers.get("trunc7").table
    bf16 = multipliers.get("bf16").table
    assert np.array_equal(t7.view(np.uint32), bf16.view(np.uint32))


@pytest.mark.parametrize("m", [1, 5, 10, 11])
def test_trunc_table_is_the_truncated_exact_product(m):
    table = multipliers.get(f"trunc{m}").table
    np.testing.assert_array_equal(table.astype(np.float64), _trunc_formula(m))
    # Truncation never rounds up and loses less than one unit in the M-th place.
    i, j = _grid_fractions(m)
    exact = (1 + i / 2**m) * (1 + j / 2**m)
    rel = table / exact - 1
    assert rel.max() <= 0
    assert rel.min() > -(2.0**-m)


def test_trunc10_has_the_binary16_fraction_width():
    # binary16 and TF32 keep 10 fraction bits: so does trunc10, truncating what lies below.
    a = np.float32(1 + 3 / 1024)
    assert approxsim.multiply(a, np.float32(1.0), multiplier="trunc10") == a
    b = np.float32(1 + 1 / 1024)
    exact = float(a) * float(b)  # 1 + 4/1024 + 3/2^20: the 2^-20 part is cut
    assert approxsim.multiply(a, b, multiplier="trunc10") == np.float32(1 + 4 / 1024)
    assert exact > 1 + 4 / 1024


def test_lmul_offset_rule():
    assert [lmul_offset_exponent(m) for m in range(1, 12)] == [1, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4]


@pytest.mark.parametrize("m", [1, 2, 3, 4, 5, 7])
def test_lmul_table_is_the_formula(m):
    table = multipliers.get(f"lmul{m}").table
    np.testing.assert_array_equal(table.astype(np.float64), _lmul_formula(m))
    assert table[0, 0] == 1 + 2.0 ** -lmul_offset_exponent(m)


@pytest.mark.parametrize("m", [3, 4, 5, 7])
def test_lmul_is_mitchell_plus_a_positive_offset(m):
    lmul = multipliers.get(f"lmul{m}").table
    mitchell = multipliers.get(f"mitchell{m}").table
    assert np.all(lmul > mitchell)  # the offset only raises the monotone significand
    lm = approxsim.analyze(f"lmul{m}", samples=50_000)["table"]
    mi = approxsim.analyze(f"mitchell{m}", samples=50_000)["table"]
    # Mitchell underestimates everywhere (bias -3.85%); L-Mul's offset overcompensates on
    # the grid: a positive bias, and from M = 5 (offset 2^-4) a smaller one, a smaller MRED
    # and a smaller worst case than Mitchell's. (At M = 3 and 4 the offset 2^-3 gives +4.9%.)
    assert mi["mean_rel_error"] < 0 < lm["mean_rel_error"]
    if m >= 5:
        assert abs(lm["mean_rel_error"]) < abs(mi["mean_rel_error"]) / 5
        assert lm["mean_abs_rel_error"] < mi["mean_abs_rel_error"]
        assert lm["max_abs_rel_error"] < mi["max_abs_rel_error"]


def test_lmul_bias_on_the_grid_converges():
    # With the offset 2^-4 (M >= 5) the grid bias tends to +0.406% as M grows.
    values = [approxsim.analyze(f"lmul{m}", samples=1000)["table"]["mean_rel_error"] for m in (7, 11)]
    assert values[0] == pytest.approx(0.00407, abs=2e-5)
    assert values[1] == pytest.approx(0.00406, abs=2e-5)


def test_zeros_table_and_products():
    mult = multipliers.get("zeros")
    assert mult.mantissa_bits == 1
    assert np.array_equal(mult.table, np.zeros((2, 2), np.float32))
    a = np.array([2.0, -2.0, 3.5, -1e30, 1e-30, 0.0, np.inf, np.inf, np.nan], np.float32)
    b = np.array([3.0, 3.0, -7.0, -1e30, 5.0, 1.0, 1.0, 0.0, 1.0], np.float32)
    out = approxsim.multiply(a, b, multiplier="zeros")
    np.testing.assert_array_equal(out[:6], 0.0)
    np.testing.assert_array_equal(np.signbit(out[:6]), [False, True, True, False, False, False])
    assert out[6] == np.inf
    assert np.isnan(out[7]) and np.isnan(out[8])


def test_zeros_statistics():
    s = approxsim.analyze("zeros", samples=10_000)
    for section in ("table", "random"):
        assert s[section]["mean_rel_error"] == -1.0
        assert s[section]["mean_abs_rel_error"] == 1.0
        assert s[section]["max_abs_rel_error"] == 1.0
        assert s[section]["std_rel_error"] == 0.0
        assert s[section]["error_probability"] == 1.0
