"""Integer multipliers (DESIGN.md section 1b): registration of EvoApproxLib models, tables against
an independent C harness, exact sums on every backend and CPU method, and bad input.

Every expected value is computed independently: the C function called directly
(tests/c_harness.py), NumPy int64 products, or a NumPy gather from the table followed by an
int64 sum (never approxsim's own kernels).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import approxsim
import c_harness
from approxsim import multipliers
from approxsim.backends import backend_status
from approxsim.errors import CompileError
from approxsim.integer import IntFormat

EVO = Path(__file__).resolve().parents[2] / "shared" / "reference" / "evoapprox"
needs_evo = pytest.mark.skipif(not EVO.is_dir(), reason="../shared/reference/evoapprox is not beside the checkout")
cpu_ok, cpu_reason = backend_status("cpu")
needs_cpu = pytest.mark.skipif(not cpu_ok, reason=f"cpu backend not usable: {cpu_reason}")

# file, function, register_c options, harness signature, signed, bits
EVO_MODELS = [
    ("mul8u_1JFF.c", "mul8u_1JFF", {}, "u8", False, 8),
    ("mul8u_2AC.c", "mul8u_2AC", {"bits": 8, "signed": False}, "u64", False, 8),
    ("mul8u_FTA.c", "mul8u_FTA", {"bits": 8, "signed": False}, "u64", False, 8),
    ("mul8s_1KR3.c", "mul8s_1KR3", {}, "s8", True, 8),
    ("mul8s_1L2H.c", "mul8s_1L2H", {"signed": True}, "u8", True, 8),  # signed circuit, unsigned types
    ("mul12u_2EP.c", "mul12u_2EP", {"bits": 12}, "u16", False, 12),
]


def _evo(name):
    for entry in EVO_MODELS:
        if entry[1] == name:
            return entry
    raise KeyError(name)


def _registered(name):
    """The EvoApproxLib model, registered (once per session: the table is cached)."""
    file, function, options, _, _, _ = _evo(name)
    try:
        return multipliers.get(name)
    except approxsim.UnknownMultiplierError:
        return multipliers.register_c(EVO / file, function=function, **options)


def _harness_table(name):
    file, function, _, signature, signed, bits = _evo(name)
    raw = c_harness.exhaustive(EVO / file, function, signature, bits, signed)
    if signed and signature in ("u8", "u16", "u64"):  # the result's bit pattern: sign-extend 2n bits
        raw = IntFormat(bits, True).from_patterns(raw, 2 * bits)
    return raw


def _codes(rng, fmt, shape, gaussian=False):
    if gaussian:  # quantized activations: most codes near the middle of the range
        mid = (fmt.lo + fmt.hi) / 2
        return np.clip(np.round(rng.normal(mid, (fmt.hi - fmt.lo) / 8, shape)), fmt.lo, fmt.hi).astype(np.int64)
    return rng.integers(fmt.lo, fmt.hi + 1, shape)


def _np_products(table, fmt, a, b):
    """f(a, b) by a NumPy gather from the table, int64."""
    return table.astype(np.int64)[np.asarray(a) & fmt.mask, np.asarray(b) & fmt.mask]


def _np_matmul(table, fmt, a, b):
    return _np_products(table, fmt, a[..., :, :, None], b[..., None, :, :]).sum(axis=-2)


def _np_conv(table, fmt, x, w, *, stride=1, pad=0, groups=1, dilation=1, op="fwd", dy=None):
    """Independent loops over taps: forward y = sum f(x_pad, w), input gradient dx = sum f(dy, w) over
    the outputs that reach each input, filter gradient dw = sum f(x_pad, dy). Padding is code 0 in
    the forward and filter-gradient sums and absent from the input gradient (DESIGN.md)."""
    n, h, wd, c = x.shape
    kh, kw, cig, cout = w.shape
    cog = cout // groups
    xp = np.zeros((n, h + 2 * pad, wd + 2 * pad, c), np.int64)
    xp[:, pad:pad + h, pad:pad + wd] = x
    oh = (h + 2 * pad - dilation * (kh - 1) - 1) // stride + 1
    ow = (wd + 2 * pad - dilation * (kw - 1) - 1) // stride + 1
    y = np.zeros((n, oh, ow, cout), np.int64)
    dxp = np.zeros(xp.shape, np.int64)
    dw = np.zeros(w.shape, np.int64)
    reached = np.zeros(xp.shape[1:3], bool)
    reached[pad:pad + h, pad:pad + wd] = True
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dilation, i * dilation + stride * (oh - 1) + 1, stride)
            cols = slice(j * dilation, j * dilation + stride * (ow - 1) + 1, stride)
            for g in range(groups):
                ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                patch = xp[:, rows, cols, ci]  # (n, oh, ow, cig)
                if op == "fwd":
                    y[..., co] += _np_products(table, fmt, patch[..., :, None], w[i, j, :, co]).sum(axis=-2)
                elif op == "dw":
                    dw[i, j, :, co] += _np_products(table, fmt, patch[..., :, None], dy[..., None, co]).sum(
                        axis=(0, 1, 2))
                else:
                    inside = reached[rows, cols][None, :, :, None, None]
                    part = _np_products(table, fmt, dy[..., None, co], w[i, j, :, co][None, None, None])
                    dxp[:, rows, cols, ci] += (part * inside).sum(axis=-1)
    if op == "fwd":
        return y
    if op == "dw":
        return dw
    return dxp[:, pad:pad + h, pad:pad + wd]


# ------------------------------------------------------------------------------ registration

@needs_evo
@pytest.mark.parametrize("name", [m[1] for m in EVO_MODELS])
def test_evoapprox_files_register_unchanged_and_equal_the_c_function(name):
    """Each of the six files registers as it is; its table equals the C function on all pairs."""
    mult = _registered(name)
    _, _, _, _, signed, bits = _evo(name)
    assert (mult.kind, mult.bits, mult.signed) == ("int-table", bits, signed)
    np.testing.assert_array_equal(mult.table.astype(np.int64), _harness_table(name))


@needs_evo
def test_twelve_bit_file_in_direct_mode_equals_the_c_function():
    """Direct mode (the model compiled into the kernels) on 10^6 random pairs plus the extremes."""
    mult = multipliers.register_c(EVO / "mul12u_2EP.c", function="mul12u_2EP", bits=12, mode="direct",
                                  name="mul12u_2EP_direct", replace=True)
    assert mult.kind == "int-direct" and mult.bits == 12
    rng = np.random.default_rng(0)
    ext = np.array([0, 1, 2, 2047, 2048, 4094, 4095])
    ea, eb = (v.ravel() for v in np.meshgrid(ext, ext))
    a = np.concatenate([ea, rng.integers(0, 4096, 10 ** 6)])
    b = np.concatenate([eb, rng.integers(0, 4096, 10 ** 6)])
    got = approxsim.multiply(a, b, multiplier=mult, backend="cpu" if cpu_ok else "reference")
    want = c_harness.call(EVO / "mul12u_2EP.c", "mul12u_2EP", "u16", a, b)
    np.testing.assert_array_equal(got, want)
    table = _registered("mul12u_2EP").table
    np.testing.assert_array_equal(got, table[a, b])


@needs_evo
def test_sixteen_bit_prototype_defaults_to_direct_mode():
    mult = multipliers.register_c(EVO / "mul12u_2EP.c", function="mul12u_2EP", name="mul12u_as16", replace=True)
    assert mult.kind == "int-direct" and mult.bits == 16 and not mult.signed


@needs_evo
def test_registration_survives_a_new_process_and_a_lost_table(tmp_path):
    mult = _registered("mul8u_2AC")
    table = np.array(mult.table)
    script = ("import numpy as np, approxsim\n"
              "m = approxsim.multipliers.get('mul8u_2AC')\n"
              "print(m.kind, m.bits, m.signed, int(np.asarray(m.table, np.int64).sum()))\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["int-table", "8", "False", str(int(table.astype(np.int64).sum()))]
    for f in (Path(os.environ["APPROXSIM_CACHE"]) / "tables").glob("int-*.npz"):
        f.unlink()  # the cached tables are gone: rebuilt from the kept copy of the source
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=dict(os.environ))
    assert run.returncode == 0, run.stderr
    assert run.stdout.split()[-1] == str(int(table.astype(np.int64).sum()))


@needs_evo
def test_cli_register_and_stats_print_the_published_figures():
    env = dict(os.environ)
    run = subprocess.run([sys.executable, "-m", "approxsim.cli", "register", str(EVO / "mul8u_FTA.c"), "--function",
                          "mul8u_FTA", "--bits", "8", "--unsigned", "--replace"], capture_output=True, text=True,
                         env=env)
    assert run.returncode == 0, run.stderr
    assert "8-bit unsigned codes 0..255, table" in run.stdout
    run = subprocess.run([sys.executable, "-m", "approxsim.cli", "stats", "mul8u_FTA"], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0, run.stderr
    figures = dict(re.findall(r"^\s+(\S+)\s+([-\d.e+]+)", run.stdout, re.M))
    header = (EVO / "mul8u_FTA.c").read_text()
    published = dict(re.findall(r"//\s*(MAE%?|WCE%?|EP%|MSE|MRE%|WCRE%)\s*=\s*([-\d.e+]+)", header))
    for key, text in published.items():
        decimals = len(text.split(".")[1].split("e")[0]) if "." in text else 0
        scale = 10 ** int(text.split("e")[1]) if "e" in text else 1
        assert round(float(figures[key]) / scale, decimals) == pytest.approx(float(text) / scale), key
    run = subprocess.run([sys.executable, "-m", "approxsim.cli", "info", "mul8u_FTA"], capture_output=True,
                         text=True, env=env)
    assert run.returncode == 0, run.stderr
    line = next(t for t in run.stdout.splitlines() if t.startswith("published:"))
    for key in ("PDK45_PWR", "PDK45_AREA"):  # the header's figures, shown next to the computed ones
        value = re.search(rf"//\s*{key}\s*=\s*([\d.]+)", header).group(1)
        assert f"{key} {float(value):g}" in line


# ------------------------------------------------------------------------------ signatures and bad input

def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_width_and_signedness_options(tmp_path):
    src = _write(tmp_path, "m.c", "#include <stdint.h>\nuint64_t m(const uint64_t b, const uint64_t a) "
                                  "{ return a * b; }\n")
    with pytest.raises(ValueError, match=r"does not say the codes' bits and signedness.*--bits N --signed"):
        multipliers.register_c(src, function="m")
    with pytest.raises(ValueError, match=r"does not say the codes' signedness"):
        multipliers.register_c(src, function="m", bits=6)
    with pytest.raises(ValueError, match=r"bits must be an integer from 2 to 16.*bits=17"):
        multipliers.register_c(src, function="m", bits=17, signed=False)
    mult = multipliers.register_c(src, function="m", bits=6, signed=False, name="u6", replace=True)
    c = np.arange(64)
    np.testing.assert_array_equal(mult.table, np.outer(c, c))
    s8 = _write(tmp_path, "s.c", "#include <stdint.h>\nint16_t s(int8_t a, int8_t b) { return a * b; }\n")
    with pytest.raises(ValueError, match=r"signed=False \(--unsigned\) contradicts the prototype int16_t s"):
        multipliers.register_c(s8, function="s", signed=False)
    with pytest.raises(ValueError, match=r"bits=12 contradicts the prototype.*at most 8-bit codes"):
        multipliers.register_c(s8, function="s", bits=12)
    with pytest.raises(ValueError, match=r"integer model.*not mantissa_bits"):
        multipliers.register_c(s8, function="s", mantissa_bits=4)
    f = _write(tmp_path, "f.c", "float f(float a, float b) { return a * b; }\n")
    with pytest.raises(ValueError, match=r"bits= and signed= are for integer models"):
        multipliers.register_c(f, function="f", bits=8, signed=True)


@pytest.mark.parametrize("proto", ["uint8_t g(uint8_t a, uint16_t b)", "double g(int a, int b)",
                                   "uint32_t g(uint32_t a, uint32_t b)", "int g(int a)"])
def test_signatures_of_neither_form_are_refused(tmp_path, proto):
    src = _write(tmp_path, "g.c", "#include <stdint.h>\n" + proto + " { return 0; }\n")
    with pytest.raises(CompileError, match=r"not a multiplier signature approxsim takes|at most 16-bit codes"):
        multipliers.register_c(src, function="g", bits=8, signed=False)


def test_a_table_wider_than_12_bits_needs_direct_mode(tmp_path):
    src = _write(tmp_path, "w.c", "#include <stdint.h>\nint32_t w(int16_t a, int16_t b) { return a * b; }\n")
    with pytest.raises(ValueError, match=r'at most 12-bit codes.*mode="direct"'):
        multipliers.register_c(src, function="w", mode="table")


def test_crashing_integer_model_is_reported(tmp_path):
    src = _write(tmp_path, "c.c", "#include <stdint.h>\nuint16_t c(uint8_t a, uint8_t b) { volatile int* p = 0;"
                                  " if (a == 77) *p = 1; return a * b; }\n")
    with pytest.raises(approxsim.ModelError, match=r"crashed \(SIGSEGV\)"):
        multipliers.register_c(src, function="c")
    with pytest.raises(approxsim.ModelError, match=r"crashed \(SIGSEGV\)"):
        multipliers.register_c(src, function="c", mode="direct")
    with pytest.raises(approxsim.UnknownMultiplierError):
        multipliers.get("c")


def test_float_inputs_and_codes_out_of_range(backend):
    a = np.ones((2, 3), np.int64)
    with pytest.raises(TypeError, match=r"integer codes \(8-bit signed codes -128..127\).*float32.*[Qq]uantize"):
        approxsim.matmul(a.astype(np.float32), a.T, multiplier="int8", backend=backend)
    with pytest.raises(ValueError, match=r"holds the code 128, outside .*-128..127.*bits=8, signed=True"):
        approxsim.matmul(a * 128, a.T, multiplier="int8", backend=backend)
    with pytest.raises(ValueError, match=r"holds the code -1, outside .*0..255"):
        approxsim.conv2d(-np.ones((1, 3, 3, 1), np.int16), np.ones((1, 1, 1, 1), np.int16), multiplier="uint8",
                         backend=backend)
    with pytest.raises(ValueError, match="shape"):
        approxsim.matmul(np.ones((2, 3), np.int8), np.ones((2, 3), np.int8), multiplier="int8", backend=backend)


# ------------------------------------------------------------------------------ arithmetic

@pytest.mark.parametrize("name", ["int8", "uint8", "int4", "uint4", "mul8u_1JFF"])
def test_exact_integer_multipliers_equal_numpy_int64(backend, name):
    mult = _registered(name) if name.startswith("mul") else multipliers.get(name)
    if name.startswith("mul") and not EVO.is_dir():
        pytest.skip("../shared/reference/evoapprox is not beside the checkout")
    fmt = mult.format
    rng = np.random.default_rng(1)
    a, b = _codes(rng, fmt, (3, 37, 29)), _codes(rng, fmt, (29, 11))
    got = approxsim.matmul(a, b, multiplier=mult, backend=backend)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, a @ b)
    x, w = _codes(rng, fmt, (2, 9, 9, 6)), _codes(rng, fmt, (3, 3, 3, 4))  # SAME pads 1 on each side
    y = approxsim.conv2d(x, w, strides=2, padding="SAME", groups=2, multiplier=mult, backend=backend)
    exact = np.outer(fmt.codes(), fmt.codes())
    np.testing.assert_array_equal(y, _np_conv(exact, fmt, x, w, stride=2, pad=1, groups=2))


def _approx_cases():
    names = ["drum8u_k4", "bam8u_v6", "mitchell8u", "kulkarni8u", "int4"]
    return names + ([m[1] for m in EVO_MODELS[1:5]] if EVO.is_dir() else [])


@pytest.mark.parametrize("name", _approx_cases())
def test_approximate_multipliers_equal_a_numpy_gather(backend, name):
    mult = _registered(name) if name.startswith("mul") else multipliers.get(name)
    fmt, table = mult.format, mult.table
    rng = np.random.default_rng(2)
    a, b = _codes(rng, fmt, (2, 300, 40), gaussian=True), _codes(rng, fmt, (40, 19))
    np.testing.assert_array_equal(approxsim.matmul(a, b, multiplier=mult, backend=backend),
                                  _np_matmul(table, fmt, a, b))
    np.testing.assert_array_equal(approxsim.multiply(a[0, 0, :3], b[:3, 0], multiplier=mult, backend=backend),
                                  _np_products(table, fmt, a[0, 0, :3], b[:3, 0]))
    x, w = _codes(rng, fmt, (2, 7, 8, 4)), _codes(rng, fmt, (3, 3, 4, 5))
    dy = _codes(rng, fmt, (2, 7, 8, 5))
    kw = dict(strides=1, padding="SAME", multiplier=mult, backend=backend)
    np.testing.assert_array_equal(approxsim.conv2d(x, w, **kw), _np_conv(table, fmt, x, w, pad=1))
    np.testing.assert_array_equal(approxsim.conv2d_input_grad(dy, w, x.shape, **kw),
                                  _np_conv(table, fmt, x, w, pad=1, op="dx", dy=dy))
    np.testing.assert_array_equal(approxsim.conv2d_filter_grad(x, dy, w.shape, **kw),
                                  _np_conv(table, fmt, x, w, pad=1, op="dw", dy=dy))


def test_padding_is_code_zero_for_a_circuit_with_nonzero_f0():
    """A table with f(0, b) != 0: padded forward taps count, unreached input-gradient ones do not."""
    fmt = IntFormat(3, False)
    c = fmt.codes()
    table = np.outer(c, c) + 5  # f(0, b) = 5
    mult = approxsim.IntTableMultiplier("plus5", 3, False, table)
    x = np.zeros((1, 2, 2, 1), np.int64)
    w = np.zeros((3, 3, 1, 1), np.int64)
    for be in ("reference",) + (("cpu",) if cpu_ok else ()):
        y = approxsim.conv2d(x, w, padding="SAME", multiplier=mult, backend=be)
        np.testing.assert_array_equal(y, np.full((1, 2, 2, 1), 45))  # all 9 taps, padded or not: 9 * 5
        dx = approxsim.conv2d_input_grad(np.zeros((1, 1, 1, 1), np.int64), w, (1, 3, 3, 1), strides=2,
                                         padding="VALID", multiplier=mult, backend=be)
        np.testing.assert_array_equal(dx, np.full((1, 3, 3, 1), 5))  # each input reached once


@pytest.mark.skipif(not cpu_ok, reason="the C++ extension is not built")
@pytest.mark.parametrize("strides,dilations,hw", [(1, 1, (9, 11)), (2, 1, (9, 11)), (1, 2, (9, 11)), (1, 1, (2, 9))])
def test_padding_correction_only_at_border_pixels(strides, dilations, hw):
    """f(0, b) != 0 on a layer whose inner pixels have no padded tap (or, 2 x 9, no inner row): the CPU
    backend's border-band correction equals the reference backend (padding as products with code 0)."""
    fmt = IntFormat(4, False)
    c = fmt.codes()
    table = np.outer(c, c) // 3 + 1 + c[None, :]  # f(0, b) = 1 + b
    mult = approxsim.IntTableMultiplier("f0plus", 4, False, table)
    rng = np.random.default_rng(7)
    x, w = _codes(rng, fmt, (2,) + hw + (3,)), _codes(rng, fmt, (3, 5, 3, 4))
    kw = dict(strides=strides, dilations=dilations, padding="SAME", multiplier=mult)
    np.testing.assert_array_equal(approxsim.conv2d(x, w, backend="cpu", **kw),
                                  approxsim.conv2d(x, w, backend="reference", **kw))


