"""The CUDA backend: kernels compile, device arithmetic checked on the CPU, GPU results vs reference.

Three layers, so that a machine without a GPU still checks most of what can go wrong:

1. every ``cuda/*.cu`` compiles to PTX for sm_80 and sm_90 (nvcc, and NVRTC when CuPy has it);
2. the device-side code that is host-compilable (``approxsim_codes.cuh``: the product paths;
   ``approxsim_loaders.cuh``: the implicit-GEMM index arithmetic) is compiled with g++ into a
   small program and compared with the NumPy reference: products bit for bit, contractions
   within tolerance, special values, operand order, every conv geometry below;
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
from approxsim.geometry import conv_geometry
from approxsim.multiplier import Multiplier
from approxsim.product import products

KERNEL_DIR = cuda_backend.kernel_dir()
CU_FILES = sorted(p.name for p in KERNEL_DIR.glob("*.cu"))
VARIANTS = ("fp32", "s16", "s32", "g32", "gen")
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
        assert cuda_backend.table_plan(mult)[0] == key.split("_")[0], mult
    assert cuda_backend.table_plan(multipliers.get("mbm3"))[0] == "s16"


def test_tame_limit():
    assert cuda_backend.tame_limit(np.float32([[1.0, 3.9]])) == 63  # exponents 0..1: min(126, 126) // 2
    assert cuda_backend.tame_limit(np.float32([[2.0**-20, 2.0**30]])) == 48


def test_status_names_the_extra_when_unusable():
    ok, reason = backend_status("cuda")
    if not ok:
        assert "approxsim[cuda12]" in reason or "GPU" in reason or "NVRTC" in reason, reason


# --- 1. compilation -----------------------------------------------------------------------------


@pytest.mark.parametrize("filename", CU_FILES)
def test_kernel_source_is_self_contained(filename):
    """approxsim's own headers are inlined, so CuPy's cache (keyed by source) sees every edit."""
    src = cuda_backend.kernel_source(filename)
    assert '#include "' not in src
    assert "approxsim_scale_entry" in src and "approxsim_tiled" in src


def test_compile_options(monkeypatch):
    opts = cuda_backend.compile_options("s16")
    assert f"-I{header_dir()}" in opts and "-DAPPROXSIM_ONLY_s16" in opts
    monkeypatch.setenv("APPROXSIM_CUDA_MIN_BLOCKS", "1")
    assert "-DAPPROXSIM_MIN_BLOCKS=1" in cuda_backend.compile_options("s16")
    monkeypatch.setenv("APPROXSIM_CUDA_MIN_BLOCKS", "many")
    with pytest.raises(ValueError, match="APPROXSIM_CUDA_MIN_BLOCKS"):
        cuda_backend.compile_options("s16")


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not on PATH")
@pytest.mark.parametrize("arch", ["sm_80", "sm_90"])
@pytest.mark.parametrize("filename", CU_FILES)
def test_kernels_compile_to_ptx_with_nvcc(filename, arch, tmp_path):
    out = tmp_path / (filename + ".ptx")
    cmd = ["nvcc", "-std=c++14", "-ptx", f"-arch={arch}", f"-I{header_dir()}", f"-I{KERNEL_DIR}",
           str(KERNEL_DIR / filename), "-o", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    text = out.read_text()
    for variant in VARIANTS:
        for size in "LS":
            assert f"_{variant}_{size}(" in text, (filename, variant, size)


def _cupy_nvrtc():
    try:
        import cupy  # noqa: F401
        from cupy.cuda import nvrtc
        nvrtc.getVersion()
        return True
    except Exception:
        return False


@pytest.mark.skipif(not _cupy_nvrtc(), reason="CuPy with NVRTC is not installed")
@pytest.mark.parametrize("arch", ["compute_80", "compute_90"])
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("filename", CU_FILES)
def test_kernels_compile_with_nvrtc(filename, variant, arch):
    """The exact source and options the backend gives NVRTC (no GPU needed)."""
    from cupy.cuda import nvrtc

    prog = nvrtc.createProgram(cuda_backend.kernel_source(filename), filename, [], [])
    try:
        try:
            nvrtc.compileProgram(prog, list(cuda_backend.compile_options(variant)) + [f"-arch={arch}"])
        except nvrtc.NVRTCError:
            pytest.fail(nvrtc.getProgramLog(prog))
        ptx = nvrtc.getPTX(prog)
        ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
        assert f"_{variant}_L(" in ptx and f"_{variant}_S(" in ptx
    finally:
        nvrtc.destroyProgram(prog)


# --- 2. device code on the CPU ----------------------------------------------------------------------

HOST_PROGRAM = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
#include "approxsim_loaders.cuh"

static std::vector<char> slurp(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) { perror(path); exit(2); }
  std::vector<char> v;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
  fclose(f);
  return v;
}

struct Prod {  /* mirrors the kernel policies of approxsim_tile.cuh, on the host */
  const char* variant;
  int m, limit;
  const approxsim_u32* words;
  const unsigned short* words16;
  const approxsim_entry* entries;
  int ok(float x) const {  /* P::ok: may this operand take the fast path? */
    if (!strcmp(variant, "fp32") || !strcmp(variant, "gen")) return !approxsim_is_nonfinite(x);
    return approxsim_tame_ok(x, limit);
  }
  float fast(float a, float b) const {  /* P::mac without the accumulation */
    if (!strcmp(variant, "fp32")) return a * b;
    if (!strcmp(variant, "gen")) return approxsim_mul_split(a, b, entries, m);
    approxsim_u32 idx = approxsim_tame_offset(a, m, m) + approxsim_tame_offset(b, m, 0);
    float t = words16 ? approxsim_u2f((approxsim_u32)words16[idx] << 16) : approxsim_u2f(words[idx]);
    return approxsim_tame_product(t, approxsim_tame_scale(a), approxsim_tame_scale(b));
  }
  float exact(float a, float b) const {
    if (!strcmp(variant, "fp32")) return a * b;
    if (!strcmp(variant, "gen")) return approxsim_mul_split(a, b, entries, m);
    return approxsim_exact_packed(a, b, words, words16, m);
  }
};

/* The kernel's contraction, one output at a time: the fast path encodes absent elements as 0,
   the exact path skips them. */
template <class L>
static void contract(const L& ld, const Prod& p, int K, int fast) {
  for (int r = 0; r < ld.rows; ++r)
    for (int c = 0; c < ld.cols; ++c) {
      float acc = 0.0f;
      for (int k = 0; k < K; ++k) {
        float a = 0.0f, b = 0.0f;
        int pa = ld.a(r, k, &a), pb = ld.b(k, c, &b);
        float fa = pa ? a : 0.0f, fb = pb ? b : 0.0f;  /* staged values: absent = 0 */
        if (fast && p.ok(fa) && p.ok(fb)) {
          acc += p.fast(fa, fb);
        } else if (pa && pb) {
          acc += p.exact(a, b);
        }
      }
      ld.out[ld.out_offset(r, c)] = acc;
    }
}

int main(int argc, char** argv) {
  /* argv: op variant m limit fast table p0 p1 out nout ints... */
  const char* op = argv[1];
  Prod p;
  p.variant = argv[2];
  p.m = atoi(argv[3]);
  p.limit = atoi(argv[4]);
  int fast = atoi(argv[5]);
  std::vector<char> table = slurp(argv[6]), v0 = slurp(argv[7]), v1 = slurp(argv[8]);
  const char* out_path = argv[9];
  long nout = atol(argv[10]);
  int I[32] = {0};
  for (int i = 11; i < argc; ++i) I[i - 11] = atoi(argv[i]);
  p.words = (const approxsim_u32*)table.data();
  p.words16 = !strcmp(p.variant, "s16") ? (const unsigned short*)table.data() : 0;
  p.entries = (const approxsim_entry*)table.data();
  const float* P0 = (const float*)v0.data();
  const float* P1 = (const float*)v1.data();
  std::vector<float> out(nout, -12345.0f);
  if (!strcmp(op, "products")) {
    for (long i = 0; i < nout; ++i)  /* fast: only pairs the fast path would see (the caller filters) */
      out[i] = fast ? p.fast(P0[i], P1[i]) : p.exact(P0[i], P1[i]);
  } else if (!strcmp(op, "gemm")) {
    GemmLoader ld;
    ld.A = P0; ld.B = P1; ld.out = out.data();
    ld.rows = I[0]; ld.cols = I[1];
    ld.a_rs = I[3]; ld.a_ks = I[4]; ld.b_ks = I[5]; ld.b_cs = I[6];
    contract(ld, p, I[2], fast);
  } else {
    ConvShape s = {I[0], I[1], I[2], I[3], I[4], I[5], I[6], I[7], I[8], I[9], I[10], I[11], I[12], I[13],
                   I[14], I[15], I[3] / I[7], I[6] / I[7], 0};
    for (s.g = 0; s.g < s.groups; ++s.g) {
      if (!strcmp(op, "conv_fwd")) {
        ConvFwdLoader ld; ld.s = s; ld.p0 = P0; ld.p1 = P1; ld.out = out.data();
        ld.rows = s.n * s.oh * s.ow; ld.cols = s.cog;
        contract(ld, p, s.kh * s.kw * s.cig, fast);
      } else if (!strcmp(op, "conv_dgrad")) {
        ConvDgradLoader ld; ld.s = s; ld.p0 = P0; ld.p1 = P1; ld.out = out.data();
        ld.rows = s.n * s.h * s.w; ld.cols = s.cig;
        contract(ld, p, s.kh * s.kw * s.cog, fast);
      } else {
        ConvWgradLoader ld; ld.s = s; ld.p0 = P0; ld.p1 = P1; ld.out = out.data();
        ld.rows = s.kh * s.kw * s.cig; ld.cols = s.cog;
        contract(ld, p, s.n * s.oh * s.ow, fast);
      }
    }
  }
  FILE* f = fopen(out_path, "wb");
  fwrite(out.data(), sizeof(float), nout, f);
  fclose(f);
  return 0;
}
"""


