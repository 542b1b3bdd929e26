"""The CPU backend (C++ kernels) against the reference backend.

Single products (contractions of length 1) must be bit-exact, specials included; sums
agree within ``1e-5 * sum(|products|)``. The C++ kernels take fast "float domain"
paths only where they are exact, so the tests mix operands that keep every block in
range with operands across the whole exponent range, and run every SIMD path this CPU has.
"""

import os

import numpy as np
import pytest

import approxsim
from approxsim.backends import backend_status
from approxsim.geometry import conv_geometry
from approxsim.product import products

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")

cpu_ok, cpu_reason = backend_status("cpu")
needs_cpu = pytest.mark.skipif(not cpu_ok, reason=f"cpu backend not usable: {cpu_reason}")

MULTS = ["mbm7", "mitchell5", "bf16", "mbm11", "mitchell1", "fp32"]


def _hand_table():
    """M = 3 with negative, zero and subnormal entries."""
    rng = np.random.default_rng(7)
    t = rng.uniform(1, 4, (8, 8)).astype(np.float32)
    t[0, 1] = -1.5
    t[2, 3] = 0.0
    t[3, 2] = 1e-39  # subnormal
    t[5, 5] = -0.0
    t[7, 0] = 2.0 ** -120
    return approxsim.Multiplier("hand3", 3, t)


def _wide_table():
    """M = 2 with entries far from 1: the float-domain path must see the over/underflows."""
    t = np.array([[1.0, 2.0 ** 100, 1.5, 3.0], [2.0 ** -100, 1.25, 2.0, 1.0],
                  [1.0, 1.0, 2.0 ** 120, 1.0], [1.75, 2.0 ** -125, 1.0, 3.5]], np.float32)
    return approxsim.Multiplier("wide2", 2, t)


def _bf16_zero_table():
    """M = 6, bf16-exact, with a zero entry (not the integer-exponent kernel)."""
    t = np.round(np.random.default_rng(3).uniform(1, 4, (64, 64)) * 64) / 64
    t[5, 9] = 0.0
    return approxsim.Multiplier("bfzero6", 6, t.astype(np.float32))


def _signed_bf16_table():
    """M = 5, bf16-exact, every entry normal, half of them negative and exponents -100..100: the
    panel build by word adds (exponent and sign added to each entry's bits) must carry signs and
    leave the wide entries' panels to the exact path."""
    rng = np.random.default_rng(8)
    sig = np.round(rng.uniform(1, 2, (32, 32)) * 128) / 128 * rng.choice([-1.0, 1.0], (32, 32))
    t = np.ldexp(sig, rng.integers(-3, 4, (32, 32)))
    t[3, 7], t[20, 1] = 2.0 ** 100, -(2.0 ** -100)
    return approxsim.Multiplier("signbf5", 5, t.astype(np.float32))


def _full_mantissa_table():
    """M = 7 with full 23-bit mantissas (not bf16-exact: the 32-bit gather path)."""
    return approxsim.Multiplier("full7", 7, np.random.default_rng(4).uniform(0.5, 4, (128, 128)).astype(np.float32))


METHODS = ("expanded", "linear", "lookup")


@pytest.fixture(params=METHODS)
def method(request):
    """Every GEMM method of the CPU driver, forced (then back to the driver's choice). A method a
    table cannot take falls back (expanded -> linear -> lookup), so each is run where it can be."""
    if not cpu_ok:
        pytest.skip(f"cpu backend not usable: {cpu_reason}")
    from approxsim import _cpu

    _cpu.force_method(request.param)
    yield request.param
    _cpu.force_method("auto")


def _off_by_one_entry():
    """mitchell7's table (linear-sum) with one entry moved by one ulp: must not be taken as structured."""
    t = approxsim.multipliers.get("mitchell7").table.copy()
    t[77, 40] = np.nextafter(t[77, 40], np.float32(4))
    return approxsim.Multiplier("offby1", 7, t)


def _uneven_linear_table():
    """M = 4, linear-sum with row classes that are no shift of the index (the linear kernels' class lookups;
    Mitchell's and MBM's are i >> s, taken from the bits) and column classes j >> 1."""
    u = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3, 4, 5, 5, 6, 7, 7])
    v = np.arange(16) >> 1
    return approxsim.Multiplier("unevenlin4", 4, (1 + 0.125 * (u[:, None] + v[None, :])).astype(np.float32))


def _bf16(x):
    """float32 values cut to their upper 16 bits (bfloat16-exact entries)."""
    return (np.asarray(x, np.float32).view(np.uint32) & np.uint32(0xFFFF0000)).view(np.float32)


def _row_groups_table():
    """M = 5, bfloat16 entries, rows equal in aligned groups of 4: expanded panels of 8 rows (fewer than
    the 16 of a transpose block), and negative entries."""
    rng = np.random.default_rng(5)
    base = _bf16(rng.uniform(1, 4, (8, 32)) * rng.choice([-1, 1], (8, 32)))
    return approxsim.Multiplier("groups5", 5, np.repeat(base, 4, axis=0))


def _unaligned_pairs_table():
    """M = 6, rows equal in pairs (1, 2), (3, 4), ...: not aligned groups, so one panel row per table row."""
    t = _bf16(np.random.default_rng(6).uniform(1, 4, (64, 64)))
    t[2::2] = t[1:-1:2]
    return approxsim.Multiplier("pairs6", 6, t)


