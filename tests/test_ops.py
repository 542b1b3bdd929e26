"""approxsim.ops: TF ops against stock TF (fp32), the reference backend (tables) and a marked table."""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

import approxsim  # noqa: E402
from approxsim import functional, ops  # noqa: E402
from approxsim.backends.base import Backend  # noqa: E402
from approxsim.backends.reference import ReferenceKernels  # noqa: E402
from approxsim.ops import _bridge  # noqa: E402

import stock  # noqa: E402  (tests/stock.py)

REL = 1e-5


def _rng(seed=0):
    return np.random.default_rng(seed)


def _normal(rng, *shape):
    return rng.normal(size=shape).astype(np.float32)


def assert_sums_close(actual, expected, bound, rel=REL):
    """``|actual - expected| <= rel * bound``, ``bound`` the sum of |products| of each element."""
    actual, expected, bound = (np.asarray(v, dtype=np.float64) for v in (actual, expected, bound))
    assert actual.shape == expected.shape
    err = np.abs(actual - expected)
    worst = np.argmax(err - rel * bound)
    assert np.all(err <= rel * bound + 1e-30), (
        f"max error {err.flat[worst]} > {rel} * {bound.flat[worst]} at {np.unravel_index(worst, err.shape)}")


def value_and_grads(fn, inputs, dy_seed=1):
    """``fn(*inputs)`` and the gradients of ``sum(y * dy)`` (a fixed random ``dy``) for each input."""
    inputs = [tf.constant(v) for v in inputs]
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = fn(*inputs)
    dy = tf.constant(_normal(_rng(dy_seed), *y.shape))
    grads = tape.gradient(y, inputs, output_gradients=dy)
    return y.numpy(), [g.numpy() for g in grads], dy.numpy()


def bounds(stock_fn, inputs, dy):
    """Sums of |products| for the output and each gradient: the stock op on absolute values."""
    absin = [tf.constant(np.abs(v)) for v in inputs]
    with tf.GradientTape() as tape:
        tape.watch(absin)
        y = stock_fn(*absin)
    grads = tape.gradient(y, absin, output_gradients=tf.constant(np.abs(dy)))
    return [y.numpy()] + [g.numpy() for g in grads]


# Each case: (name, approxsim op (inputs, multiplier, backward, backend), stock TF op, input shapes).
# Dilated cases compare with the zero-inserted undilated convolution (tests/stock.py), which has
# gradients on every CPU (TF without oneDNN has no dilated conv gradients).
def _cases():
    return [
        ("matmul", lambda a, b, **k: ops.am_matmul(a, b, **k), lambda a, b: tf.matmul(a, b), [(5, 7), (7, 3)]),
        ("matmul_batched_broadcast_tt",
         lambda a, b, **k: ops.am_matmul(a, b, transpose_a=True, transpose_b=True, **k),
         lambda a, b: tf.matmul(a, b, transpose_a=True, transpose_b=True), [(2, 1, 6, 4), (3, 5, 6)]),
        ("matmul_transpose_a", lambda a, b, **k: ops.am_matmul(a, b, transpose_a=True, **k),
         lambda a, b: tf.matmul(a, b, transpose_a=True), [(3, 6, 4), (3, 6, 2)]),
        ("einsum_attention", lambda a, b, **k: ops.am_einsum("abcd,aecd->acbe", a, b, **k),
         lambda a, b: tf.einsum("abcd,aecd->acbe", a, b), [(2, 3, 2, 4), (2, 5, 2, 4)]),
        ("conv2d_strided_same", lambda x, w, **k: ops.am_conv2d(x, w, strides=2, padding="SAME", **k),
         lambda x, w: tf.nn.conv2d(x, w, 2, "SAME"), [(2, 7, 8, 3), (3, 3, 3, 4)]),
        ("conv2d_dilated_valid", lambda x, w, **k: ops.am_conv2d(x, w, dilations=2, **k),
         lambda x, w: stock.conv2d(x, w, 1, "VALID", dilations=2), [(1, 9, 8, 2), (3, 2, 2, 3)]),
        ("conv2d_1x1", lambda x, w, **k: ops.am_conv2d(x, w, **k),
         lambda x, w: tf.nn.conv2d(x, w, 1, "VALID"), [(2, 4, 4, 5), (1, 1, 5, 3)]),
        ("conv2d_explicit_padding", lambda x, w, **k: ops.am_conv2d(x, w, padding=((1, 0), (2, 1)), **k),
         lambda x, w: tf.nn.conv2d(x, w, 1, [[0, 0], [1, 0], [2, 1], [0, 0]]), [(1, 5, 5, 2), (2, 3, 2, 2)]),
        ("depthwise", lambda x, w, **k: ops.am_depthwise_conv2d(x, w, strides=2, padding="SAME", **k),
         lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 2, 2, 1], "SAME"), [(2, 6, 7, 3), (3, 3, 3, 2)]),
        ("depthwise_dilated", lambda x, w, **k: ops.am_depthwise_conv2d(x, w, padding="SAME", dilations=2, **k),
         lambda x, w: tf.nn.depthwise_conv2d(x, w, [1, 1, 1, 1], "SAME", dilations=[2, 2]),
         [(1, 6, 6, 2), (3, 3, 2, 1)]),
        ("conv1d_dilated", lambda x, w, **k: ops.am_conv1d(x, w, dilations=2, padding="SAME", **k),
         lambda x, w: stock.conv1d(x, w, 1, "SAME", dilations=2), [(2, 9, 3), (3, 3, 4)]),
        ("conv1d_strided", lambda x, w, **k: ops.am_conv1d(x, w, stride=2, **k),
         lambda x, w: tf.nn.conv1d(x, w, 2, "VALID"), [(2, 9, 3), (2, 3, 2)]),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fp32_equals_stock_tf(case):
    _, am, stock, shapes = case
    inputs = [_normal(_rng(i), *s) for i, s in enumerate(shapes)]
    y, grads, dy = value_and_grads(lambda *t: am(*t, multiplier="fp32"), inputs)
    y0, grads0, _ = value_and_grads(stock, inputs)
    bnd = bounds(stock, inputs, dy)
    assert_sums_close(y, y0, bnd[0])
    for g, g0, b in zip(grads, grads0, bnd[1:]):
        assert_sums_close(g, g0, b)


