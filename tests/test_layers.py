"""approxsim.layers: stock equivalence (fp32), backends against the reference, config, save/load, training."""

import os

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import approxsim  # noqa: E402
from approxsim import functional  # noqa: E402
from approxsim.layers import (AMConv1D, AMConv2D, AMDense, AMDepthwiseConv2D, AMEinsumDense,  # noqa: E402
                              AMMultiHeadAttention, AMSeparableConv2D)

import stock  # noqa: E402  (tests/stock.py)

REL = 1e-5


def _normal(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


# (id, stock class, approxsim class, constructor kwargs, input shapes). Dilated convolutions compare
# with stock layers that apply the filter zero-inserted (tests/stock.py): the same function, with
# gradients on every CPU (TF without oneDNN has no dilated conv gradients).
LAYERS = [
    ("dense", keras.layers.Dense, AMDense, dict(units=4), [(3, 5)]),
    ("dense_rank3", keras.layers.Dense, AMDense, dict(units=3, activation="relu"), [(2, 3, 5)]),
    ("conv2d_strided", keras.layers.Conv2D, AMConv2D, dict(filters=4, kernel_size=3, strides=2, padding="same"),
     [(2, 7, 6, 3)]),
    ("conv2d_1x1", keras.layers.Conv2D, AMConv2D, dict(filters=3, kernel_size=1, use_bias=False), [(2, 4, 4, 5)]),
    ("conv2d_dilated", stock.ZeroInsertedConv2D, AMConv2D, dict(filters=2, kernel_size=3, dilation_rate=2),
     [(1, 8, 8, 2)]),
    ("depthwise", keras.layers.DepthwiseConv2D, AMDepthwiseConv2D,
     dict(kernel_size=3, depth_multiplier=2, strides=2, padding="same"), [(2, 6, 6, 3)]),
    ("conv1d_causal_dilated", stock.ZeroInsertedConv1D, AMConv1D,
     dict(filters=4, kernel_size=3, dilation_rate=2, padding="causal"), [(2, 9, 3)]),
    ("separable", keras.layers.SeparableConv2D, AMSeparableConv2D,
     dict(filters=4, kernel_size=3, strides=2, depth_multiplier=2, padding="same"), [(2, 7, 7, 3)]),
    ("einsum_dense", keras.layers.EinsumDense, AMEinsumDense,
     dict(equation="abc,cde->abde", output_shape=(None, 2, 3), bias_axes="de"), [(2, 4, 5)]),
    ("mha", keras.layers.MultiHeadAttention, AMMultiHeadAttention, dict(num_heads=2, key_dim=3),
     [(2, 4, 6), (2, 5, 6)]),
    ("mha_causal_masked", keras.layers.MultiHeadAttention, AMMultiHeadAttention,
     dict(num_heads=2, key_dim=2, value_dim=3, output_shape=4), [(1, 4, 6), (1, 4, 6)]),
]
IDS = [c[0] for c in LAYERS]


def _call(layer, inputs, case_id):
    if case_id == "mha_causal_masked":
        return layer(inputs[0], inputs[1], use_causal_mask=True)
    return layer(*inputs)


def run(layer, inputs, case_id, dy_seed=9):
    """Output, input gradients and weight gradients of ``sum(y * dy)``."""
    inputs = [tf.constant(v) for v in inputs]
    _call(layer, inputs, case_id)  # build
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        y = _call(layer, inputs, case_id)
    dy = tf.constant(_normal(dy_seed, *y.shape))
    grads = tape.gradient(y, inputs + layer.trainable_weights, output_gradients=dy)
    return y.numpy(), [g.numpy() for g in grads]


def assert_rel_close(actual, expected, rel=REL, floor=1e-30):
    """Close relative to the largest expected value (or ``floor``, for gradients that are zero in theory)."""
    scale = max(np.abs(expected).max(), floor)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=rel * scale * 4)


def pair(case, multiplier="fp32", **am_kwargs):
    _, stock_cls, am_cls, kwargs, shapes = case
    inputs = [_normal(i, *s) for i, s in enumerate(shapes)]
    stock = stock_cls(**kwargs)
    am = am_cls(**kwargs, multiplier=multiplier, **am_kwargs)
    _call(stock, [tf.constant(v) for v in inputs], case[0])
    _call(am, [tf.constant(v) for v in inputs], case[0])
    am.set_weights([w + 0.1 * _normal(k, *w.shape) for k, w in enumerate(stock.get_weights())])
    stock.set_weights(am.get_weights())
    return stock, am, inputs