CUSTOM = {"hand3": _hand_table, "wide2": _wide_table, "bfzero6": _bf16_zero_table, "full7": _full_mantissa_table,
          "offby1": _off_by_one_entry, "signbf5": _signed_bf16_table, "unevenlin4": _uneven_linear_table,
          "groups5": _row_groups_table, "pairs6": _unaligned_pairs_table}


@needs_cpu
@pytest.mark.parametrize("name, bits", [("mbm7", 6), ("mitchell7", 7), ("bf16", 7), ("groups5", 3), ("pairs6", 6),
                                        ("hand3", 3)])
def test_expanded_panel_rows_one_per_group_of_equal_rows(name, bits):
    """The expanded method's panel has a row per aligned group of equal table rows (MBM's pairs)."""
    from approxsim.backends import bind

    assert bind(_mult(name), "cpu")._table().panel_row_bits == bits


def test_uneven_linear_table_is_linear_sum_without_a_shift():
    """What test_every_simd_path_single_products_and_sums relies on for the class-lookup path: the table is
    detected as linear-sum, and its row classes are no shift of i."""
    st = _uneven_linear_table().structure
    assert st.kind == "linear-sum"
    assert not any(np.array_equal(st.u, np.arange(16) >> k) for k in range(5))
    assert np.array_equal(st.v, np.arange(16) >> 1)


def _mult(name):
    return CUSTOM[name]() if name in CUSTOM else approxsim.multipliers.get(name)


SIMD_LEVELS = ("portable", "avx2", "avx512", "vbmi")


@pytest.fixture(params=SIMD_LEVELS)
def simd(request, monkeypatch):
    """Every SIMD path of the CPU kernels, forced through $APPROXSIM_SIMD (which every backend lookup
    applies again, so a bare set_simd_level would not last past the first op), then restored; the
    levels this CPU lacks are skipped, with why. The test then runs at that level (checked after it)."""
    if not cpu_ok:
        pytest.skip(f"cpu backend not usable: {cpu_reason}")
    from approxsim.backends import cpu

    if request.param not in cpu.supported_simd():
        pytest.skip(f"this CPU cannot run the {request.param} kernels (it supports {', '.join(cpu.supported_simd())})")
    from approxsim import _cpu

    monkeypatch.setenv("APPROXSIM_SIMD", request.param)
    cpu.check_settings()
    yield request.param
    assert _cpu.simd_level() == cpu._NATIVE_NAMES[request.param], "the test did not run at the forced level"
    monkeypatch.undo()
    cpu.check_settings()  # back to $APPROXSIM_SIMD, or the best level


def special_values():
    s = [0.0, -0.0, 1e-45, -1e-45, 1.1754942e-38, -5e-39, 1.1754944e-38, -1.1754944e-38, 1.0, -1.0, 1.5,
         -1.9999999, 3.4028235e38, -3.4028235e38, 2.0 ** 64, 2.0 ** -64, 2.0 ** 127, 2.0 ** -126, 2.0 ** -100,
         np.inf, -np.inf, np.nan]
    return np.array(s, dtype=np.float32)


def random_bits(rng, n):
    """float32 values with every exponent field (NaN, Inf, subnormal, zero included)."""
    u = rng.integers(0, 2 ** 32, n, dtype=np.uint64).astype(np.uint32)
    return u.view(np.float32)


def moderate(rng, shape, lo=-20, hi=20):
    """Normal values with exponents in [lo, hi] and random mantissas and signs."""
    sig = rng.uniform(1, 2, shape) * rng.choice([-1.0, 1.0], shape)
    return np.ldexp(sig, rng.integers(lo, hi + 1, shape)).astype(np.float32)


def same_products(got, want):
    """Bitwise equal, except that a zero's sign is unspecified in a sum and NaN is any NaN."""
    gb, wb = got.view(np.uint32), want.view(np.uint32)
    both_nan = np.isnan(got) & np.isnan(want)
    both_zero = (got == 0) & (want == 0)
    return (gb == wb) | both_nan | both_zero


def within_tolerance(got, want, abs_sum):
    both_nan = np.isnan(got) & np.isnan(want)
    same_inf = np.isinf(got) & (got == want)
    finite = np.isfinite(want) & np.isfinite(got)
    close = np.zeros(got.shape, bool)
    close[finite] = np.abs(got[finite].astype(np.float64) - want[finite]) <= 1e-5 * abs_sum[finite] + 1e-30
    return both_nan | same_inf | close


# ----------------------------------------------------------------------------- single products

@pytest.mark.parametrize("name", MULTS + list(CUSTOM))
def test_single_products_bit_exact(fast_backend, name):
    """K = 1 contractions: each output is one product, bit-exact with the reference."""
    mult = _mult(name)
    rng = np.random.default_rng(1)
    for a, b in [(moderate(rng, 257), moderate(rng, 130)),                      # fast paths
                 (np.concatenate([special_values(), random_bits(rng, 200)]),   # whole range
                  np.concatenate([random_bits(rng, 100), special_values()]))]:
        got = approxsim.matmul(a[:, None], b[None, :], multiplier=mult, backend=fast_backend)
        want = approxsim.matmul(a[:, None], b[None, :], multiplier=mult, backend="reference")
        ok = same_products(got, want)
        ai, bi = np.nonzero(~ok)
        assert ok.all(), f"{name}: {a[ai[:4]]} (*) {b[bi[:4]]} -> {got[~ok][:4]}, want {want[~ok][:4]}"


