"""The CUDA backend: kernels compile, device arithmetic checked on the CPU, GPU results vs reference.

Three layers, so that a machine without a GPU still checks most of what can go wrong:

1. every ``cuda/*.cu`` compiles to PTX for sm_80 and sm_90 (nvcc, and NVRTC through ctypes: the
   test extra installs NVRTC, no CuPy or GPU needed), every product policy;
2. the device-side code that is host-compilable (``approxsim_codes.cuh``: the product paths;
   ``approxsim_loaders.cuh``: the implicit-GEMM index arithmetic) is compiled with g++ into a
   small program (``tests/cuda_host/host_products.cc``) and compared with the NumPy reference:
   products bit for bit, contractions within tolerance, special values, operand order, every
   conv geometry below; the kernels themselves run on the CPU through an emulator
   (``tests/cuda_host/kernel_emulator.cc``) and the backend's own launch code;
3. the same comparisons on the GPU through ``backend="cuda"`` (skipped without CuPy and a GPU).
"""

import os
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

from approxsim import multipliers
from approxsim._resources import header_dir
from approxsim.backends import backend_status, get_backend
from approxsim.backends import cuda as cuda_backend
from approxsim.backends import cuda_build
from approxsim.direct import nvrtc
from approxsim.geometry import conv_geometry
from approxsim.multiplier import Multiplier
from approxsim.product import products

KERNEL_DIR = cuda_build.kernel_dir()
CU_FILES = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
TILED_FILES = [f for f in CU_FILES if f != "multiply.cu"]  # the files of the tiled kernels (every policy)
VARIANTS = cuda_build.VARIANTS
HOST_DIR = os.path.join(os.path.dirname(__file__), "cuda_host")
CUDA_OK, CUDA_REASON = backend_status("cuda")
gpu = pytest.mark.skipif(not CUDA_OK, reason=f"no usable CUDA backend: {CUDA_REASON}")

# --- multipliers covering every table placement -----------------------------------------------


def _random_table(m, seed, *, negative=False):
    rng = np.random.default_rng(seed)
    t = rng.uniform(0.9, 3.9, size=(1 << m, 1 << m)).astype(np.float32)
    if negative:
        t[0, 1], t[1, 0], t[1, 1] = -1.75, 0.0, np.float32(1e-39)  # negative, zero, subnormal entries
    return t


def _mults():
    return {
        "fp32": multipliers.get("fp32"),
        "s16": multipliers.get("mbm7"),
        "s32": Multiplier("rand5", 5, _random_table(5, 1)),
        "g32": Multiplier("rand8", 8, _random_table(8, 2)),
        "g32_11": multipliers.get("mitchell11"),
        "gen": Multiplier("neg4", 4, _random_table(4, 3, negative=True)),
    }


MULTS = _mults()


def test_table_plans_cover_every_variant():
    for key, mult in MULTS.items():
        assert cuda_build.table_plan(mult).variant == key.split("_")[0], mult
    assert cuda_build.table_plan(multipliers.get("mbm3")).variant == "s16"


def test_table_plan_exponent_range():
    """The kernels' fast-path predicate gets the exponent range of the table's entries."""
    plan = cuda_build.table_plan(Multiplier("span", 1, np.float32([[2.0**-20, 1.5], [3.0, 2.0**30]])))
    assert (plan.variant, plan.emin, plan.emax) == ("s16", -20, 30)
    plan = cuda_build.table_plan(multipliers.get("mbm7"))
    assert (plan.emin, plan.emax) == (0, 1)


def test_geometry_struct_matches_the_c_struct():
    """The CUDA struct argument has the fields of csrc/geometry.h, by name and in order, 64-bit each."""
    from approxsim import _cpu

    assert list(cuda_build.GEOMETRY_DTYPE.names) == _cpu.geometry_fields()
    assert cuda_build.GEOMETRY_DTYPE.itemsize == 8 * len(_cpu.geometry_fields())
    g = conv_geometry((2, 7, 6, 4), (3, 2, 2, 6), strides=(2, 1), padding="SAME", dilations=(1, 2), groups=2)
    st = cuda_build.geometry_struct(g)
    assert {k: int(st[k][0]) for k in st.dtype.names} == g.fields()


def test_status_names_the_extra_when_unusable():
    ok, reason = backend_status("cuda")
    if not ok:
        assert "approxsim[cuda12]" in reason or "GPU" in reason or "NVRTC" in reason, reason


# --- 1. compilation -----------------------------------------------------------------------------


