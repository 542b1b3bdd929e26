"""The CUDA path of integer multipliers, checked without a GPU.

Sources: ``generate_int_table_source(bits)`` (integer tables: ``int8``, ``mitchell8u``, ``int4`` and
an asymmetric random table) and ``IntDirectModel.cuda_source()`` (integer direct models: ``int16`` and
two asymmetric C models written here, signed and unsigned, so that operand order shows).

1. NVRTC (through ctypes) compiles each source with the backend's options for compute_90; the PTX
   has the entry points of ``csrc/direct_cuda.h`` with the parameters that header declares, and a
   table source has the unmangled ``approxsim_int_table_`` pointer the host fills in.
2. The kernels of each source, compiled with g++ into ``tests/cuda_host/direct_emulator.cc``, run
   on the CPU: multiply, matmul and one convolution against NumPy (a gather from the table, or the
   model's arithmetic in NumPy, summed in int64), all convolutions against the reference backend,
   exactly.
3. The backend's launch code (``CudaIntKernels``, ``IntTableCudaKernels``, ``CudaKernels``) through
   a fake CuPy whose kernels are that emulator: results exactly the reference backend's, and every
   launch's arguments matching the compiled kernel's parameters.
"""

import ctypes
import dataclasses
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import types

import numpy as np
import pytest

import approxsim
from approxsim import compile_int, multipliers
from approxsim.backends import cuda as cuda_backend
from approxsim.backends import cuda_build
from approxsim.direct import cuda_source as dsrc
from approxsim.direct import nvrtc
from approxsim.direct.integer import IntDirectModel
from approxsim.geometry import ConvGeometry, conv_geometry
from approxsim.integer import sum_dtype
from approxsim.int_multiplier import IntDirectMultiplier, IntTableMultiplier