@needs_cpu
@pytest.mark.parametrize("name", ["mbm7", "mitchell5", "mitchell1", "mbm11", "fp32", "hand3", "wide2", "bfzero6",
                                  "full7", "offby1", "mitchell11", "signbf5", "unevenlin4", "groups5", "pairs6"])
def test_every_simd_path_single_products_and_sums(simd, method, name):
    mult = _mult(name)
    rng = np.random.default_rng(2)
    a = np.concatenate([moderate(rng, 150), special_values(), random_bits(rng, 40)])
    b = np.concatenate([moderate(rng, 90), random_bits(rng, 30), special_values()])
    got = approxsim.matmul(a[:, None], b[None, :], multiplier=mult, backend="cpu")
    want = approxsim.matmul(a[:, None], b[None, :], multiplier=mult, backend="reference")
    assert same_products(got, want).all(), (simd, method)
    if name == "wide2":
        return  # its products overflow float32 partial sums: only single products are comparable
    # Sums, with one block of wide exponents (exact path) among fast ones.
    a2 = moderate(rng, (37, 300), -8, 8)
    b2 = moderate(rng, (300, 70), -8, 8)
    a2[:8, :40] = moderate(rng, (8, 40), -125, 125)
    got = approxsim.matmul(a2, b2, multiplier=mult, backend="cpu")
    want = approxsim.matmul(a2, b2, multiplier=mult, backend="reference")
    abs_sum = np.abs(products(a2[:, :, None], b2[None, :, :], mult).astype(np.float64)).sum(axis=1)
    assert within_tolerance(got, want, abs_sum).all(), (simd, method)
    # Few columns: run transposed, on the transposed table.
    got = approxsim.matmul(a2, b2[:, :3], multiplier=mult, backend="cpu")
    assert within_tolerance(got, want[:, :3], abs_sum[:, :3]).all(), (simd, method)
    got = approxsim.matmul(a[:, None], b[None, :5], multiplier=mult, backend="cpu")
    assert same_products(got, approxsim.matmul(a[:, None], b[None, :5], multiplier=mult,
                                               backend="reference")).all(), (simd, method)


@pytest.mark.parametrize("name", ["mbm7", "hand3", "full7", "fp32", "wide2"])
def test_few_columns(fast_backend, name):
    """Few output columns: the CPU kernels run C^T = B^T A^T on the transposed table."""
    mult = _mult(name)
    rng = np.random.default_rng(13)
    a = np.concatenate([moderate(rng, 200), special_values(), random_bits(rng, 60)])
    b = np.concatenate([moderate(rng, 3), special_values()[[0, 2, 9, 19, 21]]])
    got = approxsim.matmul(a[:, None], b[None, :], multiplier=mult, backend=fast_backend)
    want = approxsim.matmul(a[:, None], b[None, :], multiplier=mult, backend="reference")
    assert same_products(got, want).all()
    if name == "wide2":
        return
    a2 = moderate(rng, (200, 300), -8, 8)
    b2 = moderate(rng, (300, 3), -8, 8)
    got = approxsim.matmul(a2, b2, multiplier=mult, backend=fast_backend)
    want = approxsim.matmul(a2, b2, multiplier=mult, backend="reference")
    abs_sum = np.abs(products(a2[:, :, None], b2[None, :, :], mult).astype(np.float64)).sum(axis=1)
    assert within_tolerance(got, want, abs_sum).all()


# ----------------------------------------------------------------------------- sums

@pytest.mark.parametrize("name", ["mbm7", "mbm11", "fp32", "hand3"])
def test_sums_within_tolerance(fast_backend, name):
    mult = _mult(name)
    rng = np.random.default_rng(3)
    a = rng.standard_normal((45, 600)).astype(np.float32)
    b = rng.standard_normal((600, 77)).astype(np.float32)
    got = approxsim.matmul(a, b, multiplier=mult, backend=fast_backend)
    want = approxsim.matmul(a, b, multiplier=mult, backend="reference")
    abs_sum = np.abs(products(a[:, :, None], b[None, :, :], mult).astype(np.float64)).sum(axis=1)
    assert within_tolerance(got, want, abs_sum).all()


@pytest.mark.parametrize("name", ["mbm7", "fp32"])
def test_specials_propagate_through_sums(fast_backend, name):
    rng = np.random.default_rng(4)
    a = rng.standard_normal((20, 50)).astype(np.float32)
    b = rng.standard_normal((50, 40)).astype(np.float32)
    a[1, 3] = np.inf
    b[3, 5] = 1e-40      # Inf * subnormal -> NaN
    b[3, 6] = 0.0        # Inf * 0 -> NaN
    a[2, 7] = np.nan
    a[4, 9] = -np.inf
    b[9, 0] = np.inf     # -Inf * Inf -> -Inf
    a[5, 11] = 3e38
    b[11, 1] = 3e38      # overflow -> Inf
    got = approxsim.matmul(a, b, multiplier=name, backend=fast_backend)
    want = approxsim.matmul(a, b, multiplier=name, backend="reference")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    assert np.isnan(got[1, 6]) and np.isnan(got[2]).all()
    if name != "fp32":  # IEEE: Inf * subnormal = Inf; DESIGN.md section 1: NaN
        assert np.isnan(got[1, 5])


