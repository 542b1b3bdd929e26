"""Every backend against independent computations: single products, sums, conv geometry, operand order.

The independent computations are naive loops straight from the definitions, with
every product formed by the scalar oracle of DESIGN.md section 1 (tests/oracle.py).
"""

import itertools

import numpy as np
import pytest

import approxsim
from approxsim.geometry import conv_geometry

from oracle import approx_mul, oracle_products, same_bits, special_values

MULTS = ["fp32", "mbm7", "mitchell5", "bf16", "mitchell1", "mbm11"]


def _mult_fn(name):
    mult = approxsim.multipliers.get(name)
    if mult.kind == "exact":
        return lambda a, b: float(np.float32(a) * np.float32(b))
    table = mult.table.tolist()
    return lambda a, b: approx_mul(a, b, table, mult.mantissa_bits)


@pytest.mark.parametrize("name", MULTS)
def test_single_products_through_length_one_contractions(backend, name):
    """An outer product (K = 1) holds single products: bit-exact, specials included."""
    v = special_values()
    got = approxsim.matmul(v[:, None], v[None, :], multiplier=name, backend=backend)
    a, b = np.meshgrid(v, v, indexing="ij")
    mult = approxsim.multipliers.get(name)
    if mult.kind == "exact":
        with np.errstate(all="ignore"):
            want = a * b
    else:
        want = oracle_products(a.ravel(), b.ravel(), mult.table, mult.mantissa_bits).reshape(a.shape)
    # A sum's zero sign is unspecified (0 + -0 = +0), and fp32 NaN payloads are the hardware's.
    ok = same_bits(got, want, signed_zero=False, any_nan=mult.kind == "exact")
    assert ok.all(), f"{a[~ok][:4]} * {b[~ok][:4]} -> {got[~ok][:4]}, want {want[~ok][:4]}"


def _taps(geom):
    """Every (output position, filter tap) pair that meets the input: the definition of conv2d.

    Yields ``(out_index, input_index, filter_index)`` as tuples into y, x and w.
    """
    cig, cog = geom.cin_per_group, geom.cout_per_group
    for n, oh, ow, co in itertools.product(*(range(s) for s in geom.output_shape)):
        g = co // cog
        for i, j, c in itertools.product(range(geom.kh), range(geom.kw), range(cig)):
            ih = oh * geom.sh - geom.pad_top + i * geom.dh
            iw = ow * geom.sw - geom.pad_left + j * geom.dw
            if 0 <= ih < geom.h and 0 <= iw < geom.w:
                yield (n, oh, ow, co), (n, ih, iw, g * cig + c), (i, j, c, co)


def _naive_conv(x, w, geom, mul):
    y = np.zeros(geom.output_shape, dtype=np.float64)
    for yi, xi, wi in _taps(geom):
        y[yi] += mul(float(x[xi]), float(w[wi]))
    return y


def _naive_input_grad(dy, w, geom, mul):
    dx = np.zeros(geom.input_shape, dtype=np.float64)
    for yi, xi, wi in _taps(geom):
        dx[xi] += mul(float(dy[yi]), float(w[wi]))
    return dx


def _naive_filter_grad(x, dy, geom, mul):
    dw = np.zeros(geom.filter_shape, dtype=np.float64)
    for yi, xi, wi in _taps(geom):
        dw[wi] += mul(float(x[xi]), float(dy[yi]))
    return dw


GEOMETRIES = [
    # input shape, filter shape, strides, padding, dilations, groups
    ((2, 6, 5, 3), (3, 3, 3, 4), 1, "SAME", 1, 1),
    ((1, 7, 7, 4), (3, 2, 2, 6), 2, "VALID", 1, 2),
    ((1, 8, 7, 3), (3, 3, 1, 6), (2, 1), "SAME", (1, 2), 3),  # depthwise, multiplier 2
    ((2, 5, 6, 2), (2, 3, 2, 3), 1, ((1, 2), (0, 1)), 2, 1),
    ((1, 4, 4, 2), (1, 1, 2, 3), 3, "SAME", 1, 1),
]


@pytest.mark.parametrize("name", ["fp32", "mbm7"])
@pytest.mark.parametrize("shape, fshape, strides, padding, dilations, groups", GEOMETRIES)
def test_conv_and_gradients_match_naive_loops(backend, name, shape, fshape, strides, padding, dilations, groups):
    rng = np.random.default_rng(sum(shape) + sum(fshape))
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal(fshape).astype(np.float32)
    kw = dict(strides=strides, padding=padding, dilations=dilations, groups=groups, multiplier=name, backend=backend)
    geom = conv_geometry(shape, fshape, strides=strides, padding=padding, dilations=dilations, groups=groups)
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    mul = _mult_fn(name)
    cases = [
        (approxsim.conv2d(x, w, **kw), _naive_conv, (x, w)),
        (approxsim.conv2d_input_grad(dy, w, shape, **kw), _naive_input_grad, (dy, w)),
        (approxsim.conv2d_filter_grad(x, dy, fshape, **kw), _naive_filter_grad, (x, dy)),
    ]
    for got, naive, (p, q) in cases:
        want = naive(p, q, geom, mul)
        scale = naive(np.abs(p), np.abs(q), geom, lambda a, b: abs(mul(a, b)))
        assert got.dtype == np.float32 and got.shape == want.shape, naive.__name__
        np.testing.assert_array_less(np.abs(got - want), 1e-5 * scale + 1e-30, err_msg=naive.__name__)