SIMD_LEVELS = ("portable", "avx2", "avx512", "vbmi")


def _skip_unless_level(level):
    from approxsim.backends import cpu

    if level not in cpu.supported_simd():
        pytest.skip(f"this CPU cannot run the {level} kernels (it supports {', '.join(cpu.supported_simd())})")


def _wide_circuit(tmp_path):
    """An unsigned 8-bit circuit with outputs above 2^16: the expanded kernels' int32 panel entries."""
    src = _write(tmp_path, "wide.c", "#include <stdint.h>\nuint64_t wide(const uint64_t b, const uint64_t a) "
                                     "{ return (a * b) * 4 + a; }\n")
    return multipliers.register_c(src, function="wide", bits=8, signed=False, name="wide8u", replace=True)


@pytest.fixture
def restore_cpu(monkeypatch):
    """After the test: the CPU driver's own method choice and the environment's SIMD level and threads
    again (tests force them with ``_cpu.force_method`` and ``monkeypatch.setenv``)."""
    yield
    from approxsim import _cpu
    from approxsim.backends import cpu

    _cpu.force_method("auto")
    monkeypatch.undo()
    cpu.check_settings()


@needs_cpu
@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("method", ["exact", "expanded", "lookup"])
@pytest.mark.parametrize("name", ["mitchell8u", "int8", "int4"])
def test_every_cpu_method_and_simd_level(level, method, name, monkeypatch, restore_cpu):
    from approxsim import _cpu
    from approxsim.backends import cpu

    _skip_unless_level(level)
    mult = multipliers.get(name)
    fmt, table = mult.format, mult.table
    rng = np.random.default_rng(3)
    a, b = _codes(rng, fmt, (70, 45)), _codes(rng, fmt, (45, 37))
    # SAME, stride 2: pads 1 each side; 10 channels per group: transposed patches by 8 rows and one by one
    x, w = _codes(rng, fmt, (2, 7, 7, 20)), _codes(rng, fmt, (3, 3, 10, 6))
    dy = _codes(rng, fmt, (2, 4, 4, 6))
    monkeypatch.setenv("APPROXSIM_SIMD", level)  # each backend lookup applies it again
    _cpu.force_method(method)
    np.testing.assert_array_equal(approxsim.matmul(a, b, multiplier=mult, backend="cpu"),
                                  _np_matmul(table, fmt, a, b))
    # The exact-product kernels take exact tables only (mitchell8u is not: it falls back).
    ran = "lookup" if method == "exact" and name == "mitchell8u" else method
    assert _cpu.last_method() == ran and _cpu.simd_level() == cpu._NATIVE_NAMES[level]
    kw = dict(strides=2, padding="SAME", groups=2, multiplier=mult, backend="cpu")
    np.testing.assert_array_equal(approxsim.conv2d(x, w, **kw),
                                  _np_conv(table, fmt, x, w, stride=2, pad=1, groups=2))
    want_dx = approxsim.conv2d_input_grad(dy, w, x.shape, **{**kw, "backend": "reference"})
    np.testing.assert_array_equal(approxsim.conv2d_input_grad(dy, w, x.shape, **kw), want_dx)
    want_dw = approxsim.conv2d_filter_grad(x, dy, w.shape, **{**kw, "backend": "reference"})
    np.testing.assert_array_equal(approxsim.conv2d_filter_grad(x, dy, w.shape, **kw), want_dw)


