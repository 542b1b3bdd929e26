"""Direct multipliers: full-width models compiled into the kernels.

Oracles: the C function itself, compiled alone into a tiny ctypes harness
(products, bit for bit); the reference backend (sums); the table of the same
low-width model (direct and table agree bit for bit).
"""

import ctypes
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import approxsim
from approxsim import multipliers
from approxsim.backends.reference import ReferenceBackend
from approxsim.direct import DirectModel
from approxsim.direct import cuda as dcuda
from approxsim.direct import cuda_source as dsrc
from approxsim.direct import nvrtc
from approxsim.errors import CompileError
from approxsim.geometry import conv_geometry
from approxsim.multiplier import Multiplier
from approxsim.product import approx_product

SRC = Path(multipliers.builtin_source_dir())
REF = ReferenceBackend()

EXPDEP = r"""
#include <stdlib.h>
/* Exact for operands with small exponents, truncating the product to 8 bits otherwise:
   no table can represent it (the result depends on the exponents). */
float expdep(float a, float b) {
  int ea, eb;
  float p = a * b;
  uint32_t u;
  frexpf(a, &ea);
  frexpf(b, &eb);
  if (abs(ea) <= 2 && abs(eb) <= 2) return p;
  memcpy(&u, &p, sizeof u);
  u &= 0xFFFF8000u;
  memcpy(&p, &u, sizeof p);
  return p;
}
"""


# --- helpers ---------------------------------------------------------------------------

def _harness(path, function, tmpdir, m=None):
    """``f(a, b)`` over arrays, through the C function compiled alone (no approxsim code)."""
    path = Path(path).resolve()
    c = tmpdir / f"harness_{function}_{m}.c"
    c.write_text(textwrap.dedent(f"""\
        #include <stdint.h>
        #include <string.h>
        #include <math.h>
        {f'#define APPROXSIM_MANTISSA_BITS {m}' if m else ''}
        #include "{path}"
        void harness_eval(const float* a, const float* b, float* out, long n) {{
          for (long i = 0; i < n; ++i) out[i] = {function}(a[i], b[i]);
        }}
        """))
    lib = tmpdir / f"harness_{function}_{m}.so"
    subprocess.run([shutil.which("cc") or "gcc", "-O2", "-shared", "-fPIC", str(c), "-o", str(lib), "-lm"],
                   check=True, capture_output=True)
    dll = ctypes.CDLL(str(lib))

    def call(a, b):
        a = np.ascontiguousarray(a, dtype=np.float32)
        b = np.ascontiguousarray(b, dtype=np.float32)
        out = np.empty_like(a)
        dll.harness_eval(a.ctypes.data_as(ctypes.c_void_p), b.ctypes.data_as(ctypes.c_void_p),
                         out.ctypes.data_as(ctypes.c_void_p), ctypes.c_long(a.size))
        return out

    return call


SPECIALS = np.array([0.0, -0.0, 1.0, -1.0, 1.5, 1.9999999, 2.0, 0.5, 3.0, -7.25,
                     1e-45, -1e-45, 1.17e-38, 1.1754942e-38, 1.1754944e-38, 2.0 ** -63, 2.0 ** 64, 1.7e38,
                     3.4028235e38, -3.4028235e38, np.inf, -np.inf, np.nan, 1e-20, 1e20], dtype=np.float32)