@pytest.mark.parametrize("case", LAYERS, ids=IDS)
def test_fp32_equals_stock_keras(case):
    stock, am, inputs = pair(case)
    y0, g0 = run(stock, inputs, case[0])
    y1, g1 = run(am, inputs, case[0])
    assert_rel_close(y1, y0)
    assert len(g0) == len(g1)
    floor = 0.01 * max(np.abs(g).max() for g in g0)  # e.g. the key bias of attention has no gradient
    for a, b in zip(g1, g0):
        assert_rel_close(a, b, floor=floor)


# Layers whose approximate products feed other approximate products (attention: scores, then the
# weighted values; separable: depthwise, then pointwise). Sums are float32 in an unspecified order
# (DESIGN section 1), so a last-bit difference of one op's sum can move a later product to the next
# table entry (mbm7: 2^-7 of it): such layers are compared op by op, each call of the fast backend
# against the reference kernels on the same operands.
CHAINED = {"mha", "mha_causal_masked", "separable"}
_KERNEL_CALLS = ("matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad")


def record_kernel_calls(monkeypatch, backend):
    """Every kernel call on ``backend`` from now on: (kernels, method, operands, keywords, result)."""
    from approxsim.backends.base import Kernels

    calls = []
    for method in _KERNEL_CALLS:
        original = getattr(Kernels, method)

        def recorded(self, *args, _original=original, _method=method, **kwargs):
            result = _original(self, *args, **kwargs)
            if self.backend.name == backend:
                operands = [np.array(a) for a in args[:2]]  # then the geometry, for convolutions
                calls.append((self, _method, operands + list(args[2:]), kwargs, np.array(result)))
            return result

        monkeypatch.setattr(Kernels, method, recorded)
    return calls


def assert_calls_match_reference(calls):
    """Each recorded call equals the reference kernels' on its operands, within 1e-5 of sum(|products|)."""
    from approxsim import backends

    assert calls, "the layer made no kernel call on the fast backend"
    for kernels, method, args, kwargs, result in calls:
        ref = backends.bind(kernels.multiplier, "reference")
        expected = getattr(ref, method)(*args, **kwargs)
        bound = getattr(ref, method)(*[np.abs(a) for a in args[:2]], *args[2:], **kwargs)  # sign-symmetric table
        np.testing.assert_array_less(np.abs(result - expected), 1e-5 * bound + 1e-30, err_msg=method)


@pytest.mark.parametrize("backward", ["approx", "exact"])
@pytest.mark.parametrize("case", LAYERS, ids=IDS)
def test_table_equals_reference_backend(case, backward, fast_backend, monkeypatch):
    _, am, inputs = pair(case, "mbm7", backward=backward, backend=fast_backend)
    ref = type(am).from_config({**am.get_config(), "backend": "reference"})
    _call(ref, [tf.constant(v) for v in inputs], case[0])
    ref.set_weights(am.get_weights())
    y0, g0 = run(ref, inputs, case[0])
    calls = record_kernel_calls(monkeypatch, fast_backend)
    y1, g1 = run(am, inputs, case[0])
    assert_calls_match_reference(calls)
    if case[0] in CHAINED:
        return
    assert_rel_close(y1, y0)
    floor = 0.01 * max(np.abs(g).max() for g in g0)  # e.g. the key bias of attention has no gradient
    for a, b in zip(g1, g0):
        assert_rel_close(a, b, floor=floor)


@pytest.mark.parametrize("backward", ["approx", "exact"])
def test_dense_rank3_against_functional_api(backward):
    """Rank > 2 inputs are approximate too (ApproxTrain's denseam silently fell back to exact)."""
    layer = AMDense(3, multiplier="mbm7", backward=backward, use_bias=False)
    x = _normal(1, 2, 4, 5)
    y, (dx, dw) = run(layer, [x], "dense_rank3")
    k = layer.get_weights()[0]
    dy = _normal(9, *y.shape)
    gm = "mbm7" if backward == "approx" else "fp32"
    np.testing.assert_allclose(y, functional.matmul(x, k, multiplier="mbm7", backend="reference"), atol=1e-5)
    assert np.abs(y - x @ k).max() > 1e-4
    np.testing.assert_allclose(dx, functional.matmul(dy, k, multiplier=gm, transpose_b=True, backend="reference"),
                               atol=1e-5)
    np.testing.assert_allclose(
        dw, functional.matmul(x.reshape(-1, 5), dy.reshape(-1, 3), multiplier=gm, transpose_a=True,
                              backend="reference"), atol=1e-5)


def test_conv2d_against_functional_api():
    layer = AMConv2D(3, 3, strides=2, padding="same", multiplier="mbm7")
    x = _normal(2, 2, 7, 7, 2)
    y, _ = run(layer, [x], "conv")
    k, b = layer.get_weights()
    expect = functional.conv2d(x, k, strides=2, padding="SAME", multiplier="mbm7", backend="reference") + b
    np.testing.assert_allclose(y, expect, atol=1e-5)