@needs_cpu
@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_expanded_panels_of_every_entry_width(level, tmp_path, monkeypatch, restore_cpu):
    """The expanded kernels keep 16-bit panel entries where the table fits (unsigned: mitchell8u;
    signed: int8) and int32 ones where it does not (a circuit with outputs above 2^16): each, for
    every panel width (8 columns for outputs of at most 8, 16 for 16, and for 70 columns 32 with
    16-bit entries at the AVX2 and AVX-512 levels, else 16), equals the NumPy sums of its table."""
    from approxsim import _cpu

    _skip_unless_level(level)
    wide = _wide_circuit(tmp_path)
    assert wide.table.max() > 2 ** 16
    rng = np.random.default_rng(5)
    monkeypatch.setenv("APPROXSIM_SIMD", level)
    _cpu.force_method("expanded")
    for mult in (wide, multipliers.get("mitchell8u"), multipliers.get("int8")):
        fmt, table = mult.format, mult.table
        for n, threads in ((5, "2"), (16, "2"), (70, "1"), (70, "2")):  # panels 8, 16, 32 (or 16) wide
            monkeypatch.setenv("APPROXSIM_NUM_THREADS", threads)
            a, b = _codes(rng, fmt, (41, 70)), _codes(rng, fmt, (70, n))
            np.testing.assert_array_equal(approxsim.matmul(a, b, multiplier=mult, backend="cpu"),
                                          _np_matmul(table, fmt, a, b), err_msg=f"{mult.name} n={n}")
            assert _cpu.last_method() == "expanded"