@needs_cpu
@pytest.mark.parametrize("name", ["mbm7", "mitchell5", "hand3", "signbf5"])
def test_panel_ranges_every_simd_path_and_method(simd, method, name):
    """The panel converters' range checks, 8 operands at a time and in the tails: each row of A has
    one nonzero operand, at any position of a 45-step contraction (the 8-wide steps, their last lanes,
    the tail), so each result is one product, bit-exact; extreme operands (Inf, NaN, subnormal, far
    out of range) among them must send their panel pairs to the exact path."""
    mult = _mult(name)
    rng = np.random.default_rng(14)
    rows, depth = 300, 45
    values = np.concatenate([moderate(rng, rows - 40, -6, 6), random_bits(rng, 40)])
    rng.shuffle(values)
    specials = special_values()
    for c in range(8):  # each special value at rows of every residue mod 8 (every row of a panel)
        values[np.arange(len(specials)) + 23 * c] = specials
    where = np.arange(rows) % depth
    a = np.zeros((rows, depth), np.float32)
    a[np.arange(rows), where] = values
    b = np.concatenate([moderate(rng, (depth - 4, 40), -6, 6), random_bits(rng, (4, 40))])
    b[[5, 17], [3, 9]] = [np.inf, 1e-41]
    rng.shuffle(b)
    b = b.astype(np.float32)
    got = approxsim.matmul(a, b, multiplier=mult, backend="cpu")
    single = approxsim.matmul(values[:, None, None], b[where][:, None, :], multiplier=mult, backend="reference")[:, 0]
    zero_times_inf = (~np.isfinite(b)[None, :, :] & (a == 0)[:, :, None]).any(axis=1)  # 0 * Inf, 0 * NaN
    want = np.where(zero_times_inf, np.float32(np.nan), single)
    assert same_products(got, want).all(), (simd, method)
    # At most 8 columns (the expanded method's 8-column panels): 5 and 8 of them.
    for cols in (5, 8):
        got = approxsim.matmul(a, b[:, :cols], multiplier=mult, backend="cpu")
        assert same_products(got, want[:, :cols]).all(), (simd, method, cols)
    # Transposed: the same operands as a few-row problem (C^T = B^T A^T).
    got = approxsim.matmul(b.T[:6], a.T, multiplier=mult, backend="cpu")
    single = approxsim.matmul(b.T[:6][:, where].T[:, :, None], values[:, None, None],
                              multiplier=mult, backend="reference")[:, :, 0].T
    assert same_products(got, np.where(zero_times_inf.T[:6], np.float32(np.nan), single)).all(), (simd, method)


@needs_cpu
@pytest.mark.parametrize("name", ["mbm7", "full7", "hand3"])
def test_few_rows_many_columns_every_simd_path(simd, name):
    """A batch of 100 rows against 300 columns: where the expanded method runs (AVX2 and AVX-512 gather
    levels) its panels are built per column, so the driver computes C^T (300 rows, 100 columns) on the
    transposed table; products and sums agree with the reference either way."""
    from approxsim import _cpu

    mult = _mult(name)
    rng = np.random.default_rng(15)
    a = moderate(rng, (100, 70), -8, 8)
    b = moderate(rng, (70, 300), -8, 8)
    got = approxsim.matmul(a, b, multiplier=mult, backend="cpu")
    chosen = _cpu.last_method()
    want = approxsim.matmul(a, b, multiplier=mult, backend="reference")
    abs_sum = np.abs(products(a[:, :, None], b[None, :, :], mult).astype(np.float64)).sum(axis=1)
    assert within_tolerance(got, want, abs_sum).all(), chosen
    if simd in ("avx2", "avx512"):
        assert chosen == "expanded (transposed)", chosen
    single = approxsim.matmul(a[:, :1], b[:1], multiplier=mult, backend="cpu")
    assert same_products(single, approxsim.matmul(a[:, :1], b[:1], multiplier=mult, backend="reference")).all()


# ----------------------------------------------------------------------------- operand order

def _marked():
    t = np.ones((4, 4), np.float32)
    t[1, 2] = 3.0   # T[first operand index 1][second operand index 2]
    t[2, 1] = 0.5   # the swapped lookup
    return approxsim.Multiplier("marked2", 2, t)


def _marked_linear():
    """A linear-sum table (u != v) whose two operand orders differ: T[1][2] = 2.25, T[2][1] = 2.0."""
    u, v = np.arange(4), 2 * np.arange(4)
    return approxsim.Multiplier("markedlin2", 2, (1 + 0.25 * (u[:, None] + v[None, :])).astype(np.float32))


def _check_operand_order(mult, backend, rows=1):
    """Forward T[x][w], input gradient T[dy][w], filter gradient T[x][dy] (DESIGN.md section 1)."""
    p, q = 1.25, 1.5  # mantissa indices 1 and 2 at M = 2
    t12 = float(mult.table[1, 2])
    x = np.full((rows, 3, 3, 1), p, np.float32)
    w = np.full((1, 1, 1, 1), q, np.float32)
    y = approxsim.conv2d(x, w, multiplier=mult, backend=backend)
    np.testing.assert_array_equal(y, np.full(x.shape, t12))
    dy = np.full(x.shape, p, np.float32)
    dx = approxsim.conv2d_input_grad(dy, w, x.shape, multiplier=mult, backend=backend)
    np.testing.assert_array_equal(dx, np.full(x.shape, t12))
    dy = np.full(x.shape, q, np.float32)
    dw = approxsim.conv2d_filter_grad(x, dy, w.shape, multiplier=mult, backend=backend)
    np.testing.assert_array_equal(dw, np.full(w.shape, 9.0 * rows * t12))
    m = approxsim.matmul(np.full((2 * rows, 1), p, np.float32), np.full((1, 3), q, np.float32), multiplier=mult,
                         backend=backend)
    np.testing.assert_array_equal(m, np.full((2 * rows, 3), t12))
    mt = approxsim.matmul(np.full((1, 2 * rows), p, np.float32), np.full((3, 1), q, np.float32), multiplier=mult,
                          backend=backend, transpose_a=True, transpose_b=True)
    np.testing.assert_array_equal(mt, np.full((2 * rows, 3), t12))


