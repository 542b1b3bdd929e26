"""Built-in multipliers: equal to ApproxTrain's files, and to their C models called directly."""

import ctypes
import os
import subprocess

import numpy as np
import pytest

import approxsim
from approxsim import multipliers
from approxsim.lut import decode_approxtrain, encode_approxtrain, read_approxtrain

APPROXTRAIN = {"ACC_7": "bf16", **{f"MBM_{m}": f"mbm{m}" for m in (1, 3, 5, 7)},
               **{f"MIT_{m}": f"mitchell{m}" for m in (1, 3, 5, 7)}}


@pytest.mark.parametrize("file_name, name", sorted(APPROXTRAIN.items()))
def test_builtin_tables_equal_approxtrain_files(shared_dir, file_name, name):
    path = os.path.join(shared_dir, "reference", "approxtrain_luts", f"{file_name}.bin")
    m = int(file_name.split("_")[1])
    raw = np.fromfile(path, dtype=np.uint8)
    ours = multipliers.get(name).table
    # Entry for entry after decoding, and byte for byte after encoding ours.
    assert np.array_equal(ours, decode_approxtrain(raw, m))
    assert np.array_equal(encode_approxtrain(ours, m).ravel(), raw)
    # The ApproxTrain name is an alias of ours.
    assert multipliers.get(file_name) is multipliers.get(name)
    # Importing the file gives the same table.
    imported = multipliers.from_approxtrain(path)
    assert imported.mantissa_bits == m and np.array_equal(imported.table, ours)


def test_from_approxtrain_errors(tmp_path, shared_dir):
    src = os.path.join(shared_dir, "reference", "approxtrain_luts", "MBM_7.bin")
    with pytest.raises(ValueError, match="mantissa_bits"):
        multipliers.from_approxtrain(_copy(src, tmp_path / "table.bin"))
    truncated = tmp_path / "MBM_7.bin"
    truncated.write_bytes(open(src, "rb").read()[:1000])
    with pytest.raises(approxsim.TableFileError, match="1000 bytes"):
        multipliers.from_approxtrain(truncated)
    # An explicit M overrides the name and is checked against the size.
    table, m = read_approxtrain(_copy(src, tmp_path / "renamed.bin"), mantissa_bits=7)
    assert m == 7 and table.shape == (128, 128)
    with pytest.raises(approxsim.TableFileError, match="M=5"):
        read_approxtrain(tmp_path / "renamed.bin", mantissa_bits=5)


def _copy(src, dst):
    dst.write_bytes(open(src, "rb").read())
    return dst


_WRAPPER = r"""
#include "%(source)s"
void approxsim_eval(const float* a, const float* b, float* out, long n) {
  for (long k = 0; k < n; ++k) out[k] = %(function)s(a[k], b[k]);
}
"""


def _load_model(tmp_path, file, function, m):
    """Compiles a built-in C model with a plain loop around it and loads it with ctypes."""
    source = multipliers.builtin_source_dir() / file
    wrapper = tmp_path / f"wrap_{function}_{m}.c"
    wrapper.write_text(_WRAPPER % {"source": source, "function": function})
    lib = tmp_path / f"lib_{function}_{m}.so"
    subprocess.run(["cc", "-O2", "-shared", "-fPIC", f"-DAPPROXSIM_MANTISSA_BITS={m}", str(wrapper), "-o", str(lib),
                    "-lm"], check=True, capture_output=True)
    fn = ctypes.CDLL(str(lib)).approxsim_eval
    fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]

    def call(a, b):
        out = np.empty_like(a)
        fn(a.ctypes.data, b.ctypes.data, out.ctypes.data, a.size)
        return out

    return call


def _normal_pairs(n, seed):
    """Random normal operands whose exponents keep every product in the normal range."""
    rng = np.random.default_rng(seed)

    def draw():
        frac = rng.integers(0, 1 << 23, size=n, dtype=np.uint32)
        exp = rng.integers(127 - 60, 127 + 60, size=n, dtype=np.uint32)
        sign = rng.integers(0, 2, size=n, dtype=np.uint32) << 31
        return (sign | (exp << 23) | frac).view(np.float32)

    return draw(), draw()


@pytest.mark.parametrize("name", [n for n in multipliers.available()
                                  if multipliers.get(n).source.startswith("builtin:")
                                  and multipliers.get(n).kind == "table"])
def test_multiply_equals_c_model_called_directly(tmp_path, name):
    mult = multipliers.get(name)
    _, file, function = mult.source.split(":")
    model = _load_model(tmp_path, file, function, mult.mantissa_bits)
    a, b = _normal_pairs(100_000, seed=mult.mantissa_bits)
    want = model(a, b)
    got = approxsim.multiply(a, b, multiplier=mult)
    mismatch = got.view(np.uint32) != want.view(np.uint32)
    assert not mismatch.any(), f"{name}: {a[mismatch][:3]} * {b[mismatch][:3]} -> {got[mismatch][:3]} vs {want[mismatch][:3]}"
