"""Integer multipliers in the Keras layers (DESIGN.md section 1b, quantized layers): forward and
gradients against independent NumPy/TF computations, the reference backend, PTQ calibration,
serialization (fresh process included) and bad input.

Expected values are computed here from the formulas: codes ``clip(round(x / s) + z)``, int64
sums by NumPy, the table gradients by explicit finite differences of the table. The layers'
own code is never the reference.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

keras = pytest.importorskip("keras")
tf = pytest.importorskip("tensorflow")

import approxsim  # noqa: E402
from approxsim import multipliers  # noqa: E402
from approxsim.backends import backend_status  # noqa: E402
from approxsim.layers import (AMConv1D, AMConv2D, AMDense, AMDepthwiseConv2D, AMEinsumDense,  # noqa: E402
                              AMMultiHeadAttention, AMSeparableConv2D)

cpu_ok, cpu_reason = backend_status("cpu")
BACKEND = "cpu" if cpu_ok else "reference"


def _f32(x):
    return np.asarray(x, np.float32)


def _symmetric(x, hi):
    """Scale and codes of symmetric quantization to codes -hi..hi (signed: lo = -hi - 1)."""
    amax = np.float32(np.max(np.abs(x)))
    scale = amax / np.float32(hi)
    return scale, np.clip(np.round(_f32(x) / scale), -hi - 1, hi).astype(np.int64)


def _affine(x, lo, hi):
    """Scale, zero point and codes of affine quantization of ``x`` to codes lo..hi (range incl. 0)."""
    xmin, xmax = np.float32(min(x.min(), 0.0)), np.float32(max(x.max(), 0.0))
    scale = (xmax - xmin) / np.float32(hi - lo)
    zero = int(np.clip(np.round(np.float32(lo) - xmin / scale), lo, hi))
    return scale, zero, np.clip(np.round(_f32(x) / scale) + zero, lo, hi).astype(np.int64)


def _dense(mult, units, x, **kw):
    layer = AMDense(units, use_bias=False, multiplier=mult, backend=BACKEND,
                    kernel_initializer=keras.initializers.RandomNormal(seed=3), **kw)
    layer.build(x.shape)
    return layer


# ------------------------------------------------------------------------------ forward

def test_int8_dense_equals_fake_quant_with_int64_sums():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 9)).astype(np.float32)
    layer = _dense("int8", 5, x)
    w = layer.kernel.numpy()
    y = layer(x).numpy()
    sx, qx = _symmetric(x, 127)
    sw, qw = _symmetric(w, 127)
    want = (sx * sw) * (qx @ qw).astype(np.float32)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=0)
    # the stock float product is close (8-bit quantization error only)
    np.testing.assert_allclose(y, x @ w, atol=0.05 * np.abs(x @ w).max())


def test_unsigned_circuit_is_affine_with_exact_zero_point_terms():
    mult = multipliers.get("mitchell8u")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(7, 11)).astype(np.float32)
    layer = _dense(mult, 4, x)
    w = layer.kernel.numpy()
    y = layer(x).numpy()
    sx, zx, qx = _affine(x, 0, 255)
    sw, zw, qw = _affine(w, 0, 255)
    t = mult.table.astype(np.int64)
    total = t[qx[:, :, None], qw[None, :, :]].sum(axis=1) - zw * qx.sum(1)[:, None] - zx * qw.sum(0)[None, :] \
        + zx * zw * x.shape[1]
    np.testing.assert_allclose(y, (sx * sw) * total.astype(np.float32), rtol=1e-6, atol=0)


def test_sign_magnitude_runs_an_unsigned_circuit_on_signed_data():
    mult = multipliers.get("mitchell8u")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 8)).astype(np.float32)
    layer = _dense(mult, 3, x, quantization=approxsim.Quantization(codes="sign-magnitude"))
    w = layer.kernel.numpy()
    sx, qx = _symmetric(x, 255)
    sw, qw = _symmetric(w, 255)
    t = mult.table.astype(np.int64)
    prod = np.sign(qx)[:, :, None] * np.sign(qw)[None] * t[np.abs(qx)[:, :, None], np.abs(qw)[None]]
    np.testing.assert_allclose(layer(x).numpy(), (sx * sw) * prod.sum(1).astype(np.float32), rtol=1e-6)


@pytest.mark.skipif(not cpu_ok, reason=f"cpu backend not usable: {cpu_reason}")
@pytest.mark.parametrize("mult", ["bam8u_v6", "drum8u_k4", "int8"])
def test_approximate_conv_layer_equals_the_reference_backend(mult):
    rng = np.random.default_rng(4)
    x = np.maximum(rng.normal(size=(2, 9, 9, 3)), 0).astype(np.float32)  # ReLU activations
    layers = [AMConv2D(4, 3, strides=2, padding="same", multiplier=mult, backend=be, use_bias=False,
                       kernel_initializer=keras.initializers.RandomNormal(seed=5)) for be in ("cpu", "reference")]
    got, want = (layer(x).numpy() for layer in layers)
    np.testing.assert_array_equal(got, want)
    # the integer part: the same codes through the reference integer conv, then the same dequantization
    m = multipliers.get(mult)
    w = layers[0].kernel.numpy()
    if m.signed:
        sx, qx = _symmetric(x, 127)
        sw, qw = _symmetric(w, 127)
        total = approxsim.conv2d(qx, qw, strides=2, padding="SAME", multiplier=m, backend="reference")
    else:
        sx, zx, qx = _affine(x, 0, 255)
        sw, zw, qw = _affine(w, 0, 255)
        assert zx == 0  # ReLU data: the code of 0.0 is 0, so SAME zero padding is code 0
        total = approxsim.conv2d(qx, qw, strides=2, padding="SAME", multiplier=m, backend="reference").astype(np.int64)
        total -= zw * approxsim.conv2d(qx, np.ones_like(qw), strides=2, padding="SAME", multiplier="int16",
                                       backend="reference").astype(np.int64)
    np.testing.assert_allclose(got, (sx * sw) * np.asarray(total).astype(np.float32), rtol=1e-6,
                               atol=1e-6 * np.abs(got).max())


def _affine_conv_numpy(qx, qw, table, zx, zw, pads, groups, strides=(1, 1)):
    """Exact int64 sums of an affine convolution, by its definition: the input padded with the zero
    point ``zx``, then per output ``sum T[q_x][q_w] - zw q_x - zx q_w + zx zw`` over its window."""
    qx = np.pad(qx, [(0, 0), *pads, (0, 0)], constant_values=zx)
    n, h, w, c = qx.shape
    kh, kw, cig, cout = qw.shape
    cog = cout // groups
    oh, ow = (h - kh) // strides[0] + 1, (w - kw) // strides[1] + 1
    out = np.zeros((n, oh, ow, cout), np.int64)
    for i in range(oh):
        for j in range(ow):
            win = qx[:, i * strides[0]:i * strides[0] + kh, j * strides[1]:j * strides[1] + kw, :]
            for co in range(cout):
                g = co // cog
                xs = win[..., g * cig:(g + 1) * cig].reshape(n, -1)
                ws = qw[..., co].reshape(-1)
                terms = table[xs, ws[None]] - zw * xs - zx * ws[None] + zx * zw
                out[:, i, j, co] = terms.sum(axis=1)
    return out


@pytest.mark.parametrize("case", ["conv", "grouped", "depthwise", "conv1d-causal", "conv1d-same"])
def test_affine_convolutions_pad_with_the_zero_point_and_match_their_definition(case):
    """Unsigned circuit, signed data: the zero point is not 0, so padding, the zero-point sums and
    their shapes (groups, depth multiplier, 1-D) all count."""
    mult = multipliers.get("mitchell8u")
    rng = np.random.default_rng(12)
    init = keras.initializers.RandomNormal(seed=13)
    common = dict(multiplier=mult, backend=BACKEND, use_bias=False)
    if case == "conv":
        layer, x = AMConv2D(3, 3, padding="same", kernel_initializer=init, **common), (2, 5, 6, 2)
    elif case == "grouped":
        layer, x = AMConv2D(4, (2, 3), padding="same", groups=2, kernel_initializer=init, **common), (2, 5, 5, 4)
    elif case == "depthwise":
        layer, x = AMDepthwiseConv2D(3, depth_multiplier=2, padding="same", depthwise_initializer=init,
                                     **common), (2, 5, 5, 3)
    else:
        layer, x = AMConv1D(3, 3, padding=case.split("-")[1], kernel_initializer=init, **common), (2, 7, 2)
    x = rng.normal(size=x).astype(np.float32)
    y = layer(x).numpy()
    w = layer.kernel.numpy()
    sx, zx, qx = _affine(x, 0, 255)
    sw, zw, qw = _affine(w, 0, 255)
    assert zx > 0 and zw > 0
    groups = {"grouped": 2, "depthwise": x.shape[-1]}.get(case, 1)
    if case == "depthwise":
        qw = qw.reshape(3, 3, 1, -1)  # output channel c * DM + m uses filter [..., c, m]
    if case.startswith("conv1d"):
        qx, qw = qx[:, None], qw[None]
        pads = [(0, 0), (2, 0) if case.endswith("causal") else (1, 1)]
    else:
        pads = [((k - 1) // 2, k // 2) for k in qw.shape[:2]]
    total = _affine_conv_numpy(qx, qw, mult.table.astype(np.int64), zx, zw, pads, groups)
    want = ((sx * sw) * total.astype(np.float32)).reshape(y.shape)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6 * np.abs(want).max())


def test_every_layer_runs_integer_products_close_to_float():
    rng = np.random.default_rng(6)
    cases = [
        (AMConv2D, dict(filters=4, kernel_size=3, padding="same"), (2, 8, 8, 3)),
        (AMDepthwiseConv2D, dict(kernel_size=3, depth_multiplier=2), (2, 8, 8, 3)),
        (AMSeparableConv2D, dict(filters=4, kernel_size=3), (2, 8, 8, 3)),
        (AMEinsumDense, dict(equation="abc,cd->abd", output_shape=(5, 4)), (2, 5, 6)),
    ]
    for cls, kw, shape in cases:
        x = rng.normal(size=shape).astype(np.float32)
        am = cls(**kw, multiplier="int16", backend=BACKEND)
        stock = getattr(keras.layers, cls.__name__[2:])(**kw)
        want = stock(x)
        am(x)
        stock_names = [v.name for v in stock.weights]
        for v in am.weights:  # same stock weights; the range weights (am_*) stay
            if v.name in stock_names:
                v.assign(stock.weights[stock_names.index(v.name)])
        got = am(x).numpy()
        np.testing.assert_allclose(got, want, atol=2e-3 * np.abs(want).max() + 1e-6, err_msg=cls.__name__)
    mha = AMMultiHeadAttention(2, 4, multiplier="int16", backend=BACKEND)
    q = rng.normal(size=(2, 5, 8)).astype(np.float32)
    stock = keras.layers.MultiHeadAttention(2, 4)
    want = stock(q, q).numpy()
    mha(q, q)
    for v, s in zip([v for v in mha.weights if not v.name.startswith("am_")], stock.weights):
        v.assign(s)
    np.testing.assert_allclose(mha(q, q).numpy(), want, atol=2e-3 * np.abs(want).max())


# ------------------------------------------------------------------------------ gradients

def _grads(layer, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(y * tf.constant(np.linspace(-1, 1, int(np.prod(y.shape))).reshape(y.shape),
                                             tf.float32))
    dx, dw = tape.gradient(loss, [x, layer.kernel])
    return dx.numpy(), dw.numpy(), np.linspace(-1, 1, int(np.prod(y.shape))).reshape(y.shape).astype(np.float32)


def test_ste_gradients_are_those_of_the_fake_quantized_product():
    rng = np.random.default_rng(7)
    x = rng.normal(size=(6, 9)).astype(np.float32)
    layer = _dense("int8", 5, x)
    dx, dw, dy = _grads(layer, x)
    w = layer.kernel.numpy()
    sx, qx = _symmetric(x, 127)  # a batch's own range: every value inside it
    sw, qw = _symmetric(w, 127)
    np.testing.assert_allclose(dx, dy @ (qw * sw).T, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(dw, (qx * sx).T @ dy, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("mult", ["int8", "mitchell8u"])
def test_ste_gradients_of_a_conv_are_those_of_the_fake_quantized_conv(mult):
    """Symmetric (int8) and affine (unsigned) codes: the STE gradients of AMConv2D equal TF's conv2d
    gradients at the dequantized operands, computed here from NumPy codes."""
    rng = np.random.default_rng(14)
    x = rng.normal(size=(2, 6, 6, 3)).astype(np.float32)
    layer = AMConv2D(4, 3, padding="same", multiplier=mult, backend=BACKEND, use_bias=False,
                     kernel_initializer=keras.initializers.RandomNormal(seed=15))
    layer.build(x.shape)
    dx, dw, dy = _grads(layer, x)
    w = layer.kernel.numpy()
    if multipliers.get(mult).signed:
        (sx, qx), (sw, qw) = _symmetric(x, 127), _symmetric(w, 127)
        fx, fw = qx * sx, qw * sw
    else:
        (sx, zx, qx), (sw, zw, qw) = _affine(x, 0, 255), _affine(w, 0, 255)
        fx, fw = (qx - zx) * sx, (qw - zw) * sw
    tx, tw = tf.constant(fx, tf.float32), tf.constant(fw, tf.float32)
    with tf.GradientTape() as tape:
        tape.watch([tx, tw])
        y = tf.nn.conv2d(tx, tw, 1, "SAME")
    want_dx, want_dw = tape.gradient(y, [tx, tw], output_gradients=tf.constant(dy))
    np.testing.assert_allclose(dx, want_dx.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, want_dw.numpy(), rtol=1e-5, atol=1e-5)


def test_ste_clips_outside_the_calibrated_range():
    x = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4)
    layer = _dense("int8", 2, x)
    with approxsim.quantization.calibrating():
        layer(x * 0.5)  # calibrated to [-0.5, 0.5]
    xt = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        loss = tf.reduce_sum(layer(xt))  # inference: the calibrated range
    dx = tape.gradient(loss, xt).numpy()
    s = np.float32(0.5) / np.float32(127)
    outside = np.abs(x / s) > 127.5
    assert outside.any() and (~outside).any()
    assert np.all(dx[outside] == 0) and np.all(dx[~outside] != 0)


def _finite_differences(table):
    """(T[a+1][b] - T[a-1][b]) / 2 in code order (one-sided at the ends), and the same along b."""
    t = table.astype(np.float64)
    da, db = np.empty_like(t), np.empty_like(t)
    da[1:-1] = (t[2:] - t[:-2]) / 2
    da[0], da[-1] = t[1] - t[0], t[-1] - t[-2]
    db[:, 1:-1] = (t[:, 2:] - t[:, :-2]) / 2
    db[:, 0], db[:, -1] = t[:, 1] - t[:, 0], t[:, -1] - t[:, -2]
    return da, db


def test_table_gradients_are_the_finite_differences_of_the_table():
    mult = multipliers.get("drum8u_k4")  # unsigned: code order is pattern order
    rng = np.random.default_rng(8)
    x = np.abs(rng.normal(size=(5, 7))).astype(np.float32)
    layer = _dense(mult, 3, x, backward="table")
    dx, dw, dy = _grads(layer, x)
    w = layer.kernel.numpy()
    sx, zx, qx = _affine(x, 0, 255)
    sw, zw, qw = _affine(w, 0, 255)
    da, db = _finite_differences(mult.table)
    ga = da[qx[:, :, None], qw[None]] - zw  # (M, K, N): d f / d q_x minus the zero-point term
    gb = db[qx[:, :, None], qw[None]] - zx
    want_dx = np.einsum("mn,mkn->mk", dy * sw, ga)
    want_dw = np.einsum("mn,mkn->kn", dy * sx, gb)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(dw, want_dw, rtol=1e-4, atol=1e-5)
    # and they differ from the STE ones for this ragged circuit
    ste = _dense(mult, 3, x)
    ste.kernel.assign(w)
    assert not np.allclose(_grads(ste, x)[0], dx, rtol=1e-3)


def test_table_gradients_of_a_conv_equal_those_of_its_patches_as_a_dense():
    mult = multipliers.get("bam8u_v6")
    rng = np.random.default_rng(9)
    x = np.abs(rng.normal(size=(2, 5, 5, 2))).astype(np.float32)
    conv = AMConv2D(3, 2, multiplier=mult, backward="table", use_bias=False, backend=BACKEND)
    conv.build(x.shape)
    dx, dw, dy = _grads(conv, x)
    patches = tf.image.extract_patches(x, [1, 2, 2, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID").numpy()
    dense = _dense(mult, 3, patches.reshape(-1, 8), backward="table")
    dense.kernel.assign(conv.kernel.numpy().reshape(8, 3))
    p = tf.constant(patches.reshape(-1, 8))
    with tf.GradientTape() as tape:
        tape.watch(p)
        loss = tf.reduce_sum(dense(p, training=True) * dy.reshape(-1, 3))
    dp, dk = tape.gradient(loss, [p, dense.kernel])
    np.testing.assert_allclose(dw.reshape(8, 3), dk.numpy(), rtol=1e-5, atol=1e-6)
    assert np.abs(dx).sum() > 0


def test_table_backward_where_it_does_not_apply_is_a_clear_error():
    layer = AMDepthwiseConv2D(3, multiplier="mitchell8u", backward="table", backend=BACKEND)
    with pytest.raises(ValueError, match='backward="table" is available for AMDense'):
        layer(np.ones((1, 5, 5, 2), np.float32))


# ------------------------------------------------------------------------------ PTQ, report, errors

def _small_model():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu", name="conv1"),
        keras.layers.Flatten(),
        keras.layers.Dense(3, name="fc"),
    ])


def test_quantize_calibrates_the_ranges_and_reports_them():
    rng = np.random.default_rng(10)
    model = _small_model()
    x = rng.normal(size=(130, 8, 8, 1)).astype(np.float32)
    q = approxsim.quantize(model, multiplier={"conv*": "mitchell8u", "*": "int8"}, calibration_data=x,
                           batch_size=50, backend=BACKEND)
    conv_range = q.get_layer("conv1").weights[2].numpy()  # after kernel and bias
    np.testing.assert_array_equal(conv_range, [x.min(), x.max()])  # minmax over the 3 batches
    assert q.get_layer("fc").weights[3].numpy() == 3.0  # batches seen
    lo, hi = q.get_layer("fc").weights[2].numpy()  # the fc input comes after a ReLU
    assert lo == 0.0 and hi > 0.0
    text = str(approxsim.report(q))
    assert "mitchell8u" in text and "affine" in text and "input range" in text and "symmetric" in text
    # calibrated inference is deterministic and close to the float model for the exact int8 layer
    np.testing.assert_array_equal(q(x[:4]).numpy(), q(x[:4]).numpy())


def test_quantize_rejects_empty_calibration_data():
    with pytest.raises(ValueError, match="at least one example"):
        approxsim.quantize(_small_model(), multiplier="int8", calibration_data=np.zeros((0, 8, 8, 1), np.float32))


def test_float_tensors_to_an_integer_op_are_a_clear_error():
    from approxsim.ops import am_matmul

    with pytest.raises(TypeError, match="integer multiplier.*Quantize the operands first"):
        am_matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32), multiplier="int8")


def test_integer_ops_return_exact_int64_sums():
    from approxsim.ops import am_conv2d, am_matmul

    rng = np.random.default_rng(11)
    a, b = rng.integers(-128, 128, (4, 300)), rng.integers(-128, 128, (300, 3))
    y = am_matmul(a, b, multiplier="int8")
    assert y.dtype == tf.int64
    np.testing.assert_array_equal(y.numpy(), a @ b)
    x, w = rng.integers(0, 256, (1, 5, 5, 2)), rng.integers(0, 256, (3, 3, 2, 2))
    got = am_conv2d(x, w, padding="SAME", multiplier="mitchell8u").numpy()
    np.testing.assert_array_equal(got, approxsim.conv2d(x, w, padding="SAME", multiplier="mitchell8u",
                                                        backend="reference"))


@pytest.mark.parametrize("options, match", [
    (dict(codes="log"), "codes must be one of"),
    (dict(weights="per-row"), "weights must be one of"),
    (dict(calibration="max"), "calibration must be one of"),
    (dict(momentum=1.0), "momentum must be"),
    (dict(percentile=40), "percentile must be"),
])
def test_bad_quantization_options(options, match):
    with pytest.raises(ValueError, match=match):
        approxsim.Quantization(**options)


def test_sign_magnitude_on_a_signed_circuit_is_refused():
    with pytest.raises(ValueError, match="serves unsigned circuits"):
        AMDense(2, multiplier="int8", quantization=approxsim.Quantization(codes="sign-magnitude"))


def test_bad_backward_for_an_integer_multiplier_names_the_modes():
    with pytest.raises(ValueError, match='"ste".*"table".*"exact"'):
        AMDense(2, multiplier="int8", backward="approx2")


# ------------------------------------------------------------------------------ serialization

def test_keras_round_trip_with_a_user_integer_multiplier_in_a_fresh_process(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("APPROXSIM_CACHE", str(cache))
    src = tmp_path / "trunc_mul.c"
    src.write_text("#include <stdint.h>\n"
                   "uint16_t trunc_mul(uint8_t a, uint8_t b) { return (uint16_t)((a * b) & ~0x3F); }\n")
    multipliers.register_c(src, function="trunc_mul", name="trunc_mul_u8", replace=True)
    quant = approxsim.Quantization(weights="per-channel", calibration="moving-average", momentum=0.5)
    model = keras.Sequential([keras.Input((6, 6, 2)),
                              AMConv2D(3, 3, multiplier="trunc_mul_u8", quantization=quant, backend=BACKEND),
                              keras.layers.Flatten(),
                              AMDense(2, multiplier="trunc_mul_u8", quantization=quant, backend=BACKEND)])
    x = np.abs(np.random.default_rng(12).normal(size=(8, 6, 6, 2))).astype(np.float32)
    model(x, training=True)
    model(x * 1.5, training=True)  # moving-average ranges
    want = model(x).numpy()
    path = tmp_path / "m.keras"
    model.save(path)
    np.save(tmp_path / "x.npy", x)
    loaded = keras.models.load_model(path)
    assert loaded.layers[0].quantization == quant
    np.testing.assert_array_equal(loaded(x).numpy(), want)
    code = textwrap.dedent(f"""
        import json, numpy as np, approxsim, keras
        m = keras.models.load_model({str(path)!r})
        y = m(np.load({str(tmp_path / 'x.npy')!r})).numpy()
        np.save({str(tmp_path / 'y.npy')!r}, y)
        print(json.dumps(m.layers[0].quantization.get_config()))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "APPROXSIM_CACHE": str(cache)})
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1]) == quant.get_config()
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), want)