@needs_cpu
def test_tiles_that_split_the_columns_share_the_packed_rows(monkeypatch, restore_cpu):
    """On two threads, a GEMM with too few rows to split them (400 x 10600 x 256: eight tiles of
    columns) shares one packing of A's codes among its tiles: two blocks of rows (about 2^22 codes
    each: 392 rows and 8), each packed in parallel by pieces of 256 rows and a shorter last one. At
    every SIMD level (panels 32 columns wide with 16-bit entries at the AVX2 and AVX-512 levels, else
    16), the exact circuits' sums equal a float64 matmul, exact here (integers below 2^53): uint8
    (unsigned 16-bit panel entries) and int8 (signed ones)."""
    from approxsim import _cpu
    from approxsim.backends import cpu

    rng = np.random.default_rng(11)
    monkeypatch.setenv("APPROXSIM_NUM_THREADS", "2")
    _cpu.force_method("expanded")  # exact circuits: the expanded kernels, not the exact-product ones
    for name in ("uint8", "int8"):
        fmt = multipliers.get(name).format
        a, b = _codes(rng, fmt, (400, 10600)), _codes(rng, fmt, (10600, 256))
        want = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
        for level in cpu.supported_simd():
            monkeypatch.setenv("APPROXSIM_SIMD", level)
            got = approxsim.matmul(a, b, multiplier=name, backend="cpu")
            assert _cpu.last_method() == "expanded" and _cpu.simd_level() == cpu._NATIVE_NAMES[level]
            np.testing.assert_array_equal(got, want, err_msg=f"{name} at {level}")


