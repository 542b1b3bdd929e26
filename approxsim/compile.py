"""User C/C++ multiplier models to tables: compile, evaluate in a separate process, cache.

A float model is a C or C++ file that defines ``float f(float a, float b)``. approxsim
compiles it (:mod:`approxsim.toolchain`: the usual headers, ``APPROXSIM_MANTISSA_BITS``
defined to ``M``, ``main`` renamed) together with a small driver, evaluates
``f(1 + i/2^M, 1 + j/2^M)`` for every ``i, j < 2^M`` in a separate process (a crash, an exit
or a hang cannot take Python down; a time limit applies; the model's own output is discarded
but for its first lines), checks the values and caches the table.

The cache lives in ``toolchain.cache_dir()``. A table is keyed by a hash of every file the
compiler reads for the model, the function, ``M``, the compiler's identity and the approxsim
version; the table file records the key and the model it came from, and a file whose record
does not match is rebuilt, never used. :func:`run_on_operands` runs a model on given operand
pairs the same way (direct models are checked with it at registration).
"""

from __future__ import annotations

import hashlib
import json
import signal
import tempfile
from pathlib import Path

import numpy as np

from approxsim import toolchain
from approxsim._version import __version__
from approxsim.errors import CompileError, ModelError
from approxsim.lut import grid_operands, load_table, save_table
from approxsim.multiplier import MAX_TABLE_BITS, check_mantissa_bits
from approxsim.toolchain import cache_dir, language_of