def test_marked_table_operand_order_in_a_layer():
    t = np.ones((8, 8), np.float32)
    t[1, 2], t[2, 1], t[4, 2], t[2, 4], t[1, 4], t[4, 1] = 2.5, 3.0, 1.75, 1.875, 1.375, 1.625
    layer = AMDense(1, use_bias=False, multiplier=approxsim.Multiplier("marked", 3, t))
    x = tf.constant([[1.125]])
    layer(x)
    layer.set_weights([np.array([[1.25]], np.float32)])
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
    dx, dw = tape.gradient(y, [x, layer.kernel], output_gradients=tf.constant([[1.5]]))
    assert (float(y[0, 0]), float(dx[0, 0]), float(dw[0, 0])) == (2.5, 1.75, 1.375)


# --- config, saving, training ------------------------------------------------------------------

@pytest.mark.parametrize("case", LAYERS, ids=IDS)
def test_get_config_round_trip(case):
    _, _, am_cls, kwargs, _ = case
    layer = am_cls(**kwargs, multiplier="mbm7", backward="exact")
    config = layer.get_config()
    assert config["multiplier"] == "mbm7" and config["backward"] == "exact"
    clone = am_cls.from_config(config)
    assert clone.get_config() == config
    assert clone.multiplier is approxsim.multipliers.get("mbm7")
    assert layer.supports_jit is False


def _all_layers_model(multiplier):
    inp = keras.Input((8, 8, 3))
    x = AMConv2D(4, 3, strides=2, padding="same", activation="relu", multiplier=multiplier)(inp)
    x = AMDepthwiseConv2D(3, padding="same", multiplier=multiplier)(x)
    x = AMConv2D(6, 1, multiplier=multiplier)(x)
    seq = keras.layers.Reshape((16, 6))(x)
    seq = AMConv1D(4, 3, dilation_rate=2, padding="causal", multiplier=multiplier)(seq)
    seq = AMMultiHeadAttention(2, 2, multiplier=multiplier)(seq, seq)
    x = keras.layers.GlobalAveragePooling1D()(seq)
    out = AMDense(3, multiplier=multiplier)(x)
    return keras.Model(inp, out)


def test_keras_file_round_trip(tmp_path):
    model = _all_layers_model("mbm7")
    x = _normal(3, 2, 8, 8, 3)
    path = os.path.join(tmp_path, "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(model(x).numpy(), loaded(x).numpy())
    kinds = {type(layer).__name__: layer.multiplier.name for layer in loaded.layers if hasattr(layer, "multiplier")}
    assert kinds == {"AMConv2D": "mbm7", "AMDepthwiseConv2D": "mbm7", "AMConv1D": "mbm7",
                     "AMMultiHeadAttention": "mbm7", "AMDense": "mbm7"}


def test_fit_lowers_the_loss():
    keras.utils.set_random_seed(0)  # the initial weights: the same run every time
    model = _all_layers_model("mbm7")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 8, 8, 3)).astype(np.float32)
    y = (x.mean(axis=(1, 2)) @ rng.normal(size=(3, 3))).argmax(-1)
    # the model ends in a Dense without softmax: its outputs are logits
    model.compile(optimizer=keras.optimizers.Adam(0.01),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, epochs=3, batch_size=16, verbose=0)
    assert model.evaluate(x, y, verbose=0) < before


def test_mixed_precision_computes_in_float32():
    x = _normal(4, 3, 6)
    layer = AMDense(4, multiplier="mbm7", dtype="mixed_float16")
    y = layer(x)
    assert y.dtype == tf.float16
    k, b = layer.get_weights()
    expect = functional.matmul(x.astype(np.float16).astype(np.float32), k, multiplier="mbm7", backend="reference")
    np.testing.assert_allclose(y.numpy().astype(np.float32), (expect.astype(np.float16) + b.astype(np.float16)),
                               rtol=2e-3, atol=2e-3)
    conv = AMConv2D(2, 3, multiplier="mbm7", dtype="mixed_bfloat16")
    assert conv(_normal(5, 1, 5, 5, 2)).dtype == tf.bfloat16


def test_errors():
    with pytest.raises(approxsim.UnknownMultiplierError, match=r"mbm1\.\.mbm11"):
        AMDense(3, multiplier="nope")
    with pytest.raises(ValueError, match="multiplier"):
        AMDense(3)
    with pytest.raises(ValueError, match="data_format"):
        AMConv2D(3, 3, data_format="channels_first", multiplier="fp32")
    with pytest.raises(ValueError, match="data_format"):
        AMConv1D(3, 3, data_format="channels_first", multiplier="fp32")
    with pytest.raises(ValueError, match="backward"):
        AMConv2D(3, 3, multiplier="fp32", backward="straight")