@needs_cpu
@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_expanded_panels_build_only_the_rows_the_codes_read(level, tmp_path, monkeypatch, restore_cpu):
    """The expanded builds make only the panel rows (groups of 8 codes) that a block's codes read at
    each contraction step; the other rows keep stale values from earlier panels. Codes that read
    one group per step, a different one from step to step, with a few rows that read others at some
    steps (in the first and in the second piece of 256 rows that pack a block's codes in parallel)
    and rows that pad the last 4-row panel (303 rows): the sums equal NumPy's gather, with the codes
    packed by each tile (one thread, 70 columns; and 5 columns: 8-column panels) and shared among
    tiles of columns (two threads, 256 columns), for 16-bit entries unsigned (mitchell8u) and signed
    (int8) and for int32 entries (a circuit with outputs above 2^16)."""
    from approxsim import _cpu

    _skip_unless_level(level)
    wide = _wide_circuit(tmp_path)
    rng = np.random.default_rng(17)
    monkeypatch.setenv("APPROXSIM_SIMD", level)
    _cpu.force_method("expanded")
    for mult in (multipliers.get("mitchell8u"), multipliers.get("int8"), wide):
        name = mult.name
        fmt, table = mult.format, mult.table
        k = np.arange(300)
        a = np.broadcast_to(fmt.lo + (k * 37) % (fmt.hi - fmt.lo + 1), (303, 300)).copy()
        a[100:103, ::7] = _codes(rng, fmt, (3, 43))  # other groups, at some steps, in some rows
        a[280:282, 3::5] = _codes(rng, fmt, (2, 60))
        for rows, n, threads in ((303, 70, "1"), (303, 256, "2"), (250, 5, "1")):
            monkeypatch.setenv("APPROXSIM_NUM_THREADS", threads)
            b = _codes(rng, fmt, (300, n))
            np.testing.assert_array_equal(approxsim.matmul(a[:rows], b, multiplier=mult, backend="cpu"),
                                          _np_matmul(table, fmt, a[:rows], b), err_msg=f"{name} n={n}")
            assert _cpu.last_method() == "expanded"


