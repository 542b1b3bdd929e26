"""approxsim.multiply against an independent implementation of DESIGN.md section 1."""

import math

import numpy as np
import pytest

import approxsim
from approxsim import multipliers

from oracle import approx_mul, oracle_products, same_bits, special_pairs, u2f

TABLE_MULTIPLIERS = [n for n in multipliers.available() if multipliers.get(n).kind == "table"]


def _random_full_range(n, seed):
    """float32 bit patterns drawn uniformly: every exponent, NaNs, Infs and subnormals included."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 2 ** 32, size=n, dtype=np.uint64).astype(np.uint32).view(np.float32)


@pytest.mark.parametrize("name", TABLE_MULTIPLIERS)
def test_special_values_match_oracle(name):
    mult = multipliers.get(name)
    a, b = special_pairs()
    got = approxsim.multiply(a, b, multiplier=name)
    want = oracle_products(a, b, mult.table, mult.mantissa_bits)
    bad = ~same_bits(got, want)
    assert not bad.any(), f"{name}: {a[bad][:3]} * {b[bad][:3]} -> {got[bad][:3]}, want {want[bad][:3]}"


@pytest.mark.parametrize("name", ["mbm7", "mitchell5", "bf16", "mbm11", "mitchell1"])
def test_random_bit_patterns_match_oracle(name):
    mult = multipliers.get(name)
    a, b = _random_full_range(20_000, 1), _random_full_range(20_000, 2)
    got = approxsim.multiply(a, b, multiplier=name)
    want = oracle_products(a, b, mult.table, mult.mantissa_bits)
    assert same_bits(got, want).all()


def test_hand_made_table_with_signs_zeros_and_subnormals():
    table = np.array([[1.0, -1.5], [0.0, u2f(0x00000003)]], dtype=np.float32)
    mult = approxsim.Multiplier("odd", 1, table)
    a, b = special_pairs()
    got = approxsim.multiply(a, b, multiplier=mult)
    want = oracle_products(a, b, table, 1)
    assert same_bits(got, want).all()
    # A negative entry flips the sign; a zero entry gives a signed zero.
    assert approxsim.multiply(1.0, 1.5, multiplier=mult) == -1.5
    assert math.copysign(1, approxsim.multiply(-1.5, 1.0, multiplier=mult)) == -1.0


def test_boundaries_exactly():
    mult = multipliers.get("mitchell7")  # T[0][0] == 1
    two = np.float32(2.0)
    # 2^-63 * 2^-63 = 2^-126 is the smallest normal: kept. 2^-64 * 2^-63 underflows to 0.
    assert approxsim.multiply(two ** -63, two ** -63, multiplier=mult) == np.float32(2.0 ** -126)
    assert approxsim.multiply(two ** -64, two ** -63, multiplier=mult) == 0.0
    # 2^64 * 2^63 = 2^127 is finite; 2^64 * 2^64 = 2^128 overflows.
    assert approxsim.multiply(two ** 64, two ** 63, multiplier=mult) == np.float32(2.0 ** 127)
    assert approxsim.multiply(two ** 64, -two ** 64, multiplier=mult) == -np.inf
    # Inf times a subnormal is NaN; Inf times a normal is Inf with the XOR sign.
    assert np.isnan(approxsim.multiply(np.inf, u2f(1), multiplier=mult))
    assert approxsim.multiply(-np.inf, 3.0, multiplier=mult) == -np.inf
    assert np.isnan(approxsim.multiply(np.nan, 1.0, multiplier=mult))


def test_fp32_is_ieee_product():
    a, b = _random_full_range(10_000, 3), _random_full_range(10_000, 4)
    with np.errstate(all="ignore"):
        want = a * b
    got = approxsim.multiply(a, b, multiplier="fp32")
    assert same_bits(got, want, any_nan=True).all()


def test_broadcasting_and_dtypes():
    a = np.arange(1, 7, dtype=np.float64).reshape(2, 3)
    b = np.array([1.5, 2.0, 3.0], dtype=np.float32)
    got = approxsim.multiply(a, b, multiplier="mbm7")
    assert got.shape == (2, 3) and got.dtype == np.float32
    want = [[approx_mul(float(x), float(y), multipliers.get("mbm7").table.tolist(), 7) for x, y in zip(row, b)]
            for row in a]
    assert np.array_equal(got, np.array(want, dtype=np.float32))
    with pytest.raises(TypeError, match="dtype"):
        approxsim.multiply(np.array(["x"]), 1.0, multiplier="mbm7")
    with pytest.raises(ValueError):
        approxsim.multiply(np.ones(3), np.ones(4), multiplier="mbm7")


def test_unknown_multiplier_lists_available():
    with pytest.raises(approxsim.UnknownMultiplierError, match="Available: fp32, bf16"):
        approxsim.multiply(1.0, 1.0, multiplier="nosuch")