@pytest.mark.parametrize("marked", [_marked, _marked_linear])
def test_operand_order_forward_and_both_gradients(backend, marked):
    _check_operand_order(marked(), backend)


@needs_cpu
@pytest.mark.parametrize("marked", [_marked, _marked_linear])
def test_operand_order_every_simd_path_and_method(simd, method, marked):
    """The same on every forced kernel, with enough rows (64) that each method's panels fill up."""
    _check_operand_order(marked(), "cpu", rows=8)


# ----------------------------------------------------------------------------- convolutions

GEOMETRIES = [
    dict(x=(2, 9, 8, 6), w=(3, 3, 6, 5), strides=2, padding="SAME"),
    dict(x=(2, 9, 8, 6), w=(3, 2, 6, 5), strides=(1, 2), padding="VALID"),
    dict(x=(1, 7, 9, 4), w=(2, 3, 4, 3), strides=1, padding=((1, 2), (0, 1))),
    dict(x=(2, 10, 9, 3), w=(3, 3, 3, 4), strides=1, padding="SAME", dilations=2),
    dict(x=(2, 8, 8, 6), w=(3, 3, 3, 4), strides=1, padding="SAME", groups=2),
    dict(x=(2, 8, 7, 5), w=(3, 3, 1, 10), strides=2, padding="SAME", groups=5),   # depthwise, multiplier 2
    dict(x=(3, 6, 6, 70), w=(1, 1, 70, 66), strides=1, padding="VALID"),          # more than one panel
    dict(x=(1, 5, 5, 2), w=(5, 5, 2, 3), strides=3, padding="SAME", dilations=1),
    dict(x=(2, 9, 10, 20), w=(3, 3, 10, 6), strides=2, padding="SAME", groups=2),  # patches by 8 channels + 2
    dict(x=(2, 9, 10, 3), w=(3, 3, 3, 12), strides=1, padding=((1, 2), (2, 0))),  # transposed dx, by 8 + 4
]


def _ids(g):
    return "-".join(f"{k}{v}" for k, v in g.items() if k not in ("x", "w")) + f"-x{g['x']}-w{g['w']}"


@pytest.mark.parametrize("geo", GEOMETRIES, ids=[_ids(g) for g in GEOMETRIES])
@pytest.mark.parametrize("name", ["mbm7", "fp32", "mbm11"])
def test_conv_geometries(fast_backend, geo, name):
    _check_conv(geo, name, fast_backend)


def _check_conv(geo, name, fast_backend):
    rng = np.random.default_rng(5)
    x = rng.standard_normal(geo["x"]).astype(np.float32)
    w = rng.standard_normal(geo["w"]).astype(np.float32)
    opts = {k: v for k, v in geo.items() if k not in ("x", "w")}
    geom = conv_geometry(x.shape, w.shape, **opts)
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    abs_x, abs_w, abs_dy = (np.abs(v) for v in (x, w, dy))
    # The CPU input gradient both ways: the patch GEMM, and by columns (col2im) where it can.
    both = ("patches", "columns") if fast_backend == "cpu" else ("auto",)
    cases = [
        (approxsim.conv2d, (x, w), (abs_x, abs_w), ("auto",)),
        (lambda a, b, **k: approxsim.conv2d_input_grad(a, b, x.shape, **k), (dy, w), (abs_dy, abs_w), both),
        (lambda a, b, **k: approxsim.conv2d_filter_grad(a, b, w.shape, **k), (x, dy), (abs_x, abs_dy), ("auto",)),
    ]
    for fn, args, abs_args, decompositions in cases:
        want = fn(*args, multiplier=name, backend="reference", **opts)
        # Table entries are in [1, 4): |a (*) b| <= 4 |a| |b|.
        bound = fn(*abs_args, multiplier="fp32", backend="reference", **opts).astype(np.float64) * 4
        for decomposition in decompositions:
            if decomposition != "auto":
                from approxsim import _cpu

                _cpu.force_input_grad(decomposition)
            try:
                got = fn(*args, multiplier=name, backend=fast_backend, **opts)
            finally:
                if decomposition != "auto":
                    _cpu.force_input_grad("auto")
            assert got.shape == want.shape
            assert within_tolerance(got, want, bound).all(), decomposition