@pytest.mark.parametrize("backward", ["approx", "exact"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_table_equals_reference(case, backward, backend):
    """mbm7 on each backend equals the same op computed by the reference backend, gradients included."""
    _, am, stock, shapes = case
    inputs = [_normal(_rng(i), *s) for i, s in enumerate(shapes)]
    y, grads, dy = value_and_grads(lambda *t: am(*t, multiplier="mbm7", backward=backward, backend=backend), inputs)
    y0, grads0, _ = value_and_grads(
        lambda *t: am(*t, multiplier="mbm7", backward=backward, backend="reference"), inputs)
    bnd = bounds(stock, inputs, dy)
    assert_sums_close(y, y0, 1.01 * bnd[0])
    for g, g0, b in zip(grads, grads0, bnd[1:]):
        assert_sums_close(g, g0, 1.01 * b)


@pytest.mark.parametrize("backward", ["approx", "exact"])
def test_matmul_gradients_follow_the_functional_api(backward):
    """dA = dY (*) B^T and dB = A^T (*) dY through the table (approx) or exactly (exact)."""
    rng = _rng(3)
    a, b = _normal(rng, 4, 6), _normal(rng, 6, 3)
    y, (da, db), dy = value_and_grads(
        lambda a, b: ops.am_matmul(a, b, multiplier="mbm7", backward=backward), [a, b])
    gm = "mbm7" if backward == "approx" else "fp32"
    ref = dict(backend="reference")
    bnd = bounds(lambda a, b: tf.matmul(a, b), [a, b], dy)
    assert_sums_close(y, functional.matmul(a, b, multiplier="mbm7", **ref), bnd[0])
    assert_sums_close(da, functional.matmul(dy, b, multiplier=gm, transpose_b=True, **ref), bnd[1])
    assert_sums_close(db, functional.matmul(a, dy, multiplier=gm, transpose_a=True, **ref), bnd[2])
    assert not np.array_equal(y, a @ b)  # the table is in use


def test_conv_gradients_follow_the_functional_api():
    rng = _rng(4)
    x, w = _normal(rng, 2, 6, 6, 2), _normal(rng, 3, 3, 2, 3)
    geo = dict(strides=2, padding="SAME", dilations=1)
    y, (dx, dw), dy = value_and_grads(lambda x, w: ops.am_conv2d(x, w, multiplier="mbm7", **geo), [x, w])
    bnd = bounds(lambda x, w: tf.nn.conv2d(x, w, 2, "SAME"), [x, w], dy)
    kw = dict(multiplier="mbm7", backend="reference", **geo)
    assert_sums_close(y, functional.conv2d(x, w, **kw), bnd[0])
    assert_sums_close(dx, functional.conv2d_input_grad(dy, w, x.shape, **kw), bnd[1])
    assert_sums_close(dw, functional.conv2d_filter_grad(x, dy, w.shape, **kw), bnd[2])


# --- operand order with a marked table --------------------------------------------------------

def marked():
    """M=3 table of ones with marks: the operands 1.125 (i=1), 1.25 (i=2), 1.5 (i=4) pick them out."""
    t = np.ones((8, 8), np.float32)
    t[1, 2], t[2, 1] = 2.5, 3.0        # x (*) w and its swap
    t[4, 2], t[2, 4] = 1.75, 1.875     # dy (*) w and its swap
    t[1, 4], t[4, 1] = 1.375, 1.625    # x (*) dy and its swap
    return approxsim.Multiplier("marked", 3, t)


@pytest.mark.parametrize("op", ["matmul", "matmul_tt", "conv2d", "depthwise", "conv1d", "einsum"])
def test_operand_order_with_marked_table(op):
    x, w, dy = 1.125, 1.25, 1.5
    fns = {
        "matmul": (lambda a, b: ops.am_matmul(a, b, multiplier=marked()), (1, 1), (1, 1)),
        "matmul_tt": (lambda a, b: ops.am_matmul(a, b, transpose_a=True, transpose_b=True, multiplier=marked()),
                      (1, 1), (1, 1)),
        "conv2d": (lambda a, b: ops.am_conv2d(a, b, multiplier=marked()), (1, 1, 1, 1), (1, 1, 1, 1)),
        "depthwise": (lambda a, b: ops.am_depthwise_conv2d(a, b, multiplier=marked()), (1, 1, 1, 1), (1, 1, 1, 1)),
        "conv1d": (lambda a, b: ops.am_conv1d(a, b, multiplier=marked()), (1, 1, 1), (1, 1, 1)),
        "einsum": (lambda a, b: ops.am_einsum("ab,bc->ac", a, b, multiplier=marked()), (1, 1), (1, 1)),
    }
    fn, xs, ws = fns[op]
    xt, wt = tf.constant(np.full(xs, x, np.float32)), tf.constant(np.full(ws, w, np.float32))
    with tf.GradientTape() as tape:
        tape.watch([xt, wt])
        y = fn(xt, wt)
    dx, dw = tape.gradient(y, [xt, wt], output_gradients=tf.fill(tf.shape(y), dy))
    assert float(tf.reshape(y, [-1])[0]) == 2.5      # T[x][w]
    assert float(tf.reshape(dx, [-1])[0]) == 1.75    # T[dy][w]
    assert float(tf.reshape(dw, [-1])[0]) == 1.375   # T[x][dy]


# --- graph mode, shapes, dtypes, errors ------------------------------------------------------

def test_tf_function_and_static_shapes():
    @tf.function(input_signature=[tf.TensorSpec([None, 9, 10, 3]), tf.TensorSpec([3, 3, 3, 4])])
    def conv(x, w):
        y = ops.am_conv2d(x, w, strides=2, padding="SAME", multiplier="mbm7")
        assert y.shape.as_list() == [None, 5, 5, 4]
        z = ops.am_conv1d(tf.reshape(x, [-1, 90, 3]), w[0], padding="CAUSAL", dilations=2, multiplier="mbm7")
        assert z.shape.as_list() == [None, 90, 4]
        m = ops.am_matmul(tf.reshape(x, [-1, 270]), tf.ones([270, 7]), multiplier="mbm7")
        assert m.shape.as_list() == [None, 7]
        return y

    x, w = _normal(_rng(5), 2, 9, 10, 3), _normal(_rng(6), 3, 3, 3, 4)
    np.testing.assert_array_equal(conv(x, w).numpy(),
                                  ops.am_conv2d(x, w, strides=2, padding="SAME", multiplier="mbm7").numpy())


def test_half_precision_is_computed_in_float32():
    rng = _rng(7)
    a, b = _normal(rng, 4, 8), _normal(rng, 8, 3)
    for dtype in (tf.float16, tf.bfloat16):
        y = ops.am_matmul(tf.cast(a, dtype), tf.cast(b, dtype), multiplier="mbm7")
        assert y.dtype == dtype
        expect = functional.matmul(tf.cast(tf.cast(a, dtype), tf.float32).numpy(),
                                   tf.cast(tf.cast(b, dtype), tf.float32).numpy(), multiplier="mbm7")
        np.testing.assert_array_equal(y.numpy(), tf.cast(expect, dtype).numpy())


def test_errors_name_the_argument():
    a = tf.ones([2, 3])
    with pytest.raises(approxsim.UnknownMultiplierError, match=r"mbm1\.\.mbm11"):
        ops.am_matmul(a, tf.ones([3, 2]), multiplier="no-such-multiplier")
    with pytest.raises(ValueError, match="backward"):
        ops.am_matmul(a, tf.ones([3, 2]), multiplier="fp32", backward="ste")
    with pytest.raises(ValueError, match="inner dimensions"):
        ops.am_matmul(a, tf.ones([2, 2]), multiplier="fp32")
    with pytest.raises(ValueError, match="data_format"):
        ops.am_conv2d(tf.ones([1, 3, 4, 4]), tf.ones([1, 1, 3, 2]), multiplier="fp32", data_format="NCHW")
    with pytest.raises(ValueError, match="padding"):
        ops.am_conv2d(tf.ones([1, 4, 4, 3]), tf.ones([1, 1, 3, 2]), multiplier="fp32", padding="FULL")


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_fp32_through_the_backend_equals_stock_tf(case, backend, monkeypatch):
    """Where TF's own kernels are not exact (TF32 on a GPU), fp32 goes through the backend: same results."""
    monkeypatch.setattr(ops._plan, "tf_is_exact", lambda: False)
    _, am, stock, shapes = case
    inputs = [_normal(_rng(i), *s) for i, s in enumerate(shapes)]
    y, grads, dy = value_and_grads(lambda *t: am(*t, multiplier="fp32", backend=backend), inputs)
    y0, grads0, _ = value_and_grads(stock, inputs)
    bnd = bounds(stock, inputs, dy)
    assert_sums_close(y, y0, bnd[0])
    for g, g0, b in zip(grads, grads0, bnd[1:]):
        assert_sums_close(g, g0, b)


class _FakeCuda(Backend):
    """A backend called "cuda" whose kernels compute with the reference backend (no GPU needed)."""

    name = "cuda"
    KERNELS = {approxsim.Multiplier: ReferenceKernels}


def test_cuda_dispatch_contract(monkeypatch):
    """With the cuda backend and GPU tensors, ops call approxsim.ops_cuda with the documented arguments."""
    ops_cuda = pytest.importorskip("approxsim.ops.cuda")
    calls = []

    def fake(method):
        def fn(*args, **kwargs):  # (tensors..., geometry?, bound kernels)
            calls.append(method)
            arrays = [np.asarray(a) if isinstance(a, tf.Tensor) else a for a in args[:-1]]
            return tf.constant(getattr(args[-1], method)(*arrays, **kwargs))
        return fn

    for method in ("matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad"):
        monkeypatch.setattr(ops_cuda, method, fake(method))
    monkeypatch.setattr(_bridge, "_on_gpu", lambda t: True)
    fake_cuda = _FakeCuda()
    x, w = _normal(_rng(1), 2, 5, 5, 2), _normal(_rng(2), 3, 3, 2, 3)

    @tf.function
    def step(x, w):
        with tf.GradientTape() as tape:
            tape.watch([x, w])
            y = ops.am_conv2d(x, w, padding="SAME", multiplier="mbm7", backend=fake_cuda)
            z = ops.am_matmul(tf.reshape(y, [2, -1]), tf.ones([75, 4]), multiplier="mbm7", backend=fake_cuda)
        return z, tape.gradient(z, [x, w])

    z, (dx, dw) = step(tf.constant(x), tf.constant(w))
    assert sorted(set(calls)) == ["conv2d", "conv2d_filter_grad", "conv2d_input_grad", "matmul"]
    y_ref = functional.conv2d(x, w, padding="SAME", multiplier="mbm7", backend="reference")
    np.testing.assert_allclose(z.numpy(), functional.matmul(y_ref.reshape(2, -1), np.ones((75, 4), np.float32),
                                                             multiplier="mbm7", backend="reference"), rtol=1e-5)
    assert dx.shape == x.shape and dw.shape == w.shape

    # host tensors with the cuda backend: the backend's own methods, through tf.py_function
    calls.clear()
    monkeypatch.setattr(_bridge, "_on_gpu", lambda t: False)
    y = ops.am_conv2d(x, w, padding="SAME", multiplier="mbm7", backend=fake_cuda)
    assert calls == []
    np.testing.assert_allclose(y.numpy(), y_ref, rtol=1e-6)
