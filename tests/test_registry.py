"""User C/C++ models: registration, the cache, persistence, and every error path."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import approxsim
from approxsim import multipliers
from approxsim.compile import cache_dir
from approxsim.lut import grid_operands

# An ApproxTrain-style model: its own macros, a helper, uint32_t punning through a
# pointer cast, no includes and no main.  Truncates both mantissas to 4 bits.
APPROXTRAIN_STYLE = """
#define FRAC_MASK 0x007FFFFF
#define KEEP4     0x00780000

uint32_t keep_top(uint32_t bits) { return (bits & ~FRAC_MASK) | (bits & KEEP4); }

float trunc4_mul(float Af, float Bf)
{
    uint32_t at = *(uint32_t *)&Af;
    uint32_t bt = *(uint32_t *)&Bf;
    at = keep_top(at);
    bt = keep_top(bt);
    float a = *(float *)&at;
    float b = *(float *)&bt;
    return a * b;
}
"""


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def _cache_tables():
    folder = cache_dir() / "tables"
    return sorted(os.listdir(folder)) if folder.is_dir() else []


def test_register_c_builds_the_grid_table(tmp_path):
    path = _write(tmp_path, "halfway.c", """
        float halfway(float a, float b) { return 0.5f * (a * b + a + b - 1.0f); }
    """)
    mult = multipliers.register_c(path, function="halfway", mantissa_bits=4, name="halfway_test")
    g = grid_operands(4).astype(np.float64)
    want = (0.5 * (np.outer(g, g) + g[:, None] + g[None, :] - 1.0)).astype(np.float32)
    assert mult.table.shape == (16, 16)
    np.testing.assert_array_equal(mult.table, want)
    assert multipliers.get("halfway_test") is mult
    assert "halfway_test" in multipliers.available()
    # The product uses the table: 1.5 * 1.25 -> T[8][4] = 0.5 * (1.875 + 1.75)
    assert approxsim.multiply(1.5, 1.25, multiplier="halfway_test") == np.float32(0.5 * (1.875 + 1.75))


def test_approxtrain_style_inl_registers_unchanged(tmp_path):
    path = _write(tmp_path, "trunc4.inl", APPROXTRAIN_STYLE)
    mult = multipliers.register_c(path, function="trunc4_mul", mantissa_bits=6, name="trunc4_test")
    g = grid_operands(6)
    t4 = np.floor((g - 1) * 16) / 16 + 1
    np.testing.assert_array_equal(mult.table, np.outer(t4, t4).astype(np.float32))


def test_cplusplus_file_with_overloads_and_main(tmp_path):
    path = _write(tmp_path, "model.cpp", """
        #include <cmath>
        namespace detail { inline float sq(float x) { return x * x; } }
        double scaled(double a, double b) { return a * b; }
        float scaled(float a, float b) { return std::sqrt(detail::sq(a * b)); }
        int main() { return 1; }
    """)
    mult = multipliers.register_c(path, function="scaled", mantissa_bits=3, name="cpp_test")
    g = grid_operands(3)
    np.testing.assert_array_equal(mult.table, np.outer(g, g))


def test_mantissa_bits_macro_is_defined(tmp_path):
    path = _write(tmp_path, "m.c", "float m_of(float a, float b) { return (float)APPROXSIM_MANTISSA_BITS; }\n")
    assert (multipliers.register_c(path, function="m_of", mantissa_bits=5, name="m_test").table == 5).all()


def test_table_is_cached_and_reused(tmp_path):
    path = _write(tmp_path, "cached.c", "float cached(float a, float b) { return a * b; }\n")
    multipliers.register_c(path, function="cached", mantissa_bits=2, name="cached_test")
    before = _cache_tables()
    multipliers.register_c(path, function="cached", mantissa_bits=2, name="cached_test")
    assert _cache_tables() == before
    multipliers.register_c(path, function="cached", mantissa_bits=3, name="cached_test3")
    assert len(_cache_tables()) == len(before) + 1


def test_registration_persists_across_processes(tmp_path):
    path = _write(tmp_path, "persist.c", "float persist(float a, float b) { return a + b; }\n")
    mult = multipliers.register_c(path, function="persist", mantissa_bits=3, name="persist_test")
    path.unlink()  # the registry keeps its own copy of the source
    code = ("import approxsim, numpy as np; m = approxsim.multipliers.get('persist_test'); "
            "print(m.mantissa_bits, float(m.table.sum()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy(),
                         check=True)
    assert out.stdout.split() == ["3", repr(float(mult.table.sum()))]
    multipliers.unregister("persist_test")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ.copy())
    assert out.returncode != 0 and "Unknown multiplier 'persist_test'" in out.stderr


# --- error paths: each names the problem and leaves nothing in the cache -------------------

def _assert_nothing_cached(before):
    assert _cache_tables() == before


def test_compile_error_shows_compiler_message(tmp_path):
    path = _write(tmp_path, "broken.c", "float broken(float a, float b) { return a * ; }\n")
    before = _cache_tables()
    with pytest.raises(approxsim.CompileError) as info:
        multipliers.register_c(path, function="broken", mantissa_bits=3)
    msg = str(info.value)
    assert "broken.c does not compile" in msg and "error:" in msg and "expected expression" in msg
    _assert_nothing_cached(before)


def test_missing_function(tmp_path):
    path = _write(tmp_path, "other.c", "float other(float a, float b) { return a * b; }\n")
    with pytest.raises(approxsim.CompileError, match="defines no function named 'mul'"):
        multipliers.register_c(path, function="mul", mantissa_bits=3)


def test_wrong_signature(tmp_path):
    path = _write(tmp_path, "sig.c", "int sig(int a) { return a; }\n")
    with pytest.raises(approxsim.CompileError, match=r"declared int sig\(int a\): not a multiplier signature.*"
                                                     r"float f\(float, float\) for a float model"):
        multipliers.register_c(path, function="sig", mantissa_bits=3)
    path = _write(tmp_path, "half.c", "float half(float a, int b) { return a * b; }\n")
    with pytest.raises(approxsim.CompileError, match=r"signature float half\(float, float\)"):
        multipliers.register_c(path, function="half", mantissa_bits=3)


def test_crashing_model(tmp_path):
    path = _write(tmp_path, "crash.c", """
        float crash(float a, float b) { volatile int *p = (int *)0; if (a > 1.5f) *p = 1; return a * b; }
    """)
    before = _cache_tables()
    with pytest.raises(approxsim.ModelError, match="crashed \\(SIGSEGV\\)"):
        multipliers.register_c(path, function="crash", mantissa_bits=3)
    _assert_nothing_cached(before)


def test_hanging_model_times_out(tmp_path):
    path = _write(tmp_path, "hang.c", "float hang(float a, float b) { volatile int x = 1; while (x) {} return a; }\n")
    with pytest.raises(approxsim.ModelError, match="did not finish .* within 2 s"):
        multipliers.register_c(path, function="hang", mantissa_bits=2, timeout=2)


def test_nan_or_inf_on_grid_names_operands(tmp_path):
    path = _write(tmp_path, "nan.c", """
        #include <math.h>
        float nanny(float a, float b) { return (a == 1.5f && b == 1.75f) ? NAN : a * b; }
    """)
    before = _cache_tables()
    with pytest.raises(approxsim.ModelError, match=r"f\(1\.5, 1\.75\) = nan"):
        multipliers.register_c(path, function="nanny", mantissa_bits=2)
    _assert_nothing_cached(before)


def test_argument_errors(tmp_path):
    path = _write(tmp_path, "ok.c", "float ok(float a, float b) { return a * b; }\n")
    with pytest.raises(ValueError, match="mantissa_bits must be an integer from 1 to 11"):
        multipliers.register_c(path, function="ok", mantissa_bits=12)
    with pytest.raises(FileNotFoundError):
        multipliers.register_c(tmp_path / "missing.c", function="ok", mantissa_bits=3)
    with pytest.raises(ValueError, match="built-in"):
        multipliers.register_c(path, function="ok", mantissa_bits=3, name="mbm7")
    with pytest.raises(ValueError, match="language"):
        multipliers.register_c(_write(tmp_path, "model.f90", "x"), function="ok", mantissa_bits=3)


def test_register_python_multiplier():
    table = np.full((4, 4), 1.5, dtype=np.float32)
    mult = multipliers.register(approxsim.Multiplier("flat_test", 2, table), overwrite=True)
    assert multipliers.get("FLAT_TEST") is mult
    assert approxsim.multiply(3.0, 5.0, multiplier="flat_test") == 1.5 * 2 * 4
    with pytest.raises(ValueError, match="already registered"):
        multipliers.register(approxsim.Multiplier("flat_test", 2, table))
    with pytest.raises(ValueError, match="finite"):
        approxsim.Multiplier("bad", 1, np.array([[1, np.nan], [1, 1]]))
    with pytest.raises(ValueError, match="shape"):
        approxsim.Multiplier("bad", 2, np.ones((2, 2)))