@needs_cpu
@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_exact_products_computed_at_every_level(level, tmp_path, monkeypatch, restore_cpu):
    """Tables of exact products (uint8, int8, uint4, int4) take the exact-product kernels, which
    compute the products (16-bit pairs into int32 lanes; with VNNI at the VBMI level where the CPU
    has it) instead of looking them up: at every level,
    matmuls of every shape class (one row; rows, columns and steps that fill no whole tile, panel or
    pair; several blocks of 1024 steps) and a grouped, strided convolution with its two gradients
    equal the NumPy sums of the table. A table of exact products but for one entry is not exact: it
    goes to the expanded kernels, and its sums still equal its own table's."""
    from approxsim import _cpu
    from approxsim.backends import cpu

    _skip_unless_level(level)
    src = _write(tmp_path, "off.c", "#include <stdint.h>\nuint64_t off(const uint64_t b, const uint64_t a) "
                                    "{ return a * b + ((a == 200 && b == 3) || (a == 3 && b == 200)); }\n")
    off = multipliers.register_c(src, function="off", bits=8, signed=False, name="offbyone8u", replace=True)
    rng = np.random.default_rng(12)
    monkeypatch.setenv("APPROXSIM_SIMD", level)
    for name in ("uint8", "int8", "uint4", "int4"):
        mult = multipliers.get(name)
        fmt, table = mult.format, mult.table
        for m, k, n in ((1, 1, 1), (7, 3, 5), (70, 45, 37), (33, 1025, 70), (9, 2300, 16)):
            a, b = _codes(rng, fmt, (m, k)), _codes(rng, fmt, (k, n))
            np.testing.assert_array_equal(approxsim.matmul(a, b, multiplier=mult, backend="cpu"),
                                          _np_matmul(table, fmt, a, b), err_msg=f"{name} {m}x{k}x{n}")
            assert _cpu.last_method() == "exact" and _cpu.simd_level() == cpu._NATIVE_NAMES[level]
        x, w, dy = _codes(rng, fmt, (2, 7, 7, 20)), _codes(rng, fmt, (3, 3, 10, 6)), _codes(rng, fmt, (2, 4, 4, 6))
        kw = dict(strides=2, padding="SAME", groups=2, multiplier=mult, backend="cpu")
        np.testing.assert_array_equal(approxsim.conv2d(x, w, **kw),
                                      _np_conv(table, fmt, x, w, stride=2, pad=1, groups=2))
        for fn, args, shape in ((approxsim.conv2d_input_grad, (dy, w), x.shape),
                                (approxsim.conv2d_filter_grad, (x, dy), w.shape)):
            want = fn(*args, shape, **{**kw, "backend": "reference"})
            np.testing.assert_array_equal(fn(*args, shape, **kw), want, err_msg=f"{name} {fn.__name__}")
            assert _cpu.last_method() == "exact"
    a, b = _codes(rng, off.format, (40, 300)), _codes(rng, off.format, (300, 20))
    a[0, :] = 200
    b[:, 0] = 3  # an entry that is off, in every product of C[0][0]
    got = approxsim.matmul(a, b, multiplier=off, backend="cpu")
    assert _cpu.last_method() == "expanded"
    np.testing.assert_array_equal(got, _np_matmul(off.table, off.format, a, b))
    assert got[0, 0] == 300 * (200 * 3 + 1)