# ------------------------------------------------------------------------------ training

@pytest.mark.slow
def test_lenet5_qat_with_mul8u_2ac_is_within_a_point_of_int8(shared_dir):
    from test_mnist import lenet5, load_mnist_test_set

    folder = os.path.join(shared_dir, "data", "mnist")
    evo = os.path.join(shared_dir, "reference", "evoapprox", "mul8u_2AC.c")
    if not (os.path.isfile(os.path.join(folder, "t10k-images-idx3-ubyte.gz")) and os.path.isfile(evo)):
        pytest.skip("needs ../shared/data/mnist and ../shared/reference/evoapprox")
    if not cpu_ok:
        pytest.skip(f"cpu backend not usable: {cpu_reason}")
    try:
        mult = multipliers.get("mul8u_2AC")
    except approxsim.UnknownMultiplierError:
        mult = multipliers.register_c(evo, function="mul8u_2AC", bits=8, signed=False)
    x, y = load_mnist_test_set(folder)
    order = np.random.default_rng(0).permutation(8000)
    accuracy = {}
    for name in ("int8", mult.name):
        model = lenet5(name)
        model.compile(optimizer=keras.optimizers.Adam(2e-3),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
        model.fit(x[:8000][order], y[:8000][order], batch_size=32, epochs=1, shuffle=False, verbose=0)
        accuracy[name] = model.evaluate(x[8000:], y[8000:], verbose=0)[1]
    assert accuracy["int8"] >= 0.9, accuracy
    assert accuracy[mult.name] >= accuracy["int8"] - 0.01, accuracy