@pytest.mark.parametrize("ta, tb", [(False, False), (True, False), (False, True), (True, True)])
def test_batched_matmul_with_transposes(backend, ta, tb):
    rng = np.random.default_rng(7)
    a = rng.standard_normal((3, 1, 5, 4) if not ta else (3, 1, 4, 5)).astype(np.float32)
    b = rng.standard_normal((2, 4, 6) if not tb else (2, 6, 4)).astype(np.float32)
    got = approxsim.matmul(a, b, multiplier="mitchell7", backend=backend, transpose_a=ta, transpose_b=tb)
    a2 = np.swapaxes(a, -1, -2) if ta else a
    b2 = np.swapaxes(b, -1, -2) if tb else b
    a2, b2 = np.broadcast_to(a2, (3, 2, 5, 4)), np.broadcast_to(b2, (3, 2, 4, 6))
    prods = approxsim.multiply(a2[..., :, :, None], b2[..., None, :, :], multiplier="mitchell7")
    want = prods.astype(np.float64).sum(axis=-2)
    assert got.shape == (3, 2, 5, 6)
    np.testing.assert_array_less(np.abs(got - want), 1e-5 * np.abs(prods).sum(axis=-2) + 1e-30)


def _marked():
    """A table of ones with two distinctive entries: T[1][6] = 3 and T[6][1] = 1.5 (M = 3)."""
    table = np.ones((8, 8), dtype=np.float32)
    table[1, 6] = 3.0
    table[6, 1] = 1.5
    return approxsim.Multiplier("marked", 3, table)


def test_operand_order_marked_table(backend):
    """x = 1.125 (i = 1) and w = 1.75 (j = 6): which entry a result holds tells the order."""
    mult = _marked()
    x = np.full((1, 1, 1, 1), 1.125, dtype=np.float32)
    w = np.full((1, 1, 1, 1), 1.75, dtype=np.float32)
    kw = dict(multiplier=mult, backend=backend)
    assert approxsim.conv2d(x, w, **kw).item() == 3.0  # T[x][w]
    assert approxsim.matmul(x[0, 0], w[0, 0], **kw).item() == 3.0  # T[a][b]
    dy_i1 = np.full((1, 1, 1, 1), 1.125, dtype=np.float32)
    dy_i6 = np.full((1, 1, 1, 1), 1.75, dtype=np.float32)
    # input grad: T[dy][w]; dy = 1.125 (i = 1), w = 1.75 (j = 6) -> T[1][6]
    assert approxsim.conv2d_input_grad(dy_i1, w, x.shape, **kw).item() == 3.0
    # filter grad: T[x][dy]; x = 1.75 (i = 6), dy = 1.125 (j = 1) -> T[6][1]
    assert approxsim.conv2d_filter_grad(dy_i6, dy_i1, w.shape, **kw).item() == 1.5


def test_shape_errors_name_both_shapes(backend):
    with pytest.raises(ValueError, match=r"a shape=\(2, 3\), b shape=\(4, 5\)"):
        approxsim.matmul(np.ones((2, 3)), np.ones((4, 5)), multiplier="mbm7", backend=backend)
    with pytest.raises(ValueError, match=r"input shape=\(1, 4, 4, 3\), filter shape=\(3, 3, 2, 4\)"):
        approxsim.conv2d(np.ones((1, 4, 4, 3)), np.ones((3, 3, 2, 4)), multiplier="mbm7", backend=backend)
    with pytest.raises(ValueError, match="does not fit"):
        approxsim.conv2d(np.ones((1, 2, 2, 1)), np.ones((3, 3, 1, 1)), multiplier="mbm7", backend=backend)
    with pytest.raises(ValueError, match=r"dy shape=\(1, 3, 3, 2\)"):
        approxsim.conv2d_input_grad(np.ones((1, 3, 3, 2)), np.ones((3, 3, 1, 2)), (1, 4, 4, 1),
                                    multiplier="mbm7", backend=backend)


def test_backend_selection(monkeypatch):
    from approxsim.backends import get_backend

    assert get_backend("reference").name == "reference"
    monkeypatch.setenv("APPROXSIM_BACKEND", "reference")
    assert get_backend().name == "reference"
    with pytest.raises(ValueError, match="Unknown backend 'gpu'"):
        get_backend("gpu")
    auto = get_backend("auto").name
    assert auto in approxsim.available_backends()