HOST_DIR = os.path.join(os.path.dirname(__file__), "cuda_host")
ARCH = "compute_90"
# Built-in tables, an asymmetric random table (operand order), the built-in direct model and two
# asymmetric direct models of this file (signed and unsigned codes, operand order).
TABLES = ("int8", "mitchell8u", "int4", "rand8s")
DIRECT = ("int16", "skew16s", "skew16u")
MULTS = TABLES + DIRECT
SKEW_C = """#include <stdint.h>
int32_t skew16s(int16_t a, int16_t b) { return (int32_t)a * 3 - (int32_t)b * 5 + ((a ^ b) & 7); }
uint32_t skew16u(uint16_t a, uint16_t b) { return (uint32_t)a * 2u + (uint32_t)(b >> 3) + (a & b & 1u); }
"""
# NumPy products of the direct models (int64 codes): the C above, and int16 (exact by definition)
DIRECT_NP = {
    "int16": lambda a, b: a * b,
    "skew16s": lambda a, b: a * 3 - b * 5 + ((a ^ b) & 7),
    "skew16u": lambda a, b: a * 2 + (b >> 3) + (a & b & 1),
}
# (input shape, filter shape, strides, padding, dilations, groups)
CONV_CASES = [
    ((2, 9, 8, 4), (3, 3, 2, 6), 2, "SAME", 2, 2),  # every option at once
    ((2, 5, 6, 3), (2, 3, 3, 5), 1, "VALID", 1, 1),
    ((1, 7, 6, 4), (2, 2, 1, 4), (1, 3), ((1, 0), (2, 1)), (2, 1), 4),  # depthwise, explicit padding
]
CONV_OPS = ("conv_fwd", "conv_dgrad", "conv_wgrad")
needs_nvrtc = pytest.mark.skipif(nvrtc.find_nvrtc() is None,
                                 reason="NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
_CUSTOM: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _custom_cleanup():
    yield
    if "dir" in _CUSTOM:
        shutil.rmtree(_CUSTOM["dir"], ignore_errors=True)
    _CUSTOM.clear()


def _direct_multiplier(path, function, name):
    sig = compile_int.parse_signature(path, function)
    fmt = compile_int.resolve_format(sig, function)
    return IntDirectMultiplier(name, fmt.bits, fmt.signed,
                               direct=IntDirectModel(path, function=function, sig=sig, fmt=fmt, name=name))


def _mult(name):
    """A registered multiplier, or one of this file's (built once)."""
    if name == "rand8s":
        if name not in _CUSTOM:
            table = np.random.default_rng(3).integers(-2**20, 2**20, size=(256, 256)).astype(np.int32)
            _CUSTOM[name] = IntTableMultiplier(name, 8, True, table=table)
        return _CUSTOM[name]
    if name.startswith("skew"):
        if name not in _CUSTOM:
            if "dir" not in _CUSTOM:
                _CUSTOM["dir"] = tempfile.mkdtemp(prefix="approxsim-int-cuda-models-")
                with open(os.path.join(_CUSTOM["dir"], "skew.c"), "w") as f:
                    f.write(SKEW_C)
            path = os.path.join(_CUSTOM["dir"], "skew.c")
            _CUSTOM[name] = _direct_multiplier(path, name, name)
        return _CUSTOM[name]
    return multipliers.get(name)


def _source(mult) -> str:
    """The CUDA source the backend compiles for an integer multiplier."""
    if mult.kind == "int-direct":
        return mult.direct.cuda_source()
    return dsrc.generate_int_table_source(mult.bits)


def _key(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _kernel_params():
    """The entry points of direct_cuda.h and their parameter counts, read from the header."""
    text = cuda_build.kernel_source("direct_cuda.h")
    found = {}
    for match in re.finditer(r'extern\s+"C"\s+__global__\s+void\s+(\w+)\s*\(([^)]*)\)', text):
        found[match.group(1)] = len(match.group(2).split(","))
    return found


KERNELS = _kernel_params()


def _ptx_entries(ptx: str) -> dict:
    """``{entry: [parameter size in bytes, ...]}`` from PTX."""
    entries = {}
    for match in re.finditer(r"\.entry\s+(\w+)\s*\(([^)]*)\)", ptx):
        sizes = []
        for param in filter(None, (p.strip() for p in match.group(2).split(","))):
            array = re.search(r"\.b8\s+\w+\[(\d+)\]", param)
            scalar = re.search(r"\.[usbf](8|16|32|64)\s+\w+$", param)
            assert array or scalar, param
            sizes.append(int(array.group(1)) if array else int(scalar.group(1)) // 8)
        entries[match.group(1)] = sizes
    return entries


# --- 1. NVRTC -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ptx_of():
    """PTX of a source, compiled once per source (NVRTC, the backend's options, compute_90)."""
    if nvrtc.find_nvrtc() is None:
        pytest.skip("NVRTC is not installed (pip install nvidia-cuda-nvrtc)")
    cache = {}

    def compile_(source):
        key = _key(source)
        if key not in cache:
            cache[key] = nvrtc.compile_to_ptx(source, arch=ARCH, options=dsrc.NVRTC_OPTIONS,
                                              name=f"approxsim_int_{key}.cu")
        return cache[key]

    return compile_


def test_direct_cuda_header_declares_kernels():
    """The header parse the checks below rely on finds the five entry points."""
    assert set(KERNELS) == {"approxsim_direct_multiply", "approxsim_direct_matmul", "approxsim_direct_conv_fwd",
                            "approxsim_direct_conv_dgrad", "approxsim_direct_conv_wgrad"}


@needs_nvrtc
@pytest.mark.parametrize("name", MULTS)
def test_nvrtc_compiles_int_source(ptx_of, name):
    """Every direct_cuda.h kernel is in the PTX, with the header's parameters; the geometry by value."""
    mult = _mult(name)
    source = _source(mult)
    assert "#define APPROXSIM_DL_INTEGER 1" in source
    entries = _ptx_entries(ptx_of(source))
    assert set(entries) == set(KERNELS), sorted(entries)
    for kernel, sizes in entries.items():
        assert len(sizes) == KERNELS[kernel], (kernel, sizes)
        if "conv" in kernel:
            assert sizes[-1] == cuda_build.GEOMETRY_DTYPE.itemsize, (kernel, sizes)
            assert sizes[:-1] == [8] * (len(sizes) - 1), (kernel, sizes)
        else:
            assert sizes == [8] * len(sizes), (kernel, sizes)


@needs_nvrtc
@pytest.mark.parametrize("bits", sorted({_mult(n).bits for n in TABLES}))
def test_nvrtc_table_symbol(ptx_of, bits):
    """A table source has the 64-bit device pointer IntTableCudaKernels writes, by its plain name."""
    ptx = ptx_of(dsrc.generate_int_table_source(bits))
    assert re.search(r"^\s*(\.visible\s+)?\.global\s+\.align\s+8\s+\.u64\s+" + dsrc.INT_TABLE_SYMBOL + r";",
                     ptx, re.M), ptx[:2000]
    assert f"[{dsrc.INT_TABLE_SYMBOL}]" in ptx  # the kernels read the pointer


@needs_nvrtc
@pytest.mark.parametrize("name", DIRECT)
def test_nvrtc_direct_source_calls_the_model(ptx_of, name):
    """An integer direct source calls the model through the integer wrapper (and has no table symbol)."""
    source = _source(_mult(name))
    assert f"#define APPROXSIM_DIRECT_FN {compile_int.WRAPPER}" in source and dsrc.INT_TABLE_SYMBOL not in source
    assert dsrc.INT_TABLE_SYMBOL not in ptx_of(source)


# --- 2. the kernels on the CPU ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def emulator():
    """``build(source) -> executable``: direct_emulator.cc around a generated source, once per source."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no host C++ compiler (g++) to run the device code on the CPU")
    d = tempfile.mkdtemp(prefix="approxsim-int-cuda-")
    built = {}

    def build(source):
        key = _key(source)
        if key not in built:
            cu, exe = os.path.join(d, key + ".cu"), os.path.join(d, key)
            with open(cu, "w") as f:
                f.write(source)
            cmd = [cxx, "-std=c++14", "-O1", "-Wall", "-Wno-unused-function", f"-I{HOST_DIR}",
                   f'-DAPPROXSIM_GENERATED="{cu}"', os.path.join(HOST_DIR, "direct_emulator.cc"), "-o", exe]
            if dsrc.INT_TABLE_SYMBOL in source:
                cmd.insert(1, "-DAPPROXSIM_INT_TABLE")
            res = subprocess.run(cmd, capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
            built[key] = exe
        return built[key]

    yield build
    shutil.rmtree(d, ignore_errors=True)


def _emulate(exe, op, in0, in1, table, items, ints=()):
    """One kernel run by the emulator: int32 operands (and table), ``items`` int64 outputs."""
    with tempfile.TemporaryDirectory() as d:
        p0, p1, pt, po = (os.path.join(d, n) for n in ("in0", "in1", "table", "out"))
        np.ascontiguousarray(in0, np.int32).tofile(p0)
        np.ascontiguousarray(in1, np.int32).tofile(p1)
        if table is None:
            pt = "-"
        else:
            np.ascontiguousarray(table, np.int32).tofile(pt)
        res = subprocess.run([exe, op, po, p0, p1, pt, str(int(items)), *(str(int(v)) for v in ints)],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (op, res.returncode, res.stderr)
        out = np.fromfile(po, dtype=np.int64)
    assert out.size == items, (op, out.size, items)
    return out


def _table(mult):
    return None if mult.kind == "int-direct" else np.ascontiguousarray(mult.table, np.int32)


def _np_products(mult, a, b):
    """NumPy products of codes: a gather from the table, or the direct model's NumPy form (DIRECT_NP)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    if mult.kind == "int-direct":
        return DIRECT_NP[mult.direct.function](a, b)
    mask = mult.format.mask
    return mult.table.astype(np.int64)[a & mask, b & mask]


def _codes(fmt, shape, rng):
    """Random codes of the format with its extremes (lo, hi, 0, and -1 if signed) mixed in."""
    x = rng.integers(fmt.lo, fmt.hi + 1, size=shape, dtype=np.int64)
    flat = x.reshape(-1)
    edges = [fmt.lo, fmt.hi, 0] + ([-1] if fmt.signed else [])
    flat[rng.integers(0, flat.size, size=max(1, flat.size // 4))] = rng.choice(edges, size=max(1, flat.size // 4))
    return x.astype(np.int32)


def _geom_ints(g):
    """The geometry as the kernels get it: the backend's struct (geometry_struct), its fields in order."""
    st = cuda_build.geometry_struct(g)
    assert list(st.dtype.names) == [f.name for f in dataclasses.fields(ConvGeometry)]
    return [int(st[0][name]) for name in st.dtype.names]


@pytest.mark.parametrize("name", MULTS)
def test_emulated_multiply(emulator, name):
    """Elementwise products vs NumPy: every pair of codes (tables), extremes and random pairs (direct models)."""
    mult = _mult(name)
    fmt = mult.format
    if mult.kind == "int-direct":
        rng = np.random.default_rng(1)
        edges = np.unique(np.clip([fmt.lo, fmt.lo + 1, -1, 0, 1, fmt.hi - 1, fmt.hi], fmt.lo, fmt.hi))
        ea, eb = (v.ravel() for v in np.meshgrid(edges, edges))
        a = np.concatenate([ea, rng.integers(fmt.lo, fmt.hi + 1, 20000)])
        b = np.concatenate([eb, rng.integers(fmt.lo, fmt.hi + 1, 20000)])
    else:
        a, b = (v.ravel() for v in np.meshgrid(fmt.codes(), fmt.codes(), indexing="ij"))
    got = _emulate(emulator(_source(mult)), "multiply", a, b, _table(mult), a.size)
    np.testing.assert_array_equal(got, _np_products(mult, a, b))


@pytest.mark.parametrize("name", MULTS)
@pytest.mark.parametrize("b_batched", [True, False], ids=["batched", "broadcast"])
def test_emulated_matmul(emulator, name, b_batched):
    """Batched matmul (b_batch_stride 0 broadcasts b) vs NumPy products summed in int64."""
    mult = _mult(name)
    rng = np.random.default_rng(2)
    batch, m, k, n = 3, 5, 37, 4
    a = _codes(mult.format, (batch, m, k), rng)
    b = _codes(mult.format, (batch, k, n) if b_batched else (k, n), rng)
    bb = b if b_batched else np.broadcast_to(b, (batch, k, n))
    want = _np_products(mult, a[:, :, :, None], bb[:, None, :, :]).sum(axis=2, dtype=np.int64)
    ints = (m, k, n, m * k, k * n if b_batched else 0)
    got = _emulate(emulator(_source(mult)), "matmul", a, b, _table(mult), batch * m * n, ints)
    np.testing.assert_array_equal(got.reshape(batch, m, n), want)


def _conv_case(mult, case, seed):
    xshape, wshape, strides, padding, dilations, groups = case
    opts = dict(strides=strides, padding=padding, dilations=dilations, groups=groups)
    g = conv_geometry(xshape, wshape, **opts)
    rng = np.random.default_rng(seed)
    fmt = mult.format
    return g, opts, _codes(fmt, g.input_shape, rng), _codes(fmt, g.filter_shape, rng), _codes(fmt, g.output_shape,
                                                                                                rng)


def _reference_conv(op, mult, g, opts, x, w, dy):
    if op == "conv_fwd":
        return approxsim.conv2d(x, w, multiplier=mult, backend="reference", **opts)
    if op == "conv_dgrad":
        return approxsim.conv2d_input_grad(dy, w, g.input_shape, multiplier=mult, backend="reference", **opts)
    return approxsim.conv2d_filter_grad(x, dy, g.filter_shape, multiplier=mult, backend="reference", **opts)


@pytest.mark.parametrize("op", CONV_OPS)
@pytest.mark.parametrize("ci", range(len(CONV_CASES)))
@pytest.mark.parametrize("name", MULTS)
def test_emulated_conv(emulator, name, ci, op):
    """Forward, input and filter gradient kernels vs the reference backend on the same codes, exactly."""
    mult = _mult(name)
    g, opts, x, w, dy = _conv_case(mult, CONV_CASES[ci], 10 + ci)
    # operands and items as CudaKernels launches them (w as (KH, KW, COUT, C/G) for the input gradient)
    in0, in1, shape = {"conv_fwd": (x, w, g.output_shape),
                       "conv_dgrad": (dy, np.swapaxes(w, 2, 3), g.input_shape),
                       "conv_wgrad": (x, dy, g.filter_shape)}[op]
    items = int(np.prod(shape))
    got = _emulate(emulator(_source(mult)), op, in0, in1, _table(mult), items, _geom_ints(g)).reshape(shape)
    want = _reference_conv(op, mult, g, opts, x, w, dy)
    assert want.shape == shape
    np.testing.assert_array_equal(got, np.asarray(want, np.int64))


def test_emulated_conv_forward_matches_numpy_gather(emulator):
    """The reference semantics itself, for one strided, dilated, grouped SAME case: a NumPy loop of gathers."""
    mult = _mult("mitchell8u")
    g, _, x, w, _ = _conv_case(mult, CONV_CASES[0], 99)
    got = _emulate(emulator(_source(mult)), "conv_fwd", x, w, _table(mult), int(np.prod(g.output_shape)),
                   _geom_ints(g)).reshape(g.output_shape)
    xp = np.pad(x, ((0, 0), (g.pad_top, g.pad_bottom), (g.pad_left, g.pad_right), (0, 0)))  # zero codes
    cig, cog = g.cin_per_group, g.cout_per_group
    want = np.zeros(g.output_shape, np.int64)
    for r in range(g.kh):
        for t in range(g.kw):
            rows = xp[:, r * g.dh: r * g.dh + (g.oh - 1) * g.sh + 1: g.sh,
                      t * g.dw: t * g.dw + (g.ow - 1) * g.sw + 1: g.sw, :]
            for grp in range(g.groups):
                xs = rows[..., grp * cig:(grp + 1) * cig]  # (N, OH, OW, cig)
                ws = w[r, t, :, grp * cog:(grp + 1) * cog]  # (cig, cog)
                want[..., grp * cog:(grp + 1) * cog] += _np_products(mult, xs[..., :, None], ws).sum(axis=-2)
    np.testing.assert_array_equal(got, want)


# --- 3. the backend's launch code, on the emulator ------------------------------------------------


class _Dev(np.ndarray):
    """A "device" array: NumPy, with CuPy's ``.data.ptr``."""

    @property
    def data(self):
        ptr = self.__array_interface__["data"][0]
        _FakeCupy.pointers[ptr] = self
        return types.SimpleNamespace(ptr=ptr)


class _FakeModule:
    """cupy.RawModule: the source compiled by NVRTC (when installed) and, for running, into the emulator."""

    build = ptx_of = None  # set by the fixture
    launches: list = []

    def __init__(self, code, options=(), backend=None):
        assert tuple(options) == dsrc.NVRTC_OPTIONS and backend == "nvrtc", (options, backend)
        self.code, self.table_address, self.entries = code, None, None

    def compile(self):
        self.exe = _FakeModule.build(self.code)
        if _FakeModule.ptx_of is not None:
            self.entries = _ptx_entries(_FakeModule.ptx_of(self.code))

    def get_global(self, name):
        assert name == dsrc.INT_TABLE_SYMBOL and dsrc.INT_TABLE_SYMBOL in self.code
        module = self

        class _Global:
            @staticmethod
            def copy_from_host(ptr, nbytes):
                assert nbytes == 8
                module.table_address = ctypes.c_uint64.from_address(ptr).value

        return _Global()

    def get_function(self, name):
        def kernel(grid, block, args):
            sizes = [v.itemsize if isinstance(v, np.ndarray) and v.dtype.names else 8 for v in args]
            if self.entries is not None:
                assert self.entries[name] == sizes, (name, self.entries[name], sizes)
            assert len(args) == KERNELS[name], (name, len(args))
            items = int(args[3])
            assert len(grid) == len(block) == 1 and 1 <= grid[0] < 2**31 and 1 <= block[0] <= 1024, (grid, block)
            ints = []
            for v in args[4:]:
                ints += [int(v[0][f]) for f in v.dtype.names] if isinstance(v, np.ndarray) and v.dtype.names \
                    else [int(v)]
            table = None
            if dsrc.INT_TABLE_SYMBOL in self.code:
                table = _FakeCupy.pointers[self.table_address]  # the array whose address the host wrote
            out = args[2]
            assert out.dtype == np.int64 and out.flags.c_contiguous and out.size == items, (name, out.shape, items)
            for operand in args[:2]:
                assert operand.dtype == np.int32 and operand.flags.c_contiguous, name
            out[...] = _emulate(self.exe, name.replace("approxsim_direct_", ""), args[0], args[1], table,
                                items, ints).reshape(out.shape)
            _FakeModule.launches.append(name)

        return kernel


class _FakeCupy:
    """The part of CuPy the integer CUDA path uses, on NumPy, with the emulator as its kernels."""

    ndarray = _Dev
    int32, int64, float32 = np.int32, np.int64, np.float32
    pointers: dict = {}
    RawModule = _FakeModule

    class cuda:  # noqa: N801 - mirrors cupy.cuda
        class runtime:  # noqa: N801
            @staticmethod
            def getDevice():  # noqa: N802
                return 0

        class compiler:  # noqa: N801
            class CompileException(Exception):
                pass

    @staticmethod
    def asarray(x, dtype=None):
        return np.asarray(x, dtype=dtype).view(_Dev)

    @staticmethod
    def ascontiguousarray(x, dtype=None):
        return np.ascontiguousarray(x, dtype=dtype).view(_Dev)

    @staticmethod
    def empty(shape, dtype):
        return np.full(shape, np.iinfo(np.int64).min if np.dtype(dtype).kind == "i" else np.nan, dtype).view(_Dev)

    @staticmethod
    def zeros(shape, dtype):
        return np.zeros(shape, dtype).view(_Dev)

    @staticmethod
    def broadcast_arrays(*arrays):
        return [np.asarray(a).view(_Dev) for a in np.broadcast_arrays(*arrays)]

    @staticmethod
    def broadcast_to(x, shape):
        return np.broadcast_to(x, shape).view(_Dev)

    @staticmethod
    def swapaxes(x, a, b):
        return np.swapaxes(x, a, b).view(_Dev)

    @staticmethod
    def asnumpy(x):
        return np.array(x).view(np.ndarray)


def _fresh(name):
    """A private copy of a multiplier (the fake GPU kernels are cached on it, not on the registry's)."""
    mult = _mult(name)
    if mult.kind == "int-direct":
        return _direct_multiplier(mult.direct.path, mult.direct.function, f"{name}_emulated")
    return IntTableMultiplier(f"{name}_emulated", mult.bits, mult.format.signed, table=mult.table)


@pytest.fixture
def fake_backend(emulator, monkeypatch, request):
    """A CudaBackend on the fake CuPy (``import cupy`` gives it too); PTX checks when NVRTC is installed."""
    monkeypatch.setitem(sys.modules, "cupy", _FakeCupy)
    monkeypatch.setattr(_FakeModule, "build", staticmethod(emulator))
    ptx = request.getfixturevalue("ptx_of") if nvrtc.find_nvrtc() is not None else None
    monkeypatch.setattr(_FakeModule, "ptx_of", None if ptx is None else staticmethod(ptx))
    monkeypatch.setattr(_FakeModule, "launches", [])
    monkeypatch.setattr(_FakeCupy, "pointers", {})
    be = object.__new__(cuda_backend.CudaBackend)
    be._cp, be._dummy = _FakeCupy, {}
    return be


def _same(got, want, dtype=None):
    """Equal values, and the dtype of ``want`` (or ``dtype``), as a host NumPy array."""
    dtype = np.asarray(want).dtype if dtype is None else np.dtype(dtype)
    assert type(got) is np.ndarray and got.dtype == dtype, (type(got), got.dtype, dtype)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("name", ["int8", "mitchell8u", "rand8s", "int16", "skew16u"])
def test_backend_launch_code_emulated(fake_backend, name):
    """multiply (broadcast), matmul (transposes, batch broadcast) and the three convolutions through the
    backend, its kernels on the emulator: the reference backend's results and dtypes, exactly."""
    be, mult, ref = fake_backend, _fresh(name), _mult(name)
    rng = np.random.default_rng(7)
    fmt = mult.format
    a, b = _codes(fmt, (4, 1, 6), rng), _codes(fmt, (3, 6), rng)
    # products: DESIGN 1b's dtype for one term (the reference backend's multiply returns int64 always)
    _same(be.multiply(a, b, mult), approxsim.multiply(a, b, multiplier=ref, backend="reference"),
          sum_dtype(1, ref.max_abs))
    a, b = _codes(fmt, (2, 1, 9, 5), rng), _codes(fmt, (3, 5, 4), rng)
    for ta, tb in ((False, False), (True, True)):
        aa = np.swapaxes(a, -1, -2).copy() if ta else a
        bb = np.swapaxes(b, -1, -2).copy() if tb else b
        _same(be.matmul(aa, bb, mult, transpose_a=ta, transpose_b=tb),
              approxsim.matmul(aa, bb, multiplier=ref, backend="reference", transpose_a=ta, transpose_b=tb))
    g, opts, x, w, dy = _conv_case(mult, CONV_CASES[0], 21)
    _same(be.conv2d(x, w, g, mult), _reference_conv("conv_fwd", ref, g, opts, x, w, dy))
    _same(be.conv2d_input_grad(dy, w, g, mult), _reference_conv("conv_dgrad", ref, g, opts, x, w, dy))
    _same(be.conv2d_filter_grad(x, dy, g, mult), _reference_conv("conv_wgrad", ref, g, opts, x, w, dy))
    assert sorted(set(_FakeModule.launches)) == sorted(KERNELS), _FakeModule.launches