@needs_cpu
def test_huge_entries_are_summed_exactly(tmp_path):
    """Entries near 2^30: a few of them overflow an int32 partial sum, so the expanded kernels (int32
    partial sums over a panel's steps) must not take the table, even when forced."""
    from approxsim import _cpu

    src = _write(tmp_path, "huge.c", "#include <stdint.h>\nuint64_t huge(const uint64_t b, const uint64_t a) "
                                     "{ return (a * b) << 14; }\n")
    mult = multipliers.register_c(src, function="huge", bits=8, signed=False, name="huge8u", replace=True)
    rng = np.random.default_rng(6)
    a, b = rng.integers(200, 256, (40, 300)), rng.integers(200, 256, (300, 20))
    _cpu.force_method("expanded")
    try:
        got = approxsim.matmul(a, b, multiplier=mult, backend="cpu")
    finally:
        _cpu.force_method("auto")
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, (a @ b) << 14)


@pytest.mark.parametrize("method", ["exact", "expanded", "lookup"])
def test_long_sums_go_to_int64_exactly(method):
    """K * max|T| beyond int32: the result is int64 and exact (the int32 partials carry over)."""
    mult = multipliers.get("uint8")
    k = 40_000  # 40000 * 255^2 > 2^31
    a = np.full((5, k), 255, np.int64)
    b = np.full((k, 3), 255, np.int64)
    want = np.full((5, 3), k * 255 * 255, np.int64)
    for be in ("reference",) + (("cpu",) if cpu_ok else ()):
        if be == "cpu":
            from approxsim import _cpu

            _cpu.force_method(method)
        try:
            got = approxsim.matmul(a, b, multiplier=mult, backend=be)
        finally:
            if be == "cpu":
                _cpu.force_method("auto")
        assert got.dtype == np.int64
        np.testing.assert_array_equal(got, want)
    assert approxsim.matmul(a[:, :100], b[:100], multiplier=mult, backend="reference").dtype == np.int32