@needs_cpu
def test_input_gradient_by_columns_in_chunks_of_images():
    """A batch whose col2im temporary takes more than one chunk (12 images of 64 x 64, 7 x 7 taps,
    8 input channels, 4 filters: 6.4 MB of it per image, 64 MB per chunk) has the input gradient
    of an independent float64 computation, tap by tap (the exact product: fp32)."""
    from approxsim import _cpu

    rng = np.random.default_rng(8)
    dy = rng.standard_normal((12, 64, 64, 4)).astype(np.float32)
    w = rng.standard_normal((7, 7, 8, 4)).astype(np.float32)
    _cpu.force_input_grad("columns")
    try:
        got = approxsim.conv2d_input_grad(dy, w, (12, 64, 64, 8), padding="SAME", multiplier="fp32", backend="cpu")
    finally:
        _cpu.force_input_grad("auto")
    want = np.zeros((12, 64, 64, 8))
    for ky in range(7):
        for kx in range(7):  # output (oy, ox) reaches input (oy - 3 + ky, ox - 3 + kx)
            oy0, oy1, ox0, ox1 = max(0, 3 - ky), min(64, 67 - ky), max(0, 3 - kx), min(64, 67 - kx)
            want[:, oy0 - 3 + ky:oy1 - 3 + ky, ox0 - 3 + kx:ox1 - 3 + kx] += np.einsum(
                "nhwo,io->nhwi", dy[:, oy0:oy1, ox0:ox1].astype(np.float64), w[ky, kx].astype(np.float64))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@needs_cpu
@pytest.mark.parametrize("geo", [GEOMETRIES[5], GEOMETRIES[6], GEOMETRIES[3], GEOMETRIES[8], GEOMETRIES[9]],
                         ids=["depthwise", "panels", "dilated", "patch-blocks", "transposed-blocks"])
@pytest.mark.parametrize("name", ["mitchell7", "bf16", "mbm11"])
def test_conv_every_simd_path_and_method(simd, method, geo, name):
    """Forward and both gradients on every forced kernel (batch, groups and tiles in one parallel loop)."""
    _check_conv(geo, name, "cpu")


DEPTHWISE = [
    dict(x=(2, 9, 8, 16), w=(3, 3, 1, 16), strides=1, padding="SAME", groups=16),
    dict(x=(3, 9, 10, 13), w=(3, 3, 1, 13), strides=2, padding="SAME", groups=13),      # channel tail
    dict(x=(1, 11, 9, 24), w=(3, 2, 1, 24), strides=(2, 1), padding=((2, 0), (1, 1)), groups=24),
    dict(x=(2, 12, 12, 8), w=(3, 3, 1, 8), strides=1, padding="SAME", dilations=2, groups=8),
    dict(x=(1, 7, 8, 3), w=(5, 5, 1, 3), strides=3, padding="VALID", groups=3),
]


@pytest.mark.parametrize("geo", DEPTHWISE, ids=[_ids(g) for g in DEPTHWISE])
@pytest.mark.parametrize("name", ["mitchell7", "mbm7", "mbm11", "mitchell3", "bf16"])
def test_depthwise(fast_backend, geo, name):
    """Depthwise convolutions (the CPU's channel-vector path for shift-class linear-sum tables)."""
    _check_conv(geo, name, fast_backend)


@needs_cpu
@pytest.mark.parametrize("name", ["mitchell7", "mbm7", "mbm11", "lmul7", "markedlin2"])
def test_depthwise_single_products_bit_exact(simd, name):
    """A 1x1 depthwise convolution is one product per output, and its filter gradient with one
    pixel too: bit-exact with the reference, specials included (which take the GEMM path)."""
    mult = _marked_linear() if name == "markedlin2" else approxsim.multipliers.get(name)
    rng = np.random.default_rng(9)
    for x, w in [(moderate(rng, (2, 5, 7, 19)), moderate(rng, (1, 1, 1, 19))),
                 (moderate(rng, (1, 3, 3, 22)), special_values().reshape(1, 1, 1, 22))]:
        c = x.shape[-1]
        for fn, args in [(approxsim.conv2d, (x, w)),
                         (lambda a, b, **k: approxsim.conv2d_input_grad(a, b, x.shape, **k), (x, w)),
                         (lambda a, b, **k: approxsim.conv2d_filter_grad(a, b, w.shape, **k),
                          (x[:1, :1, :1], x[:1, :1, :1] * 0.75))]:
            got = fn(*args, groups=c, multiplier=mult, backend="cpu")
            want = fn(*args, groups=c, multiplier=mult, backend="reference")
            assert same_products(got, want).all(), (simd, name)