def _operands(n, seed=0):
    """n random pairs (random bit patterns, moderate normals) plus all pairs of special values."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2 ** 32, size=(2, n // 2), dtype=np.uint64).astype(np.uint32).view(np.float32)
    normal = (rng.standard_normal((2, n - n // 2)) * np.exp2(rng.integers(-70, 70, (2, n - n // 2)))).astype(
        np.float32)
    sa, sb = np.meshgrid(SPECIALS, SPECIALS)
    a = np.concatenate([bits[0], normal[0], sa.ravel()])
    b = np.concatenate([bits[1], normal[1], sb.ravel()])
    return a, b


def _same_bits(x, y):
    x, y = np.asarray(x, np.float32), np.asarray(y, np.float32)
    assert x.shape == y.shape
    bad = np.flatnonzero(x.view(np.uint32) != y.view(np.uint32))
    assert bad.size == 0, f"{bad.size} differ, first at {bad[0]}: {x.ravel()[bad[0]]!r} vs {y.ravel()[bad[0]]!r}"


def _close(got, want, scale, rtol=2e-5):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_less(np.abs(got - want), rtol * np.asarray(scale, np.float64) + 1e-30)


@pytest.fixture(scope="module")
def tmpdir(tmp_path_factory):
    return tmp_path_factory.mktemp("direct")


@pytest.fixture(scope="module")
def expdep_file(tmpdir):
    path = tmpdir / "expdep.c"
    path.write_text(EXPDEP)
    return path


# --- products: direct == the C function, bit for bit -------------------------------------

@pytest.mark.parametrize("name,file,function,m", [
    ("mbm23", "mbm_full.c", "mbm23", None),
    ("mitchell23", "mitchell_full.c", "mitchell23", None),
    ("fp32_trunc12", "fp32_trunc.c", "fp32_trunc", 12),
    ("fp32_trunc23", "fp32_trunc.c", "fp32_trunc", 23),
])
def test_builtin_equals_c_function(name, file, function, m, tmpdir):
    a, b = _operands(120_000, seed=len(name))
    mult = multipliers.get(name)
    assert mult.kind == "direct" and mult.table is None and mult.mantissa_bits == (m or 23)
    want = _harness(SRC / file, function, tmpdir, m)(a, b)
    _same_bits(mult.direct.multiply(a, b), want)
    _same_bits(approxsim.multiply(a, b, multiplier=name), want)  # the public API, through product.py


def test_mitchell23_error_statistics():
    """Mitchell (1962): relative error in [-1/9, 0], mean -3.85%, on random operands."""
    rng = np.random.default_rng(7)
    a = (rng.standard_normal(400_000) * 10).astype(np.float32)
    b = (rng.standard_normal(400_000) / 10).astype(np.float32)
    exact = a.astype(np.float64) * b
    rel = (multipliers.get("mitchell23").direct.multiply(a, b) - exact) / exact
    assert abs(rel.mean() - (-0.0385)) < 0.0005
    assert -1 / 9 - 1e-6 <= rel.min() < -0.1105 and rel.max() <= 0.0


def test_mbm23_is_mbm_without_truncation(tmpdir):
    """On operands whose lowest fraction bit is set, mbm.c at M=23 (which sets that bit) equals mbm23."""
    a, b = _operands(20_000, seed=3)
    a = (a.view(np.uint32) | 1).view(np.float32)
    b = (b.view(np.uint32) | 1).view(np.float32)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    _same_bits(multipliers.get("mbm23").direct.multiply(a, b), _harness(SRC / "mbm.c", "mbm", tmpdir, 23)(a, b))
    rng = np.random.default_rng(8)
    a, b = (rng.uniform(1, 2, (2, 200_000)) * np.exp2(rng.integers(-20, 20, (2, 200_000)))).astype(np.float32)
    rel = multipliers.get("mbm23").direct.multiply(a, b).astype(np.float64) / (a.astype(np.float64) * b) - 1
    assert abs(rel.mean()) < 0.002 and np.abs(rel).max() < 0.08  # minimally biased, Mitchell's error halved


def test_fp32_trunc23_is_round_toward_zero():
    rng = np.random.default_rng(5)
    a = rng.standard_normal(50_000).astype(np.float32)
    b = rng.standard_normal(50_000).astype(np.float32)
    exact = a.astype(np.float64) * b  # exact: 24 x 24 bits
    rtz = (exact.view(np.uint64) & ~np.uint64((1 << 29) - 1)).view(np.float64).astype(np.float32)
    _same_bits(multipliers.get("fp32_trunc23").direct.multiply(a, b), rtz)


# --- a model that depends on the exponents -------------------------------------------------

def test_exponent_dependent_model(expdep_file, tmpdir):
    mult = multipliers.register_c(expdep_file, function="expdep", mode="direct", name="test_expdep")
    assert mult.kind == "direct" and mult.mantissa_bits is None and mult.table is None
    a, b = _operands(100_000, seed=11)
    _same_bits(mult.direct.multiply(a, b), _harness(expdep_file, "expdep", tmpdir)(a, b))
    x = np.float32([1.2345678, 1.7654321])
    small = mult.direct.multiply(x[0], x[1])
    assert small == x[0] * x[1]  # exact with small exponents
    big = mult.direct.multiply(x[0] * np.float32(1024), x[1])
    # a table assumes model(a * 2^10, b) == model(a, b) * 2^10: not so here
    assert big != small * np.float32(1024) and big == np.float32(
        (np.float32(x[0] * 1024 * x[1]).view(np.uint32) & np.uint32(0xFFFF8000)).view(np.float32))


# --- direct and table models of the same low-width multiplier --------------------------------

@pytest.fixture(scope="module")
def mbm7_pair():
    direct = Multiplier("mbm7_direct_test", 7, direct=DirectModel(SRC / "mbm.c", function="mbm", mantissa_bits=7))
    return direct, multipliers.get("mbm7")


def test_direct_and_table_agree_products(mbm7_pair):
    direct, table = mbm7_pair
    a, b = _operands(100_000, seed=2)
    _same_bits(direct.direct.multiply(a, b), approx_product(a, b, table.table, 7))


def test_direct_and_table_agree_matmul_and_conv(mbm7_pair):
    direct, table = mbm7_pair
    rng = np.random.default_rng(1)
    a = rng.standard_normal((13, 40)).astype(np.float32)
    b = rng.standard_normal((40, 300)).astype(np.float32)
    # the direct kernel adds k = 0, 1, ... in float32: the same sum of table products, bit for bit
    prods = approx_product(np.repeat(a[:, :, None], 300, 2), np.repeat(b[None], 13, 0), table.table, 7)
    acc = np.zeros((13, 300), np.float32)
    for k in range(40):
        acc = acc + prods[:, k, :]
    _same_bits(direct.direct.matmul(a, b), acc)
    # through the reference backend, direct and table give identical results
    _same_bits(REF.matmul(a, b, direct), REF.matmul(a, b, table))
    x = rng.standard_normal((2, 7, 6, 4)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 6)).astype(np.float32)
    geom = conv_geometry(x.shape, w.shape, strides=(2, 1), padding="SAME", groups=2)
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    _same_bits(REF.conv2d(x, w, geom, direct), REF.conv2d(x, w, geom, table))
    _same_bits(REF.conv2d_input_grad(dy, w, geom, direct), REF.conv2d_input_grad(dy, w, geom, table))
    _same_bits(REF.conv2d_filter_grad(x, dy, geom, direct), REF.conv2d_filter_grad(x, dy, geom, table))
    # direct conv kernel: float32 sums over (row, column, channel) in order, twin in NumPy
    xp = np.pad(x, ((0, 0), (geom.pad_top, geom.pad_bottom), (geom.pad_left, geom.pad_right), (0, 0)))
    want = np.zeros(geom.output_shape, np.float32)
    for g in range(2):
        for r in range(3):
            for s in range(3):
                patch = xp[:, r:r + (geom.oh - 1) * 2 + 1:2, s:s + geom.ow, g * 2:(g + 1) * 2]
                for ci in range(2):
                    xs = np.repeat(patch[..., ci:ci + 1], 3, -1)
                    ws = np.broadcast_to(w[r, s, ci, g * 3:(g + 1) * 3], xs.shape)
                    want[..., g * 3:(g + 1) * 3] += approx_product(xs, ws, table.table, 7).reshape(xs.shape)
    _same_bits(direct.direct.conv2d(x, w, geom), want)


# --- matmul and convolutions against the reference backend ---------------------------------

def test_matmul_against_reference():
    mult = multipliers.get("mbm23")
    rng = np.random.default_rng(3)
    cases = [((5, 7), (7, 3), False, False), ((7, 5), (7, 300), True, False), ((2, 5, 7), (3, 7), False, True),
             ((4, 1, 3, 6), (2, 6, 5), False, False), ((3, 4), (4, 0), False, False), ((3, 0), (0, 4), False, False)]
    for sa, sb, ta, tb in cases:
        a = rng.standard_normal(sa).astype(np.float32)
        b = rng.standard_normal(sb).astype(np.float32)
        got = mult.direct.matmul(a, b, transpose_a=ta, transpose_b=tb)
        want = REF.matmul(a, b, mult, transpose_a=ta, transpose_b=tb)
        scale = REF.matmul(np.abs(a), np.abs(b), mult, transpose_a=ta, transpose_b=tb)
        _close(got, want, scale)


CONV_CASES = [
    dict(x=(2, 9, 8, 3), w=(3, 3, 3, 4)),
    dict(x=(1, 10, 9, 4), w=(3, 2, 4, 5), strides=(2, 3), padding="SAME"),
    dict(x=(2, 11, 10, 2), w=(3, 3, 2, 3), dilations=(2, 1), padding=((1, 2), (0, 3))),
    dict(x=(1, 8, 8, 6), w=(2, 3, 2, 9), groups=3, strides=2, padding="SAME", dilations=(1, 2)),
    dict(x=(2, 7, 7, 4), w=(3, 3, 1, 4), groups=4, padding="SAME"),  # depthwise
    dict(x=(1, 5, 5, 3), w=(1, 1, 3, 300), strides=2),  # more channels than a tile
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_conv_against_reference(case):
    mult = multipliers.get("mbm23")
    rng = np.random.default_rng(4)
    opts = {k: v for k, v in case.items() if k not in ("x", "w")}
    geom = conv_geometry(case["x"], case["w"], **opts)
    x = rng.standard_normal(case["x"]).astype(np.float32)
    w = rng.standard_normal(case["w"]).astype(np.float32)
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    ax, aw, ady = np.abs(x), np.abs(w), np.abs(dy)
    _close(mult.direct.conv2d(x, w, geom), REF.conv2d(x, w, geom, mult), REF.conv2d(ax, aw, geom, mult))
    _close(mult.direct.conv2d_input_grad(dy, w, geom), REF.conv2d_input_grad(dy, w, geom, mult),
           REF.conv2d_input_grad(ady, aw, geom, mult))
    _close(mult.direct.conv2d_filter_grad(x, dy, geom), REF.conv2d_filter_grad(x, dy, geom, mult),
           REF.conv2d_filter_grad(ax, ady, geom, mult))


def test_operand_order(expdep_file):
    """Forward model(x, w), input gradient model(dy, w), filter gradient model(x, dy)."""
    path = expdep_file.parent / "first.c"
    path.write_text("float first(float a, float b) { return a * 1.0f + 0.0f * b; }\n")
    model = DirectModel(path, function="first")
    x = np.full((1, 3, 3, 1), 2.0, np.float32)
    w = np.full((2, 2, 1, 1), 5.0, np.float32)
    geom = conv_geometry(x.shape, w.shape)
    dy = np.full(geom.output_shape, 3.0, np.float32)
    assert np.all(model.conv2d(x, w, geom) == 4 * 2.0)
    assert model.conv2d_input_grad(dy, w, geom)[0, 1, 1, 0] == 4 * 3.0
    assert np.all(model.conv2d_filter_grad(x, dy, geom) == 4 * 2.0)
    assert np.all(model.matmul(np.full((2, 3), 7.0, np.float32), np.ones((3, 2), np.float32)) == 21.0)


def test_thread_count_does_not_change_results(monkeypatch):
    mult = multipliers.get("mitchell23")
    rng = np.random.default_rng(9)
    a = rng.standard_normal((64, 200)).astype(np.float32)
    b = rng.standard_normal((200, 70)).astype(np.float32)
    monkeypatch.setenv("APPROXSIM_NUM_THREADS", "1")
    one = mult.direct.matmul(a, b)
    monkeypatch.setenv("APPROXSIM_NUM_THREADS", "3")
    _same_bits(mult.direct.matmul(a, b), one)
    monkeypatch.setenv("APPROXSIM_NUM_THREADS", "zero")
    with pytest.raises(ValueError, match="APPROXSIM_NUM_THREADS"):
        mult.direct.matmul(a, b)


# --- registration, persistence, errors ---------------------------------------------------------

def test_persistence_across_processes_and_cli(expdep_file, tmpdir):
    from approxsim.cli import main

    assert main(["register", str(expdep_file), "--function", "expdep", "--mode", "direct", "--name",
                 "test_expdep_cli", "--mantissa-bits", "16"]) == 0
    code = textwrap.dedent("""
        import numpy as np
        from approxsim import multipliers
        m = multipliers.get("test_expdep_cli")
        assert m.kind == "direct" and m.mantissa_bits == 16 and m.table is None, m
        out = m.direct.multiply(np.float32([1.5, 3000.7]), np.float32([1.25, 2.2]))
        print(repr(out.view(np.uint32).tolist()))
        print(multipliers.get("mbm23").kind)
        """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    want = _harness(expdep_file, "expdep", tmpdir)(np.float32([1.5, 3000.7]), np.float32([1.25, 2.2]))
    assert proc.stdout.split("\n")[:2] == [repr(want.view(np.uint32).tolist()), "direct"]


def test_registration_errors(expdep_file, tmpdir):
    with pytest.raises(ValueError, match="mantissa_bits"):
        multipliers.register_c(expdep_file, function="expdep", mode="direct", mantissa_bits=30, name="t_bad")
    with pytest.raises(ValueError, match="mode"):
        multipliers.register_c(expdep_file, function="expdep", mode="lut", mantissa_bits=7, name="t_bad")
    with pytest.raises(ValueError, match="direct"):
        multipliers.register_c(expdep_file, function="expdep", name="t_bad")  # a table needs M
    with pytest.raises(CompileError, match="no function named 'nope'"):
        DirectModel(expdep_file, function="nope").build()
    bad = tmpdir / "badsig.c"
    bad.write_text("double badsig(double a, double b) { return a * b; }\n")
    with pytest.raises(CompileError, match="signature"):
        DirectModel(bad, function="badsig").build()
    broken = tmpdir / "broken.c"
    broken.write_text("float broken(float a, float b) { return a * ; }\n")
    with pytest.raises(CompileError, match="does not compile"):
        DirectModel(broken, function="broken").build()
    with pytest.raises(ValueError, match="shape"):
        geom = conv_geometry((1, 4, 4, 1), (2, 2, 1, 1))
        multipliers.get("mbm23").direct.conv2d(np.zeros((1, 4, 4, 2), np.float32), np.zeros((2, 2, 1, 1)), geom)


# --- GPU source: pre-scan, NVRTC, nvcc -----------------------------------------------------------

@pytest.mark.parametrize("snippet,construct", [
    ("#include <cstdint>\n", "#include <cstdint>"),
    ("#include <stdio.h>\n", "#include <stdio.h>"),
    ('float g(float a) { printf("%f", a); return a; }\n', "printf()"),
    ("float g(float a) { float* p = (float*)malloc(4); return a; }\n", "malloc()"),
    ("float g(float a) { return std::abs(a); }\n", "std::"),
    ("float g(float a) { FILE* f = fopen(\"x\", \"r\"); return a; }\n", "fopen()"),
])
def test_prescan_names_the_construct(snippet, construct, tmpdir):
    path = tmpdir / "gpu_bad.cc"
    path.write_text(snippet + "float gpu_bad(float a, float b) { return a * b; }\n")
    with pytest.raises(CompileError) as info:
        DirectModel(path, function="gpu_bad").cuda_source()
    assert construct in str(info.value) and "gpu_bad.cc:1" in str(info.value)


def test_prescan_skips_comments_strings_and_host_blocks(tmpdir):
    path = tmpdir / "gpu_ok.c"
    path.write_text(textwrap.dedent("""\
        #ifndef __CUDACC_RTC__
        #include <stdio.h>
        #endif
        /* printf("in a comment") and malloc( */
        float gpu_ok(float a, float b) {
        #if !defined(__CUDA_ARCH__)
          if (a != a) printf("nan");
        #endif
          const char* s = "std::malloc(";  // fopen(
          return a * b + (s[0] == 0);
        }
        """))
    source = DirectModel(path, function="gpu_ok").cuda_source()
    assert "approxsim_direct_matmul" in source and '#line 1 "gpu_ok.c"' in source


def test_nvrtc_log_translation():
    log = ('m.c(3): error: identifier "fopen" is undefined\n'
           'm.c(1): catastrophic error: cannot open source file "cstdint"')
    message = str(dsrc.explain_nvrtc_log(log, "m() in m.c"))
    assert "fopen" in message and "#include <cstdint>" in message and "NVRTC log" in message


needs_nvrtc = pytest.mark.skipif(nvrtc.find_nvrtc() is None,
                                 reason="NVRTC is not installed (pip install nvidia-cuda-nvrtc)")


@needs_nvrtc
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
def test_nvrtc_compiles_builtins_and_plain_models(arch, expdep_file):
    plain = expdep_file.parent / "plain_gpu.c"  # unannotated functions and a file-scope table
    plain.write_text("static const float k[2] = {1.0f, 0.5f};\n"
                     "static float half(float x) { const float* restrict p = k; return x * p[1]; }\n"
                     "float plain_gpu(float a, float b) { uint32_t u = 1; return half(a) * b * k[u - 1]; }\n")
    models = [multipliers.get(n).direct for n in ("mbm23", "mitchell23", "fp32_trunc17")]
    for model in models + [DirectModel(plain, function="plain_gpu")]:
        ptx = nvrtc.compile_to_ptx(model.cuda_source(), arch=arch, options=dsrc.NVRTC_OPTIONS)
        assert ptx.count(".entry") == 5 and "approxsim_direct_conv_wgrad" in ptx


@needs_nvrtc
def test_nvrtc_incompatible_model_gives_clear_error(tmpdir):
    path = tmpdir / "sneaky.c"  # hides fopen from the pre-scan behind a macro: NVRTC's log names it
    path.write_text("#define CALL(f) f\n"
                    "float sneaky(float a, float b) {\n"
                    "  void* p = CALL(fopen)(\"x\", \"r\"); return a * b + (p != 0); }\n")
    source = DirectModel(path, function="sneaky").cuda_source()
    with pytest.raises(CompileError) as info:
        nvrtc.compile_to_ptx(source, options=dsrc.NVRTC_OPTIONS)
    message = str(dsrc.explain_nvrtc_log(info.value.args[1], "sneaky() in sneaky.c"))
    assert "fopen" in message and "host-only" in message and "sneaky.c(3)" in message


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
def test_nvcc_compiles_generated_source(arch, tmpdir):
    """The built-ins mark their functions __host__ __device__, so nvcc needs no -default-device."""
    cu = tmpdir / f"mbm23_{arch}.cu"
    cu.write_text(multipliers.get("mbm23").direct.cuda_source())
    out = subprocess.run(["nvcc", "-ptx", f"-arch={arch}", "--fmad=false", str(cu), "-o", str(cu.with_suffix(".ptx"))],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert cu.with_suffix(".ptx").read_text().count(".entry") == 5


def _gpu_usable():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _gpu_usable(), reason="no CuPy or no CUDA GPU here")
def test_gpu_equals_cpu():
    import cupy as cp

    mult = multipliers.get("mbm23")
    rng = np.random.default_rng(12)
    a, b = _operands(50_000, seed=12)
    _same_bits(cp.asnumpy(mult.direct.cuda_multiply(cp.asarray(a), cp.asarray(b))), mult.direct.multiply(a, b))
    x = rng.standard_normal((2, 9, 8, 6)).astype(np.float32)
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    geom = conv_geometry(x.shape, w.shape, strides=2, padding="SAME", groups=2, dilations=(1, 2))
    dy = rng.standard_normal(geom.output_shape).astype(np.float32)
    m = mult.direct
    # same summation order on both: equal bit for bit
    _same_bits(cp.asnumpy(m.cuda_matmul(cp.asarray(x[0, 0]), cp.asarray(x[1, 0]), transpose_b=True)),
               m.matmul(x[0, 0], x[1, 0], transpose_b=True))
    _same_bits(cp.asnumpy(m.cuda_conv2d(cp.asarray(x), cp.asarray(w), geom)), m.conv2d(x, w, geom))
    _same_bits(cp.asnumpy(m.cuda_conv2d_input_grad(cp.asarray(dy), cp.asarray(w), geom)),
               m.conv2d_input_grad(dy, w, geom))
    _same_bits(cp.asnumpy(m.cuda_conv2d_filter_grad(cp.asarray(x), cp.asarray(dy), geom)),
               m.conv2d_filter_grad(x, dy, geom))


# --- the CUDA kernels and their launchers, run on the CPU ----------------------------------------

_EMULATION = """
#define __global__
struct approxsim_emu_dim { long long x; };
static const approxsim_emu_dim blockIdx = {0}, threadIdx = {0}, blockDim = {1}, gridDim = {1};
"""


def _c_argument(a):
    """A kernel argument for ctypes: arrays by pointer, a structured scalar (the geometry) by value."""
    if isinstance(a, np.ndarray) and a.dtype.names:
        struct = type("Struct", (ctypes.Structure,), {"_fields_": [(n, ctypes.c_int64) for n in a.dtype.names]})
        return struct(*[int(a[0][n]) for n in a.dtype.names])
    if isinstance(a, np.ndarray):
        return ctypes.c_void_p(a.ctypes.data)
    return ctypes.c_longlong(int(a))


class _FakeCupy:
    """Just enough of CuPy, on NumPy, to run CudaKernels with the generated CUDA source compiled by g++
    (one "thread" walks every grid-stride loop). Checks the kernels' index arithmetic and the launchers'
    arguments without a GPU."""

    float32, int64 = np.float32, np.int64
    asarray = staticmethod(np.asarray)
    ascontiguousarray = staticmethod(np.ascontiguousarray)
    broadcast_arrays = staticmethod(np.broadcast_arrays)
    broadcast_to = staticmethod(np.broadcast_to)
    swapaxes = staticmethod(np.swapaxes)
    empty = staticmethod(np.empty)

    class cuda:  # noqa: N801 - mirrors cupy.cuda.compiler.CompileException
        class compiler:  # noqa: N801
            class CompileException(Exception):
                pass

    def __init__(self, workdir):
        self.workdir = workdir

    def RawModule(self, code, options, backend):  # noqa: N802 - CuPy's name
        assert "-default-device" in options and "--fmad=false" in options and backend == "nvrtc"
        src = self.workdir / "emulated.cc"
        src.write_text(_EMULATION + code)
        lib = self.workdir / "emulated.so"
        subprocess.run(["g++", "-O2", "-shared", "-fPIC", "-ffp-contract=off", str(src), "-o", str(lib)],
                       check=True, capture_output=True)
        dll = ctypes.CDLL(str(lib))

        class Module:
            def compile(self):
                pass

            def get_function(self, name):
                def launch(grid, block, args):
                    assert grid[0] >= 1 and block[0] >= 1
                    getattr(dll, name)(*[_c_argument(a) for a in args])
                return launch

        return Module()


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_cuda_kernels_emulated_on_cpu_equal_cpu_kernels(tmpdir, monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy(tmpdir))
    model = multipliers.get("mbm23").direct
    gpu = dcuda.CudaKernels(model)
    rng = np.random.default_rng(13)
    a, b = _operands(20_000, seed=13)
    _same_bits(gpu.multiply(a, b), model.multiply(a, b))
    for sa, sb, ta, tb in [((5, 7), (7, 300), False, False), ((2, 7, 5), (3, 7), True, True),
                           ((4, 1, 3, 6), (2, 6, 5), False, False)]:
        x = rng.standard_normal(sa).astype(np.float32)
        y = rng.standard_normal(sb).astype(np.float32)
        _same_bits(gpu.matmul(x, y, transpose_a=ta, transpose_b=tb),
                   model.matmul(x, y, transpose_a=ta, transpose_b=tb))
    for case in CONV_CASES:
        opts = {k: v for k, v in case.items() if k not in ("x", "w")}
        geom = conv_geometry(case["x"], case["w"], **opts)
        x = rng.standard_normal(case["x"]).astype(np.float32)
        w = rng.standard_normal(case["w"]).astype(np.float32)
        dy = rng.standard_normal(geom.output_shape).astype(np.float32)
        # the same summation order as the CPU kernels: equal bit for bit
        _same_bits(gpu.conv2d(x, w, geom), model.conv2d(x, w, geom))
        _same_bits(gpu.conv2d_input_grad(dy, w, geom), model.conv2d_input_grad(dy, w, geom))
        _same_bits(gpu.conv2d_filter_grad(x, dy, geom), model.conv2d_filter_grad(x, dy, geom))