def test_int16_direct_builtin_on_every_backend(backend):
    mult = multipliers.get("int16")
    assert mult.kind == "int-direct"
    rng = np.random.default_rng(4)
    ext = np.array([-32768, -1, 0, 1, 32767])
    a = np.concatenate([np.repeat(ext, 5), rng.integers(-32768, 32768, 200)]).reshape(15, 15)
    b = np.concatenate([np.tile(ext, 5), rng.integers(-32768, 32768, 200)]).reshape(15, 15)
    got = approxsim.matmul(a, b, multiplier=mult, backend=backend)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, a @ b)


def test_float_multipliers_still_take_integer_arrays_as_numbers():
    a = np.arange(6).reshape(2, 3)
    got = approxsim.matmul(a, a.T, multiplier="fp32", backend="reference")
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, (a @ a.T).astype(np.float32))


def test_stats_and_compare_refuse_mixed_kinds(capsys):
    from approxsim.cli import main

    assert main(["compare", "int8", "mbm7"]) != 0
    assert "float multipliers or integer ones, not both" in capsys.readouterr().err
    assert main(["compare", "int8", "uint8"]) != 0
    assert "one width and signedness" in capsys.readouterr().err
    assert main(["compare", "uint8", "drum8u_k4", "--json"]) == 0
    out = capsys.readouterr().out
    assert '"MAE": 0.0' in out and '"exhaustive": true' in out


@needs_cpu
@pytest.mark.parametrize("bad", [np.nan, -1.0, 257.5, 258.0, 3.5, np.inf])
def test_the_extension_refuses_encoded_codes_outside_the_table(bad):
    """The integer kernels' own guard (below the Python checks): an encoded code (pattern + 1) must be
    an integer in 0..2^n, whatever the caller passed."""
    from approxsim import _cpu

    table = _cpu.prepare_int_table(multipliers.get("uint8").table, 8)
    a = np.ones((1, 40, 33), np.float32)
    a[0, 17, 5] = bad
    b = np.ones((1, 33, 20), np.float32)
    idx = np.zeros(1, np.int64)
    with pytest.raises(ValueError, match="encoded codes must be integers in 0..2\\^n"):
        _cpu.int_matmul(a, b, table, False, False, idx, idx, False)
    good = np.full_like(a, 3.0)  # code 2
    np.testing.assert_array_equal(_cpu.int_matmul(good, 3 * b, table, False, False, idx, idx, False), 4 * 33)


@needs_cpu
@pytest.mark.parametrize("bits, signed", [(8, False), (8, True), (4, True), (12, False), (12, True)])
def test_the_extension_encodes_codes_as_patterns_plus_one(bits, signed):
    """``encode_int_codes`` (threaded, in chunks) gives each code's two's complement pattern + 1 as a
    float, checked against an independent NumPy computation on every code of the format, in an array
    long enough for several chunks, from every integer dtype that holds the format's codes; a code
    one past either end of the range is refused (where the dtype can hold it)."""
    from approxsim import _cpu

    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    codes = np.resize(np.arange(lo, hi + 1, dtype=np.int64), 300_000)[::-1].copy()
    want = (np.where(codes < 0, codes + (1 << bits), codes) + 1).astype(np.float32)
    dtypes = [d for d in (np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64)
              if np.iinfo(d).min <= lo and np.iinfo(d).max >= hi]
    for dt in dtypes:
        got = _cpu.encode_int_codes(codes.astype(dt).reshape(3, -1, 1), bits, signed)
        assert got.dtype == np.float32 and got.shape == (3, 100_000, 1)
        np.testing.assert_array_equal(got.ravel(), want, err_msg=np.dtype(dt).name)
        for bad in (lo - 1, hi + 1):
            if not np.iinfo(dt).min <= bad <= np.iinfo(dt).max:
                continue
            wrong = codes.astype(dt)
            wrong[123_457] = bad
            with pytest.raises(ValueError, match=f"outside the {bits}-bit"):
                _cpu.encode_int_codes(wrong, bits, signed)
    with pytest.raises(ValueError, match="must hold integers"):
        _cpu.encode_int_codes(np.zeros(4, np.float32), bits, signed)