@pytest.mark.parametrize("filename", CU_FILES)
def test_kernel_source_is_self_contained(filename):
    """approxsim's own headers are inlined, so CuPy's cache (keyed by source) sees every edit."""
    src = cuda_build.kernel_source(filename)
    assert '#include "' not in src.replace("#include <stdint.h>", "")
    assert "approxsim_scale_entry" in src
    assert filename not in TILED_FILES or "approxsim_tiled" in src


def test_compile_options(monkeypatch):
    opts = cuda_build.compile_options("s16")
    assert f"-I{header_dir()}" in opts and "-DAPPROXSIM_ONLY_s16" in opts
    monkeypatch.setenv("APPROXSIM_CUDA_MIN_BLOCKS", "1")
    assert "-DAPPROXSIM_MIN_BLOCKS=1" in cuda_build.compile_options("s16")
    monkeypatch.setenv("APPROXSIM_CUDA_MIN_BLOCKS", "many")
    with pytest.raises(ValueError, match="APPROXSIM_CUDA_MIN_BLOCKS"):
        cuda_build.compile_options("s16")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", [pytest.param("sm_80", marks=pytest.mark.slow), "sm_90"])  # A100 in the slow step
@pytest.mark.parametrize("filename", CU_FILES)
def test_kernels_compile_to_ptx_with_nvcc(filename, arch, tmp_path):
    out = tmp_path / (filename + ".ptx")
    cmd = ["nvcc", "-std=c++14", "-ptx", f"-arch={arch}", f"-I{header_dir()}", f"-I{KERNEL_DIR}",
           str(KERNEL_DIR / filename), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    _check_entry_points(filename, out.read_text(), VARIANTS)


def _check_entry_points(filename, ptx, variants):
    if filename == "multiply.cu":
        assert ".entry approxsim_multiply(" in ptx
        return
    for variant in variants:
        for size in "LS":
            assert f"_{variant}_{size}(" in ptx, (filename, variant, size)


@pytest.mark.skipif(nvrtc.find_nvrtc() is None, reason="NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
@pytest.mark.parametrize("arch", [pytest.param("compute_80", marks=pytest.mark.slow), "compute_90"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("filename", CU_FILES)
def test_kernels_compile_with_nvrtc(filename, variant, arch):
    """The exact source and options the backend gives NVRTC (through ctypes: no CuPy or GPU needed)."""
    if filename == "multiply.cu" and variant != "gen":
        pytest.skip("multiply.cu has one kernel, compiled with the gen options")
    ptx = nvrtc.compile_to_ptx(cuda_build.kernel_source(filename), arch=arch,
                               options=cuda_build.compile_options(variant), name=filename)
    _check_entry_points(filename, ptx, [variant])


# --- 2. device code on the CPU ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def host_program():
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler (g++) to compile the device code for the CPU")
    d = tempfile.mkdtemp(prefix="approxsim-cuda-host-")
    src, exe = os.path.join(HOST_DIR, "host_products.cc"), os.path.join(d, "host")
    res = subprocess.run([cxx, "-std=c++14", "-O1", "-Wall", "-Wno-unused-function", f"-I{header_dir()}",
                          f"-I{KERNEL_DIR}", src, "-o", exe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    yield exe
    shutil.rmtree(d, ignore_errors=True)


def _run_host(exe, op, mult, p0, p1, nout, ints, *, fast):
    plan = cuda_build.table_plan(mult)
    with tempfile.TemporaryDirectory() as d:
        paths = [os.path.join(d, n) for n in ("t", "p0", "p1", "out")]
        (np.zeros(1, np.uint32) if plan.host_table is None else plan.host_table).tofile(paths[0])
        np.ascontiguousarray(p0, np.float32).tofile(paths[1])
        np.ascontiguousarray(p1, np.float32).tofile(paths[2])
        cmd = [exe, op, plan.variant, str(mult.mantissa_bits or 0), str(plan.emin), str(plan.emax), str(int(fast)),
               *paths[:3], paths[3], str(nout)]
        res = subprocess.run(cmd + [str(int(v)) for v in ints], capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        return np.fromfile(paths[3], dtype=np.float32)


def _special_operands(n, seed):
    """Random operands of all magnitudes with every special value mixed in."""
    rng = np.random.default_rng(seed)
    bits = rng.integers(0, 2**32, size=n, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32).copy()
    specials = np.array([0.0, -0.0, 1e-40, -1e-45, np.inf, -np.inf, np.nan, 1.0, -1.5, 3.4e38, -3.4e38,
                         1.1754944e-38, 2.0**-126, 2.0**127, 0.75], np.float32)
    x[rng.integers(0, n, size=n // 4)] = rng.choice(specials, size=n // 4)
    return x


def _same_bits(got, want):
    got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def _exponents(x):
    """Unbiased exponents of the normal operands (None for zero/subnormal), and which are Inf/NaN."""
    e = ((np.asarray(x, np.float32).view(np.uint32) >> 23) & 0xFF).astype(np.int64)
    return np.where((e == 0) | (e == 255), np.iinfo(np.int64).min // 4, e - 127), e == 255, e == 0


def _moderate(x):
    """Finite operands with |exponent| <= 60 (or zero/subnormal): any pair of them is on the fast path."""
    e = ((x.view(np.uint32) >> 23) & 0xFF).astype(np.int64)
    return (e == 0) | (np.abs(e - 127) <= 60)


def _fast_pairs(a, b, mult):
    """Pairs the kernels' predicate admits to the fast path (a NumPy twin of approx_product.h, per pair)."""
    plan = cuda_build.table_plan(mult)
    ea, sa, za = _exponents(a)
    eb, sb, zb = _exponents(b)
    special = sa | sb
    if plan.variant == "gen":
        return ~special
    if plan.variant == "fp32":
        return ~special & (za | zb | (ea + eb <= 125))
    tb = zb | ((plan.emax + eb <= 127) & (plan.emin + eb >= -126))
    ab = za | zb | ((ea + eb <= 127) & (ea + eb >= -126))
    tab = za | zb | ((plan.emax + ea + eb <= 127) & (plan.emin + ea + eb >= -126))
    return ~special & tb & ab & tab


@pytest.mark.parametrize("key", list(MULTS))
def test_host_products_bit_exact(host_program, key):
    mult = MULTS[key]
    a, b = _special_operands(20000, 1), _special_operands(20000, 2)
    want = products(a, b, mult)
    _same_bits(_run_host(host_program, "products", mult, a, b, a.size, [], fast=False), want)
    fast = _fast_pairs(a, b, mult)
    assert fast.sum() > 2000
    got = _run_host(host_program, "products", mult, a[fast], b[fast], int(fast.sum()), [], fast=True)
    _same_bits(got, want[fast])
    # operands of everyday magnitudes: all on the fast path
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(5000) * 10.0 ** rng.integers(-15, 15, 5000)).astype(np.float32), \
        rng.standard_normal(5000).astype(np.float32)
    assert _fast_pairs(a, b, mult).all()
    _same_bits(_run_host(host_program, "products", mult, a, b, a.size, [], fast=True), products(a, b, mult))


def _close(got, want, scale):
    got, want = np.asarray(got, np.float32).ravel(), np.asarray(want, np.float32).ravel()
    scale = np.asarray(scale, np.float64).ravel()
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    inf = np.isinf(want)
    np.testing.assert_array_equal(got[inf], want[inf])
    ok = ~nan & ~inf
    err = np.abs(got[ok].astype(np.float64) - want[ok])
    bound = 1e-5 * scale[ok] + 1e-37
    assert (err <= bound).all(), f"max error {np.max(err - bound)} over the bound"


def _abs_mult(mult):
    if mult.kind != "table":
        return mult
    return Multiplier(mult.name + "_abs", mult.mantissa_bits, np.abs(mult.table))


REF = get_backend("reference")

GEOMETRIES = [  # input shape, filter shape, strides, padding, dilations, groups
    ((2, 7, 7, 3), (3, 3, 3, 4), 1, "SAME", 1, 1),
    ((2, 9, 8, 4), (3, 2, 4, 6), (2, 1), "VALID", 1, 1),
    ((1, 9, 9, 2), (3, 3, 2, 3), 1, "SAME", 2, 1),
    ((1, 6, 7, 4), (3, 3, 2, 6), 2, "SAME", 1, 2),
    ((2, 5, 5, 3), (3, 3, 1, 6), 1, "SAME", 1, 3),  # depthwise, channel multiplier 2
    ((1, 10, 9, 2), (2, 2, 2, 3), 3, ((1, 2), (0, 1)), 1, 1),  # strides larger than the filter
    ((2, 6, 6, 5), (1, 1, 5, 4), 2, "VALID", 1, 1),
    ((1, 8, 8, 3), (3, 3, 1, 3), 2, "SAME", (2, 1), 3),  # depthwise, strided and dilated
]


def _conv_cases(geom_args, seed, specials=False):
    (ishape, fshape, strides, padding, dil, groups) = geom_args
    g = conv_geometry(ishape, fshape, strides=strides, padding=padding, dilations=dil, groups=groups)
    rng = np.random.default_rng(seed)
    x, w, dy = (rng.standard_normal(int(np.prod(shape))).astype(np.float32).reshape(shape)
                for shape in (g.input_shape, g.filter_shape, g.output_shape))
    if specials:  # zeros, subnormals and extremes everywhere; a few Inf and NaN (most sums stay finite)
        for arr in (x, w, dy):
            flat = arr.reshape(-1)
            pos = rng.integers(0, flat.size, size=max(1, flat.size // 8))
            flat[pos] = rng.choice(np.float32([0.0, -0.0, 1e-40, -1e-45, 2.0**-126, 1e18, -1e-30]), size=pos.size)
            flat[rng.integers(0, flat.size)] = rng.choice(np.float32([np.inf, -np.inf, np.nan]))
    return g, x, w, dy


def _geom_ints(g):
    """The geometry struct's fields, in the order of csrc/geometry.h."""
    return list(g.fields().values())


CONV_OPS = [  # name, method, operands, output shape
    ("conv_fwd", "conv2d", lambda x, w, dy: (x, w), lambda g: g.output_shape),
    ("conv_dgrad", "conv2d_input_grad", lambda x, w, dy: (dy, w), lambda g: g.input_shape),
    ("conv_wgrad", "conv2d_filter_grad", lambda x, w, dy: (x, dy), lambda g: g.filter_shape),
]


def _check_conv(run, op, g, x, w, dy, mult):
    name, method, operands, shape = op
    p0, p1 = operands(x, w, dy)
    want = getattr(REF, method)(p0, p1, g, mult)
    scale = getattr(REF, method)(np.abs(p0), np.abs(p1), g, _abs_mult(mult))
    got = run(p0, p1, shape(g))
    _close(np.asarray(got).reshape(want.shape), want, scale)


@pytest.mark.parametrize("op", CONV_OPS, ids=[o[0] for o in CONV_OPS])
@pytest.mark.parametrize("gi", range(len(GEOMETRIES)))
@pytest.mark.parametrize("key", ["fp32", "s16", "g32_11", "gen"])
def test_host_conv_geometries(host_program, op, gi, key):
    mult = MULTS[key]
    g, x, w, dy = _conv_cases(GEOMETRIES[gi], gi)
    for fast in (True, False):
        def run(p0, p1, shape):
            return _run_host(host_program, op[0], mult, p0, p1, int(np.prod(shape)), _geom_ints(g), fast=fast)
        _check_conv(run, op, g, x, w, dy, mult)


@pytest.mark.parametrize("op", CONV_OPS, ids=[o[0] for o in CONV_OPS])
@pytest.mark.parametrize("gi", [0, 1, 5])
def test_host_conv_special_values(host_program, op, gi):
    mult = MULTS["s16"]
    g, x, w, dy = _conv_cases(GEOMETRIES[gi], 100 + gi, specials=True)
    for fast in (True, False):
        def run(p0, p1, shape):
            return _run_host(host_program, op[0], mult, p0, p1, int(np.prod(shape)), _geom_ints(g), fast=fast)
        _check_conv(run, op, g, x, w, dy, mult)


@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_host_gemm_transposes_and_operand_order(host_program, ta, tb):
    m, k, n = 5, 7, 6
    table = np.ones((4, 4), np.float32)
    table[1, 2], table[2, 1] = 1.5, 1.25  # marked: T[a][b] != T[b][a]
    mult = Multiplier("marked2", 2, table)
    rng = np.random.default_rng(7)
    a = rng.choice(np.float32([1.25, 1.5, 1.0, -1.75]), size=(m, k)).astype(np.float32)
    b = rng.choice(np.float32([1.25, 1.5, 1.0, -1.75]), size=(k, n)).astype(np.float32)
    a_in, b_in = (a.T.copy() if ta else a), (b.T.copy() if tb else b)
    a_rs, a_ks = (1, m) if ta else (k, 1)
    b_ks, b_cs = (1, k) if tb else (n, 1)
    want = REF.matmul(a_in, b_in, mult, transpose_a=ta, transpose_b=tb)
    for fast in (True, False):
        got = _run_host(host_program, "gemm", mult, a_in, b_in, m * n, [m, n, k, a_rs, a_ks, b_ks, b_cs], fast=fast)
        np.testing.assert_array_equal(got.reshape(m, n), want)
    swapped = REF.matmul(b_in, a_in, mult, transpose_a=not tb, transpose_b=not ta).T  # same sums, T[b][a]
    assert not np.array_equal(swapped, want)


# --- 2b. the kernels themselves, emulated on the CPU ------------------------------------------------

@pytest.fixture(scope="module")
def kernel_emulator():
    """cuda/*.cu compiled for the CPU: each block's 256 threads as std::threads (tests/cuda_host/kernel_emulator.cc)."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler (g++) to emulate the kernels on the CPU")
    d = tempfile.mkdtemp(prefix="approxsim-cuda-emu-")
    src, exe = os.path.join(HOST_DIR, "kernel_emulator.cc"), os.path.join(d, "emu")
    res = subprocess.run([cxx, "-std=c++17", "-O1", "-pthread", "-Wno-unknown-pragmas", f"-I{header_dir()}",
                          f"-I{KERNEL_DIR}", src, "-o", exe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    yield exe
    shutil.rmtree(d, ignore_errors=True)


def _flat_ints(values):
    """Kernel scalars as ints, a geometry struct (structured array) as its fields in order."""
    out = []
    for v in values:
        if isinstance(v, np.ndarray) and v.dtype.names:
            out += [int(v[0][name]) for name in v.dtype.names]
        else:
            out.append(int(v))
    return out


def _emulated_kernel(exe, name, calls):
    def kernel(grid, block, args, shared_mem=0):
        # sm_80 and later allow 163 KiB or more with the opt-in the backend makes; the emulator has 64 KiB
        assert block == (256,) and shared_mem <= 64 * 1024, (block, shared_mem)
        assert shared_mem <= 48 * 1024 or getattr(kernel, "max_dynamic_shared_size_bytes", 0) >= shared_mem
        calls.append((name, grid, int(args[-2])))
        with tempfile.TemporaryDirectory() as d:
            paths = [os.path.join(d, n) for n in ("p0", "p1", "out", "table")]
            for path, arr in zip(paths, args[:4]):
                np.ascontiguousarray(arr).tofile(path)
            ints = [str(int(v)) for v in _flat_ints(args[4:])]
            res = subprocess.run([exe, name, *map(str, grid), paths[3], paths[0], paths[1], paths[2], *ints],
                                 capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
            out = args[2]
            out[...] = np.fromfile(paths[2], dtype=np.float32).reshape(out.shape)

    return kernel


# --- 3. on the GPU --------------------------------------------------------------------------------


@pytest.fixture
def cuda():
    if not CUDA_OK:
        pytest.skip(f"no usable CUDA backend: {CUDA_REASON}")
    return get_backend("cuda")


@pytest.fixture(params=["gpu", pytest.param("emulated", marks=pytest.mark.slow)])
def kb(request, monkeypatch):
    """The CUDA backend on the GPU, and the same backend with its kernels emulated on the CPU."""
    if request.param == "gpu":
        if not CUDA_OK:
            pytest.skip(f"no usable CUDA backend: {CUDA_REASON}")
        return get_backend("cuda")
    exe = request.getfixturevalue("kernel_emulator")
    be = object.__new__(cuda_backend.CudaBackend)
    be._cp, be._dummy = _FakeCupy, {}
    be.calls = []
    monkeypatch.setattr(cuda_backend, "_function", lambda filename, name, variant: _emulated_kernel(exe, name, be.calls))
    return be


@pytest.mark.gpu
@pytest.mark.parametrize("key", list(MULTS))
def test_kernel_products_bit_exact(kb, key):
    """K = 1 matmuls are single products: bit for bit, special values included (exact path)."""
    mult = MULTS[key]
    a, b = _special_operands(512, 3), _special_operands(384, 4)
    # A sum starts at +0, so a product -0 comes out +0 (as in every backend): compare with p + 0.
    got = kb.matmul(a[:, None], b[None, :], mult)
    want = products(a[:, None], b[None, :], mult) + np.float32(0)
    _same_bits(got, want)
    fa, fb = a[_moderate(a)], b[_moderate(b)]  # every tile of these takes the fast path
    assert _fast_pairs(fa[:, None], fb[None, :], mult).all()
    _same_bits(kb.matmul(fa[:, None], fb[None, :], mult), products(fa[:, None], fb[None, :], mult) + np.float32(0))


@pytest.mark.gpu
@pytest.mark.parametrize("key", list(MULTS))
@pytest.mark.parametrize("shape", [(1, 300, 70, 130), (3, 129, 2000, 65), (2, 16, 5000, 8)])
def test_kernel_matmul_sums(kb, key, shape):
    mult = MULTS[key]
    nb, m, k, n = shape
    rng = np.random.default_rng(5)
    a = rng.standard_normal((nb, m, k)).astype(np.float32)
    b = rng.standard_normal((k, n)).astype(np.float32)  # broadcast over the batch
    for ta, tb in ((False, False), (True, True)):
        aa = np.swapaxes(a, -1, -2).copy() if ta else a
        bb = b.T.copy() if tb else b
        want = REF.matmul(aa, bb, mult, transpose_a=ta, transpose_b=tb)
        scale = REF.matmul(np.abs(aa), np.abs(bb), _abs_mult(mult), transpose_a=ta, transpose_b=tb)
        _close(kb.matmul(aa, bb, mult, transpose_a=ta, transpose_b=tb), want, scale)


@gpu
@pytest.mark.gpu
def test_gpu_cupy_in_cupy_out(cuda):
    import cupy

    a = cupy.ones((4, 3), cupy.float32)
    out = cuda.matmul(a, np.ones((3, 2), np.float32), MULTS["s16"])
    assert isinstance(out, cupy.ndarray)
    assert isinstance(cuda.matmul(np.ones((4, 3), np.float32), np.ones((3, 2), np.float32), MULTS["s16"]),
                      np.ndarray)


@pytest.mark.gpu
def test_kernel_operand_order(kb):
    table = np.ones((4, 4), np.float32)
    table[1, 2], table[2, 1] = 1.5, 1.25
    mult = Multiplier("marked2", 2, table)
    a = np.float32([[1.25]])
    b = np.float32([[1.5]])
    assert kb.matmul(a, b, mult)[0, 0] == 1.5
    assert kb.matmul(b, a, mult)[0, 0] == 1.25


@pytest.mark.gpu
@pytest.mark.parametrize("op", CONV_OPS, ids=[o[0] for o in CONV_OPS])
@pytest.mark.parametrize("gi", range(len(GEOMETRIES)))
@pytest.mark.parametrize("key", list(MULTS))
def test_kernel_conv_geometries(kb, op, gi, key):
    mult = MULTS[key]
    g, x, w, dy = _conv_cases(GEOMETRIES[gi], gi)
    _check_conv(lambda p0, p1, shape: getattr(kb, op[1])(p0, p1, g, mult), op, g, x, w, dy, mult)


@pytest.mark.gpu
@pytest.mark.parametrize("op", CONV_OPS, ids=[o[0] for o in CONV_OPS])
@pytest.mark.parametrize("gi", range(len(GEOMETRIES)))
def test_kernel_conv_special_values(kb, op, gi):
    mult = MULTS["s16"]
    g, x, w, dy = _conv_cases(GEOMETRIES[gi], 100 + gi, specials=True)
    _check_conv(lambda p0, p1, shape: getattr(kb, op[1])(p0, p1, g, mult), op, g, x, w, dy, mult)


@gpu
@pytest.mark.gpu
def test_gpu_large_conv_split_k(cuda):
    """A filter gradient with a long reduction (split-K, atomics) and a large forward (tile size L)."""
    g, x, w, dy = _conv_cases(((8, 28, 28, 32), (3, 3, 32, 160), 1, "SAME", 1, 1), 11)
    for op in CONV_OPS:
        _check_conv(lambda p0, p1, shape: getattr(cuda, op[1])(p0, p1, g, MULTS["s16"]), op, g, x, w, dy,
                    MULTS["s16"])


# --- the backend's Python glue, against an emulated CuPy (no GPU) -------------------------------------


class _Dev(np.ndarray):
    """A NumPy array that plays a CuPy array."""


class _FakeCupy:
    """The part of CuPy the backend uses, on NumPy; kernels emulated from their parameter names."""

    ndarray = _Dev
    float32, uint32 = np.float32, np.uint32

    class cuda:  # noqa: N801 - mirrors cupy.cuda
        class Device:
            id = 0
            attributes = {"MultiProcessorCount": 8}

    @staticmethod
    def asarray(x):
        return np.asarray(x).view(_Dev)

    @staticmethod
    def ascontiguousarray(x, dtype=None):
        return np.ascontiguousarray(x, dtype=dtype).view(_Dev)

    @staticmethod
    def empty(shape, dtype):
        return np.full(shape, np.nan, dtype).view(_Dev)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype).view(_Dev)

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape).view(_Dev)

    @staticmethod
    def asnumpy(x):
        return np.array(x).view(np.ndarray)


def _param_names(filename, op):
    import re

    src = (KERNEL_DIR / filename).read_text()
    macro = "APPROXSIM_PARAMS_gemm" if op == "gemm" else "APPROXSIM_CONV_PARAMS"
    text = re.search(r"#define " + macro + r"\s*(.*?)\n\n", src, re.S).group(1).replace("\\", " ")
    return [re.split(r"[\s*]+", p.strip())[-1] for p in text.split(",")]


def _fake_kernel(filename, name, mult, calls):
    op = name.split("_")[1] if name.startswith("approxsim_gemm") else "_".join(name.split("_")[1:3])
    names = _param_names(filename, op)

    def kernel(grid, block, args, shared_mem=0):
        assert block == (256,) and len(args) == len(names) and shared_mem <= 64 * 1024
        p = dict(zip(names, args))
        splits, k_chunk = int(p["splits"]), int(p["k_chunk"])
        assert grid[2] % splits == 0 and k_chunk % 8 == 0
        calls.append((name, grid, splits))
        if op == "gemm":
            rows, cols, k = int(p["rows"]), int(p["cols"]), int(p["K"])
            st = np.lib.stride_tricks.as_strided
            for z in range(grid[2] // splits):
                a = st(p["A"][z * int(p["a_bs"]):], (rows, k), (4 * int(p["a_rs"]), 4 * int(p["a_ks"])))
                b = st(p["B"][z * int(p["b_bs"]):], (k, cols), (4 * int(p["b_ks"]), 4 * int(p["b_cs"])))
                c = p["C"][z * rows * cols:(z + 1) * rows * cols].reshape(rows, cols)
                for s in range(splits):
                    ks = slice(s * k_chunk, min(k, (s + 1) * k_chunk))
                    part = REF.matmul(np.array(a[:, ks]), np.array(b[ks]), mult)
                    c[...] = c + part if splits > 1 else part
            return
        g = {k: int(p["G"][0][k]) for k in p["G"].dtype.names}  # the geometry struct, by field name
        assert grid[2] == g["groups"] * splits
        geom = conv_geometry((g["n"], g["h"], g["w"], g["c"]), (g["kh"], g["kw"], g["c"] // g["groups"], g["cout"]),
                             strides=(g["sh"], g["sw"]), dilations=(g["dh"], g["dw"]), groups=g["groups"],
                             padding=((g["pad_top"], g["pad_bottom"]), (g["pad_left"], g["pad_right"])))
        assert geom.fields() == g
        method = {"conv_fwd": "conv2d", "conv_dgrad": "conv2d_input_grad", "conv_wgrad": "conv2d_filter_grad"}[op]
        res = getattr(REF, method)(np.array(p["P0"]), np.array(p["P1"]), geom, mult)
        out = p["OUT"]
        out[...] = out + res.reshape(out.shape) if splits > 1 else res.reshape(out.shape)

    return kernel


@pytest.fixture
def fake_cuda(monkeypatch):
    be = object.__new__(cuda_backend.CudaBackend)
    be._cp, be._dummy = _FakeCupy, {}
    state = {"mult": None, "calls": []}
    monkeypatch.setattr(cuda_backend, "_function",
                        lambda filename, name, variant: _fake_kernel(filename, name, state["mult"], state["calls"]))
    return be, state


@pytest.mark.parametrize("shapes", [((5, 7), (7, 3)), ((2, 3, 20, 1100), (1100, 9)), ((4, 1, 9, 6), (3, 6, 5)),
                                    ((2, 65, 300), (2, 300, 130))])
@pytest.mark.parametrize("ta", [False, True])
@pytest.mark.parametrize("tb", [False, True])
def test_glue_matmul_emulated(fake_cuda, shapes, ta, tb):
    be, state = fake_cuda
    mult = state["mult"] = MULTS["s16"]
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shapes[0]).astype(np.float32)
    b = rng.standard_normal(shapes[1]).astype(np.float32)
    a_in = np.swapaxes(a, -1, -2).copy() if ta else a
    b_in = np.swapaxes(b, -1, -2).copy() if tb else b
    got = be.matmul(a_in, b_in, mult, transpose_a=ta, transpose_b=tb)
    assert type(got) is np.ndarray
    want = REF.matmul(a_in, b_in, mult, transpose_a=ta, transpose_b=tb)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    dev = be.matmul(a_in.view(_Dev), b_in, mult, transpose_a=ta, transpose_b=tb)
    assert isinstance(dev, _Dev)


def test_glue_split_k_and_small_tiles(fake_cuda):
    be, state = fake_cuda
    mult = state["mult"] = MULTS["fp32"]
    a = np.ones((10, 5000), np.float32)
    b = np.ones((5000, 3), np.float32)
    np.testing.assert_array_equal(be.matmul(a, b, mult), np.full((10, 3), 5000, np.float32))
    name, grid, splits = state["calls"][-1]
    assert name == "approxsim_gemm_fp32_S" and splits > 1


@pytest.mark.parametrize("op", CONV_OPS, ids=[o[0] for o in CONV_OPS])
@pytest.mark.parametrize("gi", range(len(GEOMETRIES)))
def test_glue_conv_emulated(fake_cuda, op, gi):
    be, state = fake_cuda
    mult = state["mult"] = MULTS["g32"]
    g, x, w, dy = _conv_cases(GEOMETRIES[gi], gi)
    _check_conv(lambda p0, p1, shape: getattr(be, op[1])(p0, p1, g, mult), op, g, x, w, dy, mult)
    name = state["calls"][-1][0]
    assert name.startswith(f"approxsim_{op[0]}_g32_")


def test_glue_direct_multipliers_delegate(fake_cuda):
    be, _ = fake_cuda

    class Model:
        def cuda_matmul(self, a, b, *, transpose_a=False, transpose_b=False):
            return (a @ b).view(_Dev)

    mult = Multiplier("fake_direct", 23, direct=Model())
    a, b = np.ones((2, 3), np.float32), np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(be.matmul(a, b, mult), np.full((2, 4), 3, np.float32))
    out = _FakeCupy.zeros((2, 4), np.float32)
    assert be.matmul(a.view(_Dev), b, mult, out=out) is out and out[0, 0] == 3
    with pytest.raises(NotImplementedError, match="cuda_conv2d"):
        be.conv2d(np.ones((1, 3, 3, 1), np.float32), np.ones((1, 1, 1, 1), np.float32),
                  conv_geometry((1, 3, 3, 1), (1, 1, 1, 1)), mult)


def test_ops_cuda_without_a_usable_backend_names_the_fix():
    tf = pytest.importorskip("tensorflow")
    from approxsim.ops import cuda as ops_cuda
    from approxsim.errors import BackendUnavailableError

    if CUDA_OK:
        pytest.skip("the CUDA backend is usable here")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        ops_cuda.matmul(tf.ones((2, 2)), tf.ones((2, 2)), MULTS["s16"])


def test_ops_cuda_export_drops_the_stream_argument():
    """CuPy passes a stream to __dlpack__; tf.Tensor refuses one; the wrapper drops it."""
    tf = pytest.importorskip("tensorflow")
    from approxsim.ops import cuda as ops_cuda

    t = tf.constant([1.0, 2.0])
    exp = ops_cuda._Export(t)
    assert exp.__dlpack_device__() == t.__dlpack_device__()
    assert np.array_equal(np.from_dlpack(exp), [1.0, 2.0])  # NumPy passes stream=None; CuPy a pointer
    assert type(exp.__dlpack__(stream=1)).__name__ == "PyCapsule"


@pytest.mark.parametrize("key", ["fp32", "s16", "g32_11"])
def test_kernel_large_tiles_emulated(kernel_emulator, monkeypatch, key):
    """The 128 x 128 tiles (chosen when the GPU has few SMs for the work), emulated on the CPU."""
    be = object.__new__(cuda_backend.CudaBackend)
    be._cp, be._dummy, calls = _FakeCupy, {}, []
    monkeypatch.setattr(_FakeCupy.cuda.Device, "attributes", {"MultiProcessorCount": 1})
    monkeypatch.setattr(cuda_backend, "_function",
                        lambda filename, name, variant: _emulated_kernel(kernel_emulator, name, calls))
    mult = MULTS[key]
    rng = np.random.default_rng(9)
    a = rng.standard_normal((200, 40)).astype(np.float32)
    b = rng.standard_normal((40, 150)).astype(np.float32)
    a[3, 5] = np.inf  # one tile through the exact path
    _close(be.matmul(a, b, mult), REF.matmul(a, b, mult), REF.matmul(np.abs(a), np.abs(b), _abs_mult(mult)))
    g, x, w, dy = _conv_cases(((2, 12, 12, 4), (3, 3, 4, 130), 1, "SAME", 1, 1), 3)
    for op in CONV_OPS:
        _check_conv(lambda p0, p1, shape: getattr(be, op[1])(p0, p1, g, mult), op, g, x, w, dy, mult)
    names = [c[0] for c in calls]
    assert any(n.startswith("approxsim_gemm_") and n.endswith("_L") for n in names), names
    assert any(n.startswith("approxsim_conv_fwd_") and n.endswith("_L") for n in names), names


@pytest.mark.parametrize("op", CONV_OPS, ids=[o[0] for o in CONV_OPS])
def test_kernel_conv_quick_emulated(kernel_emulator, monkeypatch, op):
    """A fast subset of the emulated kernel tests (the full set is marked slow): groups with strides,
    strided dilated depthwise, and special values."""
    be = object.__new__(cuda_backend.CudaBackend)
    be._cp, be._dummy = _FakeCupy, {}
    monkeypatch.setattr(cuda_backend, "_function",
                        lambda filename, name, variant: _emulated_kernel(kernel_emulator, name, []))
    for gi, key, specials in ((3, "s16", False), (7, "gen", False), (5, "s16", True)):
        mult = MULTS[key]
        g, x, w, dy = _conv_cases(GEOMETRIES[gi], gi, specials=specials)
        _check_conv(lambda p0, p1, shape: getattr(be, op[1])(p0, p1, g, mult), op, g, x, w, dy, mult)
