"""Structure detection (approxsim.structure) on real tables, checked entry by entry.

A table is linear-sum when every entry is ``fma(beta_p, u[i] + v[j], alpha_p)`` in float32, which
the tests recompute independently here in float64 (one rounding), so a detection that is wrong
in any entry fails.
"""

import numpy as np
import pytest

import approxsim
from approxsim.backends import backend_status
from approxsim.structure import MAX_PIECES, detect

cpu_ok, cpu_reason = backend_status("cpu")


def _recompute(st, shape):
    s = (st.u[:, None] + st.v[None, :]).astype(np.float64)
    starts = (0.0,) + st.thresholds
    out = np.zeros(shape)
    for start, alpha, beta in zip(starts, st.alphas, st.betas):
        out = np.where(s >= start, alpha + beta * s, out)
    return out.astype(np.float32)


@pytest.mark.parametrize("name", ["mitchell3", "mitchell7", "mitchell11", "mbm7", "mbm11", "lmul7"])
def test_sum_structured_multipliers_are_found(name):
    mult = approxsim.multipliers.get(name)
    st = detect(mult.table)
    assert st.kind == "linear-sum", name
    assert 1 <= len(st.alphas) <= MAX_PIECES
    assert st.u.shape == (mult.table.shape[0],) and st.v.shape == (mult.table.shape[1],)
    np.testing.assert_array_equal(_recompute(st, mult.table.shape).view(np.uint32), mult.table.view(np.uint32))
    assert "linear-sum" in st.describe()
    assert mult.structure.kind == "linear-sum"  # found once, with the table


@pytest.mark.parametrize("name", ["bf16", "trunc7"])
def test_unstructured_tables_are_general(name):
    try:
        mult = approxsim.multipliers.get(name)
    except KeyError:
        pytest.skip(f"no builtin {name}")
    assert detect(mult.table).kind == "general"


@pytest.mark.parametrize("where", [(77, 40), (5, 120), (64, 1)])
def test_one_entry_off_is_general(where):
    """An entry off by one ulp where its sum u + v recurs elsewhere: no longer a function of the sum."""
    t = approxsim.multipliers.get("mitchell7").table.copy()
    t[where] = np.nextafter(t[where], np.float32(8))
    assert detect(t).kind == "general"


@pytest.mark.parametrize("where", [(0, 0), (127, 127)])
def test_corner_entry_off_is_exact_either_way(where):
    """The corner sums occur once: the changed table may still be linear-sum (one more piece), and
    then the structure must give the changed entry too."""
    t = approxsim.multipliers.get("mitchell7").table.copy()
    t[where] = np.nextafter(t[where], np.float32(8))
    st = detect(t)
    if st.kind == "linear-sum":
        np.testing.assert_array_equal(_recompute(st, t.shape).view(np.uint32), t.view(np.uint32))


def test_signed_zero_and_nonfinite_entries_are_general():
    t = approxsim.multipliers.get("mitchell3").table.copy()
    zero = np.zeros_like(t)
    assert detect(zero).kind == "linear-sum"
    zero[2, 3] = -0.0
    assert detect(zero).kind == "general"  # fma(0, s, 0) is +0: the kernels could not give -0
    t[1, 1] = np.inf
    assert detect(t).kind == "general"


def test_rows_and_columns_of_different_classes():
    u = np.array([0, 3, 1, 3, 2, 0, 1, 2])
    v = np.array([2, 0, 0, 1, 3, 2, 1, 3])
    t = (1 + 0.125 * (u[:, None] + v[None, :])).astype(np.float32)  # classes not in index order
    st = detect(t)
    assert st.kind == "linear-sum"
    np.testing.assert_array_equal(_recompute(st, t.shape), t)
    assert int(st.u.max()) + 1 == 4 and int(st.v.max()) + 1 == 4


def test_more_pieces_than_kernels_take_is_general():
    s = np.add.outer(np.arange(8), np.arange(8))
    g = np.array([1, 2, 4, 7, 11, 16, 22, 29, 37, 46, 56, 67, 79, 92, 106], np.float32)  # convex: 14 pieces
    assert detect(g[s]).kind == "general"


@pytest.mark.skipif(not cpu_ok, reason=f"cpu backend not usable: {cpu_reason}")
def test_backend_uses_the_structure_and_the_methods():
    from approxsim import _cpu
    from approxsim.backends import cpu

    try:
        for halved in (0, 1):  # full-width 512-bit operations, and halved ones (AMD Zen 4), whatever this CPU
            _cpu.force_halved_512bit_ops(halved)
            for name, linear in [("mitchell11", True), ("mbm7", True), ("bf16", False)]:
                _check_methods(_cpu, cpu, name, linear, halved)
    finally:
        _cpu.force_halved_512bit_ops(-1)


def _check_methods(_cpu, cpu, name, linear, halved):
    mult = approxsim.multipliers.get(name)
    table = cpu.create().bind(mult)._table()
    level = cpu.simd_name(_cpu.simd_level())  # the level the kernels run at ($APPROXSIM_SIMD applied)
    assert table.linear_sum is linear, name
    # VBMI byte permutes do the lookups where they can (M <= 7, every entry a normal bfloat16 value), at
    # any size: faster than the expanded operand and than computing the entry; except where 512-bit
    # operations run as two halves, where the expanded operand takes every size it can
    t = mult.table
    exponents = (t.view(np.uint32) >> 23) & 0xFF
    bytes_ok = (level == "vbmi" and mult.mantissa_bits <= 7
                and not np.any(t.view(np.uint32) & 0xFFFF) and np.all((exponents != 0) & (exponents != 0xFF)))
    expandable = mult.mantissa_bits <= 7 and level != "portable"
    big = _cpu.method_for(table, 1 << 20)
    assert big == ("lookup" if bytes_ok and not halved else "expanded" if expandable
                   else "linear" if linear else "lookup"), (name, halved, big)
    # few rows: the linear-sum kernels, unless byte permutes do the lookups
    assert _cpu.method_for(table, 4) == ("linear" if linear and not bytes_ok else "lookup"), (name, halved)
    # 9 to 32 columns: expanded panels fit them, where byte permutes' 64-wide tiles would mostly pad
    for cols in (6, 16, 32, 33):
        want = ("expanded" if 8 < cols <= 32 or halved else "lookup") if bytes_ok else big
        assert _cpu.method_for(table, 1 << 20, cols) == want, (name, halved, cols)
    assert not expandable or _cpu.method_for(table, 1 << 20, 16) == "expanded", name


@pytest.mark.skipif(not cpu_ok, reason=f"cpu backend not usable: {cpu_reason}")
def test_thresholds_that_do_not_ascend_are_not_taken():
    """The CPU kernels pick a piece by counting the thresholds s reaches, which is the last piece
    reached only for ascending thresholds: a structure whose thresholds do not ascend is refused
    (general kernels), and mbm7's own (three pieces) is taken."""
    import dataclasses

    from approxsim import _cpu

    table = approxsim.multipliers.get("mbm7").table
    s = detect(table)
    assert s.kind == "linear-sum" and len(s.thresholds) == 2
    assert _cpu.prepare_table(table, 7, s).linear_sum
    swapped = dataclasses.replace(s, thresholds=tuple(reversed(s.thresholds)))
    assert not _cpu.prepare_table(table, 7, swapped).linear_sum
