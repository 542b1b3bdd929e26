"""Bad input gets a clear error (never a crash, a hang or a silently different result).

Each test reproduces a defect a skeptical user found and checks the fixed behaviour.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

import approxsim
from approxsim import functional, multipliers
from approxsim.geometry import conv_geometry
from approxsim.lut import load_table, save_table


def _cli(*args, env=None, stdin=None):
    return subprocess.run([sys.executable, "-m", "approxsim.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


# 9 -------------------------------------------------------------------------------------------

CONV_OPS = ("conv2d", "conv2d_input_grad", "conv2d_filter_grad")


def _conv_call(op, x, w, geom_kwargs, backend):
    ishape, fshape = x.shape, w.shape
    if op == "conv2d":
        return functional.conv2d(x, w, multiplier="mbm7", backend=backend, **geom_kwargs)
    g = conv_geometry(ishape, fshape, **geom_kwargs)
    dy = np.ones(g.output_shape, np.float32)
    if op == "conv2d_input_grad":
        return functional.conv2d_input_grad(dy, w, ishape, multiplier="mbm7", backend=backend, **geom_kwargs)
    return functional.conv2d_filter_grad(x, dy, fshape, multiplier="mbm7", backend=backend, **geom_kwargs)


def test_the_reported_huge_dilations_give_the_right_result():
    x, w = np.ones((2, 6, 6, 4), np.float32), np.ones((3, 3, 4, 8), np.float32)
    for dil in (10 ** 6, 2 ** 30):
        y = approxsim.conv2d(x, w, dilations=dil, padding="SAME", multiplier="mbm7", backend="cpu")
        np.testing.assert_array_equal(y, np.full((2, 6, 6, 8), 4.375, np.float32))  # the centre tap only
    with pytest.raises(ValueError, match="strides"):
        approxsim.conv2d(x, w, strides=2 ** 70, multiplier="mbm7", backend="cpu")


def _extreme_geometries(rng, count):
    big = [1, 2, 3, 7, 2 ** 20, 10 ** 6, 2 ** 30, 2 ** 31 + 1, 2 ** 40, 2 ** 62, 2 ** 70]
    for _ in range(count):
        n, h, w, c = rng.integers(1, 3), rng.integers(1, 8), rng.integers(1, 8), rng.integers(1, 4)
        kh, kw = rng.integers(1, 4), rng.integers(1, 4)
        groups = int(rng.choice([1, c]))
        kwargs = {"strides": (int(rng.choice(big[:6] + [1] * 6)), int(rng.choice(big[:6] + [1] * 6))),
                  "dilations": (int(rng.choice(big + [1] * 6)), int(rng.choice(big + [1] * 6))), "groups": groups}
        choice = rng.integers(0, 4)
        pads = big[:3] + [2 ** 62, 2 ** 70]  # huge explicit padding: refused, or a small output
        kwargs["padding"] = ("SAME", "VALID")[choice] if choice < 2 else \
            ((int(rng.choice(pads)), int(rng.integers(0, 3))), (int(rng.integers(0, 3)), int(rng.choice(pads))))
        yield (int(n), int(h), int(w), int(c)), (int(kh), int(kw), int(c) // groups, 2 * groups), kwargs


@pytest.mark.parametrize("op", CONV_OPS)
def test_fuzz_extreme_geometries_on_every_backend(op, fast_backend):
    """Random extreme strides, dilations and paddings: the reference result or a clear ValueError."""
    rng = np.random.default_rng(CONV_OPS.index(op))
    checked = 0
    for ishape, fshape, kwargs in _extreme_geometries(rng, 60):
        x = rng.standard_normal(ishape).astype(np.float32)
        w = rng.standard_normal(fshape).astype(np.float32)
        try:
            want = _conv_call(op, x, w, kwargs, "reference")
        except ValueError as e:
            with pytest.raises(ValueError) as info:
                _conv_call(op, x, w, kwargs, fast_backend)
            assert str(info.value) == str(e)
            continue
        got = _conv_call(op, x, w, kwargs, fast_backend)
        scale = _conv_call(op, np.abs(x), np.abs(w), kwargs, "reference") + 1e-30
        assert np.all(np.abs(got - want) <= 1e-5 * scale), (ishape, fshape, kwargs)
        checked += 1
    assert checked >= 10


def test_a_result_larger_than_memory_is_refused_clearly():
    x, w = np.ones((1, 2, 2, 1), np.float32), np.ones((1, 1, 1, 1), np.float32)
    for backend in ("reference", "cpu"):
        with pytest.raises(ValueError, match="GiB of float32, more than this machine"):
            approxsim.conv2d(x, w, padding=((2 ** 20, 2 ** 20), (2 ** 20, 0)), multiplier="mbm7", backend=backend)


def test_the_extension_refuses_inconsistent_or_overflowing_geometries():
    from approxsim import _cpu

    g = conv_geometry((1, 5, 5, 1), (3, 3, 1, 1), padding="SAME").fields()
    for field, value in (("dh", 2 ** 62), ("pad_top", 2 ** 62), ("n", -1), ("groups", 0), ("h", 2 ** 61)):
        with pytest.raises(ValueError, match="geometry"):
            _cpu.Geometry(**{**g, field: value})


# 12 ------------------------------------------------------------------------------------------

def test_a_saved_model_loads_after_import_approxsim_alone(tmp_path):
    keras = pytest.importorskip("keras")
    from approxsim.layers import AMConv2D

    path = tmp_path / "m.keras"
    keras.Sequential([keras.Input((6, 6, 1)), AMConv2D(2, 3, multiplier="mbm7")]).save(path)
    for order in ("import approxsim, keras", "import keras, approxsim"):
        code = f"{order}\nm = keras.models.load_model({str(path)!r})\nprint(type(m.layers[0]).__name__)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
        assert out.returncode == 0 and out.stdout.split()[-1] == "AMConv2D", out.stderr[-2000:]


# 13 ------------------------------------------------------------------------------------------

def test_multiply_takes_a_backend(fast_backend):
    a = np.random.default_rng(1).standard_normal((5, 7)).astype(np.float32)
    b = np.random.default_rng(2).standard_normal((7,)).astype(np.float32)
    want = approxsim.multiply(a, b, multiplier="mbm7", backend="reference")
    got = approxsim.multiply(a, b, multiplier="mbm7", backend=fast_backend)
    np.testing.assert_array_equal(np.asarray(got).view(np.uint32), want.view(np.uint32))
    assert approxsim.multiply(1.5, 1.25, multiplier="mbm7", backend=fast_backend).shape == ()


# 14 ------------------------------------------------------------------------------------------

def test_convert_names_every_layer_that_multiplies_and_stays_exact():
    keras = pytest.importorskip("keras")
    a, b = keras.Input((4,)), keras.Input((4,))
    d = keras.layers.Dense(4, name="dense")(a)
    dot = keras.layers.Dot(axes=1, name="dot")([d, b])
    mul = keras.layers.Multiply(name="mul")([d, b])
    model = keras.Model([a, b], [dot, mul])
    with pytest.warns(UserWarning, match="dot") as record:
        new = approxsim.convert(model, multiplier="mbm7")
    assert any("mul" in str(w.message) for w in record)
    rep = approxsim.report(new)
    assert rep["dot"].status == "exact" and rep["mul"].status == "exact" and rep["dense"].status == "approximate"
    assert "no approximate Dot" in rep["dot"].reason


# 15 and 16 -----------------------------------------------------------------------------------

@pytest.mark.parametrize("timeout", ["inf", "nan", "0", "-5", "soon"])
def test_timeout_is_validated(tmp_path, timeout):
    src = tmp_path / "t.c"
    src.write_text("float t_mul(float a, float b) { return a * b; }\n")
    out = _cli("register", str(src), "-f", "t_mul", "-m", "3", "--timeout", timeout)
    assert out.returncode == 2 and "Traceback" not in out.stderr and "timeout" in out.stderr
    with pytest.raises((ValueError, TypeError), match="timeout"):
        multipliers.register_c(src, function="t_mul", mantissa_bits=3, timeout=float(timeout)
                               if timeout != "soon" else timeout)


def test_output_piped_into_head_ends_quietly():
    cmd = f"{sys.executable} -m approxsim.cli multipliers | head -n 2"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert "BrokenPipeError" not in out.stderr and "Traceback" not in out.stderr
    assert len(out.stdout.splitlines()) == 2


# 17 ------------------------------------------------------------------------------------------

def test_unknown_multiplier_suggests_close_names_briefly():
    with pytest.raises(approxsim.UnknownMultiplierError) as info:
        multipliers.get("mbm77")
    msg = str(info.value)
    assert "Did you mean 'mbm7'" in msg and "approxsim multipliers" in msg and len(msg) < 500


# 18 ------------------------------------------------------------------------------------------

def test_loose_argument_types_are_refused_clearly(tmp_path):
    x, w = np.ones((1, 5, 5, 2), np.float32), np.ones((3, 3, 1, 4), np.float32)
    with pytest.raises(TypeError, match="strides"):
        approxsim.conv2d(x, w, strides=1.5, multiplier="mbm7")
    y = approxsim.conv2d(x, w, groups=np.int64(2), multiplier="mbm7")  # NumPy ints are ints
    assert y.shape == (1, 3, 3, 4)
    with pytest.raises(TypeError, match="transpose_a"):
        approxsim.matmul(np.ones((2, 2)), np.ones((2, 2)), multiplier="mbm7", transpose_a="no")
    with pytest.raises(TypeError, match="input_shape"):
        approxsim.conv2d_input_grad(np.ones((1, 3, 3, 4)), w, (1, 5.0, 5, 2), groups=2, multiplier="mbm7")
    np.save(tmp_path / "x.npy", np.ones(3))
    with pytest.raises(approxsim.TableFileError, match="not an approxsim table"):
        load_table(tmp_path / "x.npy")
    for bad in (0, True, "4", 12):
        with pytest.raises(ValueError, match="mantissa_bits"):
            save_table(tmp_path / "t", np.ones((2, 2)), bad)
    with pytest.raises(ValueError, match="mantissa_bits"):
        multipliers.from_approxtrain(tmp_path / "MBM_7.bin", mantissa_bits="7")


def test_a_stored_out_of_range_width_is_reported_as_such(tmp_path):
    path = save_table(tmp_path / "t", np.ones((2, 2)), 1)
    data = dict(np.load(path))
    data["mantissa_bits"] = np.array(99)
    np.savez(path, **data)
    with pytest.raises(approxsim.TableFileError, match="declares mantissa_bits=99"):
        load_table(path)


def test_a_declared_but_undefined_function_is_named_as_such(tmp_path):
    src = tmp_path / "decl.c"
    src.write_text("float decl(float a, float b);\n")
    with pytest.raises(approxsim.CompileError, match="never defines"):
        multipliers.register_c(src, function="decl", mantissa_bits=3)


def test_a_path_with_a_quote_is_named_as_such(tmp_path):
    folder = tmp_path / 'say "hi"'
    folder.mkdir()
    src = folder / "q.c"
    src.write_text("float q_mul(float a, float b) { return a * b; }\n")
    with pytest.raises(ValueError, match="quote"):
        multipliers.register_c(src, function="q_mul", mantissa_bits=3)


# 19 ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [{"--model": "nosuchnet"}, {"--data-dir": "/nonexistent/mnist"},
                                 {"--dataset": "nosuchdata"}])
def test_a_sweep_that_fails_validation_touches_nothing(tmp_path, bad):
    out_dir = tmp_path / "sweep"
    options = {"--model": "lenet5", "--dataset": "digits", "--multipliers": "fp32", "--epochs": "1",
               "--out": str(out_dir), **bad}
    out = _cli("sweep", *[v for pair in options.items() for v in pair])
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert not out_dir.exists()