@pytest.fixture(scope="module")
def host_program():
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler (g++) to compile the device code for the CPU")
    d = tempfile.mkdtemp(prefix="approxsim-cuda-host-")
    src, exe = os.path.join(d, "host.cpp"), os.path.join(d, "host")
    with open(src, "w") as f:
        f.write(HOST_PROGRAM)
    res = subprocess.run([cxx, "-std=c++14", "-O1", "-Wall", "-Wno-unused-function", f"-I{header_dir()}",
                          f"-I{KERNEL_DIR}", src, "-o", exe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    yield exe
    shutil.rmtree(d, ignore_errors=True)


def _run_host(exe, op, mult, p0, p1, nout, ints, *, fast):
    variant, host_table, _, limit = cuda_backend.table_plan(mult)
    with tempfile.TemporaryDirectory() as d:
        paths = [os.path.join(d, n) for n in ("t", "p0", "p1", "out")]
        (np.zeros(1, np.uint32) if host_table is None else host_table).tofile(paths[0])
        np.ascontiguousarray(p0, np.float32).tofile(paths[1])
        np.ascontiguousarray(p1, np.float32).tofile(paths[2])
        cmd = [exe, op, variant, str(mult.mantissa_bits or 0), str(limit), str(int(fast)), *paths[:3], paths[3],
               str(nout)]
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


def _fast_ok(x, mult):
    """Which operands the kernels' fast path takes (the others send their tile to the exact path)."""
    variant, _, _, limit = cuda_backend.table_plan(mult)
    e = ((x.view(np.uint32) >> 23) & 0xFF).astype(np.int64)
    if variant in ("fp32", "gen"):
        return e != 255
    return (e == 0) | (np.abs(e - 127) <= limit)


@pytest.mark.parametrize("key", list(MULTS))
def test_host_products_bit_exact(host_program, key):
    mult = MULTS[key]
    a, b = _special_operands(20000, 1), _special_operands(20000, 2)
    want = products(a, b, mult)
    _same_bits(_run_host(host_program, "products", mult, a, b, a.size, [], fast=False), want)
    fast = _fast_ok(a, mult) & _fast_ok(b, mult)
    assert fast.sum() > 2000
    got = _run_host(host_program, "products", mult, a[fast], b[fast], int(fast.sum()), [], fast=True)
    _same_bits(got, want[fast])
    # operands of everyday magnitudes: all on the fast path
    rng = np.random.default_rng(3)
    a, b = (rng.standard_normal(5000) * 10.0 ** rng.integers(-15, 15, 5000)).astype(np.float32), \
        rng.standard_normal(5000).astype(np.float32)
    assert (_fast_ok(a, mult) & _fast_ok(b, mult)).all()
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
    return [g.n, g.h, g.w, g.c, g.kh, g.kw, g.cout, g.groups, g.sh, g.sw, g.dh, g.dw, g.pad_top, g.pad_left,
            g.oh, g.ow]


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

KERNEL_EMULATOR = r"""
/* Runs the CUDA kernels of cuda/*.cu on the CPU: one block at a time, its 256 threads as
   std::threads, shared memory a global buffer, barriers pthread barriers. */
#include <pthread.h>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <algorithm>

struct dim3 { unsigned x, y, z; };
static thread_local dim3 emu_thread_idx;
static thread_local dim3 blockIdx;
#define threadIdx emu_thread_idx
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
using std::min;
static inline float __uint_as_float(unsigned u) { float f; memcpy(&f, &u, 4); return f; }
static inline unsigned __float_as_uint(float f) { unsigned u; memcpy(&u, &f, 4); return u; }
template <class T> static inline T __ldg(const T* p) { return *p; }
static pthread_barrier_t emu_barrier;
static std::atomic<int> emu_or[3];
static thread_local int emu_generation = 0;
static inline void __syncthreads() { pthread_barrier_wait(&emu_barrier); }
/* One barrier per call: accumulator g % 3 collects this call's votes; thread 0 clears the next one,
   whose last readers finished before anyone could pass the previous barrier. */
static inline int __syncthreads_or(int p) {
  int g = emu_generation++ % 3;
  if (emu_thread_idx.x == 0) emu_or[(g + 1) % 3].store(0);
  if (p) emu_or[g].fetch_or(1);
  pthread_barrier_wait(&emu_barrier);
  return emu_or[g].load();
}
static std::mutex emu_atomic;
static inline float atomicAdd(float* p, float v) {
  std::lock_guard<std::mutex> g(emu_atomic);
  float old = *p;
  *p = old + v;
  return old;
}
alignas(16) unsigned char approxsim_smem[64 * 1024];

#include "gemm.cu"
#include "conv.cu"

typedef long long i64;
typedef void (*GemmFn)(const float*, const float*, float*, const void*, int, int, int, int, int, i64, i64, i64, i64,
                       i64, i64, int, int);
typedef void (*ConvFn)(const float*, const float*, float*, const void*, int, int, int, int, int, int, int, int, int,
                       int, int, int, int, int, int, int, int, int, int, int);

#define EMU_REG2(op, v) {"approxsim_" #op "_" #v "_L", (void*)approxsim_##op##_##v##_L}, \
                        {"approxsim_" #op "_" #v "_S", (void*)approxsim_##op##_##v##_S}
#define EMU_REG(op) EMU_REG2(op, fp32), EMU_REG2(op, s16), EMU_REG2(op, s32), EMU_REG2(op, g32), EMU_REG2(op, gen)

static std::vector<char> slurp(const char* path) {
  FILE* f = fopen(path, "rb");
  if (!f) { perror(path); exit(2); }
  std::vector<char> v;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) v.insert(v.end(), buf, buf + n);
  fclose(f);
  return v;
}

int main(int argc, char** argv) {
  /* argv: name gx gy gz table p0 p1 out ints... ; out is read and written back */
  std::map<std::string, void*> fns = {EMU_REG(gemm), EMU_REG(conv_fwd), EMU_REG(conv_dgrad), EMU_REG(conv_wgrad)};
  std::string name = argv[1];
  if (!fns.count(name)) { fprintf(stderr, "no kernel %s\n", name.c_str()); return 2; }
  unsigned gx = atoi(argv[2]), gy = atoi(argv[3]), gz = atoi(argv[4]);
  std::vector<char> table = slurp(argv[5]), p0 = slurp(argv[6]), p1 = slurp(argv[7]), out = slurp(argv[8]);
  std::vector<i64> I;
  for (int i = 9; i < argc; ++i) I.push_back(atoll(argv[i]));
  pthread_barrier_init(&emu_barrier, 0, 256);
  bool gemm = name.rfind("approxsim_gemm_", 0) == 0;
  void* fn = fns[name];
  const float* P0 = (const float*)p0.data();
  const float* P1 = (const float*)p1.data();
  float* OUT = (float*)out.data();
  /* 256 threads walk the blocks in step (a barrier between blocks keeps shared memory consistent). */
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 256; ++t)
    threads.emplace_back([&, t] {
      emu_thread_idx = {t, 0, 0};
      for (unsigned z = 0; z < gz; ++z)
        for (unsigned y = 0; y < gy; ++y)
          for (unsigned x = 0; x < gx; ++x) {
            blockIdx = {x, y, z};
            if (gemm)
              ((GemmFn)fn)(P0, P1, OUT, table.data(), I[0], I[1], I[2], I[3], I[4], I[5], I[6], I[7], I[8],
                                  I[9], I[10], I[11], I[12]);
            else
              ((ConvFn)fn)(P0, P1, OUT, table.data(), I[0], I[1], I[2], I[3], I[4], I[5], I[6], I[7], I[8],
                                  I[9], I[10], I[11], I[12], I[13], I[14], I[15], I[16], I[17], I[18], I[19]);
            pthread_barrier_wait(&emu_barrier);
          }
    });
  for (auto& th : threads) th.join();
  FILE* f = fopen(argv[8], "wb");
  fwrite(out.data(), 1, out.size(), f);
  fclose(f);
  return 0;
}
"""


@pytest.fixture(scope="module")
def kernel_emulator():
    """cuda/*.cu compiled for the CPU: each block's 256 threads as std::threads (see KERNEL_EMULATOR)."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler (g++) to emulate the kernels on the CPU")
    d = tempfile.mkdtemp(prefix="approxsim-cuda-emu-")
    src, exe = os.path.join(d, "emu.cpp"), os.path.join(d, "emu")
    with open(src, "w") as f:
        f.write(KERNEL_EMULATOR)
    res = subprocess.run([cxx, "-std=c++17", "-O1", "-pthread", "-Wno-unknown-pragmas", f"-I{header_dir()}",
                          f"-I{KERNEL_DIR}", src, "-o", exe], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    yield exe
    shutil.rmtree(d, ignore_errors=True)


def _emulated_kernel(exe, name, calls):
    def kernel(grid, block, args, shared_mem=0):
        assert block == (256,) and shared_mem <= 48 * 1024, (block, shared_mem)
        calls.append((name, grid, int(args[-2])))
        with tempfile.TemporaryDirectory() as d:
            paths = [os.path.join(d, n) for n in ("p0", "p1", "out", "table")]
            for path, arr in zip(paths, args[:4]):
                np.ascontiguousarray(arr).tofile(path)
            ints = [str(int(v)) for v in args[4:]]
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
    fa, fb = a[_fast_ok(a, mult)], b[_fast_ok(b, mult)]  # the fast path
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
        assert block == (256,) and len(args) == len(names) and shared_mem <= 48 * 1024
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
        g = {k: int(p[k]) for k in ("n", "h", "w", "c", "kh", "kw", "cout", "groups", "sh", "sw", "dh", "dw",
                                     "pt", "pl", "oh", "ow")}
        assert grid[2] == g["groups"] * splits
        pb = max(0, (g["oh"] - 1) * g["sh"] + (g["kh"] - 1) * g["dh"] + 1 - g["h"] - g["pt"])
        pr = max(0, (g["ow"] - 1) * g["sw"] + (g["kw"] - 1) * g["dw"] + 1 - g["w"] - g["pl"])
        geom = conv_geometry((g["n"], g["h"], g["w"], g["c"]), (g["kh"], g["kw"], g["c"] // g["groups"], g["cout"]),
                             strides=(g["sh"], g["sw"]), dilations=(g["dh"], g["dw"]), groups=g["groups"],
                             padding=((g["pt"], pb), (g["pl"], pr)))
        assert (geom.oh, geom.ow) == (g["oh"], g["ow"])
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
    from approxsim import ops_cuda
    from approxsim.errors import BackendUnavailableError

    if CUDA_OK:
        pytest.skip("the CUDA backend is usable here")
    with pytest.raises(BackendUnavailableError, match="cuda"):
        ops_cuda.matmul(tf.ones((2, 2)), tf.ones((2, 2)), MULTS["s16"])


def test_ops_cuda_export_drops_the_stream_argument():
    """CuPy passes a stream to __dlpack__; tf.Tensor refuses one; the wrapper drops it."""
    tf = pytest.importorskip("tensorflow")
    from approxsim import ops_cuda

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