def test_conv_specials_match_reference(fast_backend):
    """Inf/NaN in inputs: padding zeros are products (NaN with Inf), unreached positions are not."""
    rng = np.random.default_rng(6)
    x = rng.standard_normal((1, 6, 6, 2)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 2)).astype(np.float32)
    w[0, 0, 1, 0] = np.inf
    x[0, 2, 3, 0] = np.nan
    opts = dict(strides=2, padding="SAME", multiplier="mbm7")
    geom = conv_geometry(x.shape, w.shape, strides=2, padding="SAME")
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    for fn, args in [(approxsim.conv2d, (x, w)),
                     (lambda a, b, **k: approxsim.conv2d_input_grad(a, b, x.shape, **k), (dy, w)),
                     (lambda a, b, **k: approxsim.conv2d_filter_grad(a, b, w.shape, **k), (x, dy))]:
        got = fn(*args, backend=fast_backend, **opts)
        want = fn(*args, backend="reference", **opts)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        fin = np.isfinite(want)
        np.testing.assert_allclose(got[fin], want[fin], rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- matmul forms and inputs

@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_batched_transposed_matmul(fast_backend, ta, tb):
    rng = np.random.default_rng(8)
    a_shape, b_shape = (2, 3, 5, 7), (3, 7, 40)
    a = rng.standard_normal(a_shape[:-2] + (a_shape[-1], a_shape[-2]) if ta else a_shape).astype(np.float32)
    b = rng.standard_normal(b_shape[:-2] + (b_shape[-1], b_shape[-2]) if tb else b_shape).astype(np.float32)
    got = approxsim.matmul(a, b, multiplier="mbm7", backend=fast_backend, transpose_a=ta, transpose_b=tb)
    want = approxsim.matmul(a, b, multiplier="mbm7", backend="reference", transpose_a=ta, transpose_b=tb)
    assert got.shape == want.shape == (2, 3, 5, 40)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_matmul_broadcast_2d_with_batch(fast_backend):
    rng = np.random.default_rng(9)
    a = rng.standard_normal((6, 9)).astype(np.float32)
    b = rng.standard_normal((4, 9, 3)).astype(np.float32)
    got = approxsim.matmul(a, b, multiplier="mitchell5", backend=fast_backend)
    want = approxsim.matmul(a, b, multiplier="mitchell5", backend="reference")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_non_contiguous_float64_and_int_inputs(fast_backend):
    rng = np.random.default_rng(10)
    base = rng.standard_normal((40, 60))
    a = base[::2, ::3]                       # float64, strided
    b = np.asfortranarray(rng.integers(-5, 6, (20, 13)))  # int, Fortran order
    got = approxsim.matmul(a, b, multiplier="mbm7", backend=fast_backend)
    want = approxsim.matmul(np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32),
                            multiplier="mbm7", backend="reference")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    x = rng.standard_normal((2, 12, 10, 6))[:, ::2, :, ::2]  # float64 view with odd strides
    w = rng.integers(-2, 3, (3, 3, 3, 4)).astype(np.int16)
    got = approxsim.conv2d(x, w, padding="SAME", multiplier="mbm7", backend=fast_backend)
    want = approxsim.conv2d(x.astype(np.float32), w.astype(np.float32), padding="SAME", multiplier="mbm7",
                            backend="reference")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


@needs_cpu
def test_thread_count_env_var(monkeypatch):
    from approxsim import _cpu

    rng = np.random.default_rng(11)
    a = rng.standard_normal((300, 200)).astype(np.float32)
    b = rng.standard_normal((200, 150)).astype(np.float32)
    results = []
    for n in ("1", "2", "5"):
        monkeypatch.setenv("APPROXSIM_NUM_THREADS", n)
        assert _cpu.num_threads() == int(n)
        results.append(approxsim.matmul(a, b, multiplier="mbm7", backend="cpu"))
    # Each output's sum is formed in the same order whatever the split: identical results.
    for r in results[1:]:
        np.testing.assert_array_equal(r, results[0])
    monkeypatch.setenv("APPROXSIM_NUM_THREADS", "not-a-number")
    assert _cpu.num_threads() >= 1


# ----------------------------------------------------------------------------- errors

def test_shape_errors_name_both_shapes(fast_backend):
    a = np.ones((3, 4), np.float32)
    b = np.ones((5, 6), np.float32)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(5, 6\)"):
        approxsim.matmul(a, b, multiplier="mbm7", backend=fast_backend)
    x = np.ones((1, 5, 5, 3), np.float32)
    w = np.ones((3, 3, 2, 4), np.float32)
    with pytest.raises(ValueError, match=r"\(1, 5, 5, 3\).*\(3, 3, 2, 4\)"):
        approxsim.conv2d(x, w, multiplier="mbm7", backend=fast_backend)
    w = np.ones((3, 3, 3, 4), np.float32)
    with pytest.raises(ValueError, match=r"dy"):
        approxsim.conv2d_input_grad(np.ones((1, 3, 3, 5), np.float32), w, x.shape, multiplier="mbm7",
                                    backend=fast_backend)


@needs_cpu
def test_extension_validates_sizes_itself():
    """Called directly (no front end), the extension still refuses sizes that do not fit."""
    from approxsim import _cpu
    from approxsim.backends.cpu import native_geometry

    table = _table(approxsim.multipliers.get("mbm7"))
    idx = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match=r"\(1, 3, 4\).*\(1, 5, 6\)"):
        _cpu.matmul(np.ones((1, 3, 4), np.float32), np.ones((1, 5, 6), np.float32), table, False, False, idx, idx)
    with pytest.raises(ValueError, match="batch index"):
        _cpu.matmul(np.ones((1, 3, 4), np.float32), np.ones((1, 4, 6), np.float32), table, False, False, idx + 1,
                    idx)
    geom = conv_geometry((1, 5, 5, 3), (3, 3, 3, 4), padding="SAME")
    with pytest.raises(ValueError, match=r"x has shape \(1, 5, 5, 2\)"):
        _cpu.conv2d(np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 3, 4), np.float32), native_geometry(geom),
                    table)
    with pytest.raises(ValueError, match="geometry"):  # oh inconsistent with the rest
        _cpu.Geometry(**{**geom.fields(), "oh": geom.oh + 1})
    with pytest.raises(ValueError, match="missing field .oh."):
        _cpu.Geometry(**{k: v for k, v in geom.fields().items() if k != "oh"})


# ----------------------------------------------------------------------------- misc

@needs_cpu
def test_simd_level_reported():
    from approxsim import _cpu

    assert _cpu.simd_level() in ("portable", "avx2", "avx512", "avx512_vbmi")
    with pytest.raises(ValueError, match="Received: level=sse9"):
        _cpu.set_simd_level("sse9")