__all__ = ["cache_dir", "build_table", "language_of", "table_key", "run_on_operands", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 60.0
_DRIVER_VERSION = 3

_GRID_DRIVER = r"""
/* approxsim table driver (generated) */
static float (*approxsim_model_)(float, float) = {function};

int main(int argc, char** argv) {{
  const int m = APPROXSIM_MANTISSA_BITS;
  const unsigned side = 1u << m;
  FILE* out;
  unsigned i, j;
  static float row[2048];
  if (argc != 2) return 2;
  out = fopen(argv[1], "wb");
  if (!out) return 3;
  for (i = 0; i < side; ++i) {{
    float a = (float)(1.0 + (double)i / side);
    for (j = 0; j < side; ++j) row[j] = approxsim_model_(a, (float)(1.0 + (double)j / side));
    if (fwrite(row, sizeof(float), side, out) != side) return 4;
  }}
  return fclose(out) == 0 ? 0 : 5;
}}
"""

_PAIRS_DRIVER = r"""
/* approxsim operand-pairs driver (generated): out[i] = f(a[i], b[i]) for the pairs in argv[1] */
static float (*approxsim_model_)(float, float) = {function};

int main(int argc, char** argv) {{
  FILE* in;
  FILE* out;
  float ab[2], r;
  if (argc != 3) return 2;
  in = fopen(argv[1], "rb");
  out = fopen(argv[2], "wb");
  if (!in || !out) return 3;
  while (fread(ab, sizeof(float), 2, in) == 2) {{
    r = approxsim_model_(ab[0], ab[1]);
    if (fwrite(&r, sizeof(float), 1, out) != 1) return 4;
  }}
  return fclose(out) == 0 ? 0 : 5;
}}
"""


def compile_driver(source: Path, function: str, m: int, workdir: Path, driver: str, *, defines=(),
                   signature: str = "float {function}(float, float)") -> Path:
    """Compiles ``driver`` (a template with ``{function}``) after the model; returns the executable.

    Raises:
      CompileError: the model does not compile (the compiler's own message), lacks the function,
        declares it without defining it, or has another signature.
    """
    language = language_of(source)
    errors = toolchain.syntax_errors(source, language, m, defines=defines)
    if errors:
        raise CompileError(
            f"{source.name} does not compile. Fix the errors below and register it again.\n"
            f"$ {' '.join(toolchain.compiler(language))} -x {language} -fsyntax-only {source}\n{errors}")
    unit = workdir / ("driver.c" if language == "c" else "driver.cc")
    unit.write_text(toolchain.prelude(source, language) + driver.format(function=function))
    exe = workdir / "driver"
    extra = ["-Werror=incompatible-pointer-types"] if language == "c" else []
    build = toolchain.run([*toolchain.compiler(language), "-x", language, "-O2", f"-DAPPROXSIM_MANTISSA_BITS={m}",
                           *[f"-D{d}" for d in defines], *extra, str(unit), "-x", "none", "-o", str(exe), "-lm"],
                          workdir, timeout=120)
    if build.returncode == 0:
        return exe
    if not toolchain.defines_function(source, function, language, m, defines=defines):
        raise toolchain.missing_function_error(source, function)
    if toolchain.undefined_reference(build.stderr, function):
        raise CompileError(
            f"{source.name} declares {function}() but never defines it (the linker found no body). Add the "
            f"function's definition, or register the file that holds it.\nLinker output:\n{build.stderr.strip()}")
    raise CompileError(
        f"{function!r} in {source.name} does not have the signature {signature.format(function=function)}. "
        f"Change it accordingly.\nCompiler output:\n{build.stderr.strip()}")


def _run_driver(exe: Path, args, workdir: Path, timeout: float, label: str, what: str) -> None:
    code, output = toolchain.run_isolated([str(exe), *map(str, args)], workdir, timeout)
    tail = f" Its output began:\n{output}" if output else ""
    if code is None:
        raise ModelError(f"The model {label} did not finish {what} within {timeout:g} s (an endless loop?). "
                         "Fix the model, or pass a larger timeout=.")
    if code < 0:
        name = signal.Signals(-code).name
        raise ModelError(f"The model {label} crashed ({name}) while {what}. Check it for out-of-bounds accesses "
                         f"or bad pointer casts.{tail}")
    if code != 0:
        raise ModelError(f"The model {label} exited with status {code} while {what} (it must return a product, "
                         f"not end the program).{tail}")


def _evaluate(exe: Path, m: int, workdir: Path, timeout: float, label: str) -> np.ndarray:
    out_file = workdir / "table.f32"
    side = 1 << m
    _run_driver(exe, [out_file], workdir, timeout, label, f"evaluating the {side}x{side} grid of operands in [1, 2)")
    data = np.fromfile(out_file, dtype=np.float32) if out_file.is_file() else np.empty(0, np.float32)
    if data.size != side * side:
        raise ModelError(f"The model {label} wrote {data.size} values instead of {side * side}.")
    table = data.reshape(side, side)
    bad = np.argwhere(~np.isfinite(table))
    if bad.size:
        grid = grid_operands(m)
        shown = ", ".join(f"f({float(grid[i])!r}, {float(grid[j])!r}) = {float(table[i, j])!r}"
                          for i, j in bad[:5])
        raise ModelError(
            f"The model {label} returned NaN or Inf at {len(bad)} grid point(s): {shown}"
            f"{', ...' if len(bad) > 5 else ''}. A table model must return a finite product for "
            "operands in [1, 2); fix it for these operands.")
    return table


def run_on_operands(path, *, function: str, a, b, mantissa_bits: int = 23, timeout: float = DEFAULT_TIMEOUT,
                    label: str = "") -> np.ndarray:
    """``f(a[i], b[i])`` for float32 operand pairs, computed by the model in a separate process.

    Raises:
      CompileError: as :func:`build_table`.
      ModelError: the model crashes, exits or hangs on these operands.
    """
    path = Path(path).expanduser().resolve()
    timeout = toolchain.check_timeout(timeout)
    pairs = np.stack([np.asarray(a, np.float32).ravel(), np.asarray(b, np.float32).ravel()], axis=1)
    label = label or f"{function}() in {path.name}"
    with tempfile.TemporaryDirectory(prefix="approxsim-run-") as tmp:
        workdir = Path(tmp)
        exe = compile_driver(path, function, mantissa_bits, workdir, _PAIRS_DRIVER)
        pairs.tofile(workdir / "pairs.f32")
        _run_driver(exe, [workdir / "pairs.f32", workdir / "out.f32"], workdir, timeout, label,
                    f"computing {len(pairs)} sample products")
        return np.fromfile(workdir / "out.f32", dtype=np.float32)


def table_key(path: Path, function: str, m: int, language: str) -> str:
    """The cache key of a table: every file the model reads, function, M, compiler and approxsim version."""
    ident = toolchain.compiler_identity(tuple(toolchain.compiler(language)))
    payload = json.dumps([toolchain.source_digest(path, language), function, m, language, ident, __version__,
                          _DRIVER_VERSION])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def build_table(path, *, function: str, mantissa_bits: int, timeout: float = DEFAULT_TIMEOUT,
                name: str = "") -> tuple[np.ndarray, Path]:
    """Compiles a model and evaluates it on the grid, through the cache.

    Args:
      path: C or C++ source file defining ``float function(float, float)``.
      function: the function's name.
      mantissa_bits: ``M``, 1..11.
      timeout: seconds the grid evaluation may take (finite, above 0).
      name: multiplier name recorded in the table file.

    Returns:
      ``(table, table_file)``: the float32 ``(2**M, 2**M)`` table and its cache file. When the
      cache cannot be written (read-only), the table is returned all the same, with a warning.

    Raises:
      CompileError: the file does not compile, lacks the function, or its signature is wrong.
      ModelError: the model crashes, hangs, exits, or returns NaN/Inf on the grid.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"Multiplier source {str(path)!r} does not exist.")
    mantissa_bits = check_mantissa_bits(mantissa_bits, hi=MAX_TABLE_BITS)
    timeout = toolchain.check_timeout(timeout)
    if not isinstance(function, str) or not function.isidentifier():
        raise ValueError(f"function must be a C identifier. Received: function={function!r}")
    language = language_of(path)
    key = table_key(path, function, mantissa_bits, language)
    table_file = cache_dir() / "tables" / f"{key}.npz"
    provenance = {"key": key, "function": function, "mantissa_bits": mantissa_bits, "source": str(path)}
    if table_file.is_file():
        try:
            table, m, meta = load_table(table_file)
            if m == mantissa_bits and meta.get("key") == key:
                return table, table_file
        except Exception:  # a damaged or foreign cache entry is rebuilt
            pass
    with tempfile.TemporaryDirectory(prefix="approxsim-build-") as tmp:
        workdir = Path(tmp)
        exe = compile_driver(path, function, mantissa_bits, workdir, _GRID_DRIVER)
        table = _evaluate(exe, mantissa_bits, workdir, timeout, f"{function}() in {path.name}")
    from approxsim.cache import write_or_warn

    write_or_warn(lambda: save_table(table_file, table, mantissa_bits, name=name, source=f"{path}:{function}",
                                     key=key, provenance=provenance), what=f"the table of {name or function}")
    return table, table_file