def _table(mult):
    """The multiplier's table as the CPU kernels prepared it."""
    return approxsim.get_backend("cpu").bind(mult)._table()


@needs_cpu
def test_bf16_form_only_when_exact():
    assert _table(approxsim.multipliers.get("mbm7")).bf16_exact
    assert not _table(_full_mantissa_table()).bf16_exact


@needs_cpu
def test_direct_multipliers_are_delegated():
    calls = []

    class FakeDirect:
        def matmul(self, a, b, *, transpose_a, transpose_b):
            calls.append("matmul")
            return np.zeros((2, 2), np.float32)

        def conv2d(self, x, w, geom):
            calls.append("conv2d")
            return np.zeros(geom.output_shape, np.float32)

        def conv2d_input_grad(self, dy, w, geom):
            calls.append("dx")
            return np.zeros(geom.input_shape, np.float32)

        def conv2d_filter_grad(self, x, dy, geom):
            calls.append("dw")
            return np.zeros(geom.filter_shape, np.float32)

    mult = approxsim.Multiplier("fake_direct", None, direct=FakeDirect())
    be = approxsim.get_backend("cpu")
    be.matmul(np.ones((2, 3), np.float32), np.ones((3, 2), np.float32), mult)
    geom = conv_geometry((1, 4, 4, 1), (3, 3, 1, 1))
    be.conv2d(np.ones((1, 4, 4, 1), np.float32), np.ones((3, 3, 1, 1), np.float32), geom, mult)
    be.conv2d_input_grad(np.ones((1, 2, 2, 1), np.float32), np.ones((3, 3, 1, 1), np.float32), geom, mult)
    be.conv2d_filter_grad(np.ones((1, 4, 4, 1), np.float32), np.ones((1, 2, 2, 1), np.float32), geom, mult)
    assert calls == ["matmul", "conv2d", "dx", "dw"]


_MEMORY_CHILD = """
import sys
import numpy as np
import approxsim
from approxsim import _cpu
def peak():  # VmHWM, after clearing it below: the peak from here on, not of the imports
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
rng = np.random.default_rng(12)
x = rng.standard_normal((96, 32, 32, 32)).astype(np.float32)  # 12 MiB; an im2col would be 108 MiB
w = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
a = rng.standard_normal((1024, 1024)).astype(np.float32)
approxsim.matmul(a[:8, :8], a[:8, :8], multiplier=sys.argv[1], backend="cpu")  # tables, pool
out = np.empty((96, 32, 32, 32), np.float32)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = peak()
for method in ("expanded", "linear", "lookup"):
    _cpu.force_method(method)
    y = approxsim.conv2d(x, w, padding="SAME", multiplier=sys.argv[1], backend="cpu")
    dx = approxsim.conv2d_input_grad(y, w, x.shape, padding="SAME", multiplier=sys.argv[1], backend="cpu")
    dw = approxsim.conv2d_filter_grad(x, y, w.shape, padding="SAME", multiplier=sys.argv[1], backend="cpu")
    c = approxsim.matmul(a, a, multiplier=sys.argv[1], backend="cpu")
    del y, dx, dw, c
print(peak() - base)
"""


@needs_cpu
@pytest.mark.parametrize("name", ["mbm7", "mbm11"])
def test_working_memory_is_bounded(name):
    """Implicit GEMM and one scratch per pool thread: in a fresh process, its peak RSS reset after
    the imports and the tables, every method's convolution trio and a 1024^3 GEMM add at most their results (two live at
    once, 24 MiB) plus 64 MiB to the peak RSS. An im2col, or work buffers per method, would not fit."""
    if not os.path.exists("/proc/self/clear_refs"):
        pytest.skip("needs Linux's /proc/self/clear_refs to reset the peak RSS")
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", _MEMORY_CHILD, name], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    grown = int(run.stdout.split()[-1])
    assert grown < 24 * 2 ** 20 + 64 * 2 ** 20, f"peak RSS grew by {grown / 2 ** 20:.0f} MiB"


def _child_matmul(a):
    return approxsim.matmul(a, a, multiplier="mbm7", backend="cpu")


@needs_cpu
def test_threads_work_in_a_forked_child(monkeypatch):
    """A child made by fork() after the kernels ran (worker threads exist) starts its own pool."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork() here")
    monkeypatch.setenv("APPROXSIM_NUM_THREADS", "2")
    a = np.random.default_rng(14).standard_normal((300, 300)).astype(np.float32)
    want = _child_matmul(a)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        got = pool.apply_async(_child_matmul, (a,)).get(timeout=60)
    np.testing.assert_array_equal(got, want)


def test_empty_operands(fast_backend):
    kw = dict(multiplier="mbm7", backend=fast_backend)
    np.testing.assert_array_equal(approxsim.matmul(np.ones((3, 0)), np.ones((0, 4)), **kw), np.zeros((3, 4)))
    assert approxsim.matmul(np.ones((2, 0, 3, 3)), np.ones((3, 4)), **kw).shape == (2, 0, 3, 4)
    x = np.ones((0, 5, 5, 2), np.float32)
    w = np.ones((3, 3, 2, 4), np.float32)
    assert approxsim.conv2d(x, w, **kw).shape == (0, 3, 3, 4)
    np.testing.assert_array_equal(approxsim.conv2d_filter_grad(x, np.ones((0, 3, 3, 4)), w.shape, **kw),
                                  np.zeros(w.shape))
