"""User C/C++ multiplier models to tables: compile, evaluate on the grid, cache.

A model is a C or C++ file that defines ``float f(float a, float b)``. approxsim
compiles it with the system compiler together with a small driver that includes
the file, evaluates ``f(1 + i/2^M, 1 + j/2^M)`` for every ``i, j < 2^M`` in a
separate process (so a crash or a hang cannot take Python down), checks the
values and caches the table.

The driver includes ``<stdint.h>``, ``<stdbool.h>``, ``<math.h>`` and
``<string.h>`` (their C++ forms for C++ files) before the model, defines
``APPROXSIM_MANTISSA_BITS`` to ``M``, defines CUDA's ``__host__``/``__device__``
qualifiers away, and renames a ``main`` the file may have, so files written for
ApproxTrain's ``lut_gen`` register unchanged.

The cache lives in ``$APPROXSIM_CACHE`` or ``~/.cache/approxsim``. A table is
keyed by a hash of the source, the function, ``M``, the compiler's identity and
the approxsim version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from approxsim._version import __version__
from approxsim.errors import CompileError, ModelError
from approxsim.lut import grid_operands, load_table, save_table
from approxsim.multiplier import MAX_TABLE_BITS

__all__ = ["cache_dir", "build_table", "language_of", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = 60.0
_DRIVER_VERSION = 2
_CXX_SUFFIXES = {".cc", ".cpp", ".cxx", ".c++", ".inl", ".h", ".hpp", ".hh", ".cu"}


def cache_dir() -> Path:
    """The cache folder: ``$APPROXSIM_CACHE``, else ``~/.cache/approxsim``."""
    env = os.environ.get("APPROXSIM_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "approxsim"


def language_of(path) -> str:
    """``"c"`` for ``.c`` files, ``"c++"`` for C++ sources and headers (``.inl``, ``.h``)."""
    suffix = Path(path).suffix.lower()
    if suffix == ".c":
        return "c"
    if suffix in _CXX_SUFFIXES:
        return "c++"
    raise ValueError(
        f"Cannot tell the language of {str(path)!r}: use a .c file for C, or .cc/.cpp/.cxx/.inl/.h "
        f"for C++. Received: suffix={suffix!r}")


def _compiler(language: str) -> list[str]:
    env = os.environ.get("CC" if language == "c" else "CXX")
    if env:
        return shlex.split(env)
    names = ("cc", "gcc", "clang") if language == "c" else ("c++", "g++", "clang++")
    for name in names:
        found = shutil.which(name)
        if found:
            return [found]
    raise CompileError(
        f"No {language.upper()} compiler found (looked for {', '.join(names)} and "
        f"${'CC' if language == 'c' else 'CXX'}). Install one, for example `apt-get install build-essential`.")


@functools.lru_cache(maxsize=None)
def _compiler_identity(compiler: tuple) -> str:
    try:
        out = subprocess.run([*compiler, "--version"], capture_output=True, text=True, timeout=30)
        first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    except (OSError, subprocess.TimeoutExpired):
        first = ""
    return f"{' '.join(compiler)} | {first}"


# What every compilation of a model sees before the model: the usual headers,
# CUDA qualifiers defined away, and `main` renamed (ApproxTrain-style files rely on these).
_PRELUDE = r"""
{includes}
#ifndef __host__
#define __host__
#endif
#ifndef __device__
#define __device__
#endif
#ifndef __forceinline__
#define __forceinline__ inline
#endif
#define main approxsim_user_main_
#include "{source}"
#undef main
"""

_DRIVER = r"""
/* approxsim table driver (generated) */
{prelude}

static float (*approxsim_model_)(float, float) = {function};

int main(int argc, char** argv) {{
  const int m = APPROXSIM_MANTISSA_BITS;
  const unsigned side = 1u << m;
  FILE* out;
  unsigned i, j;
  float row[2048];
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

_INCLUDES = {
    "c": "#include <stdint.h>\n#include <stdbool.h>\n#include <math.h>\n#include <string.h>\n#include <stdio.h>",
    "c++": "#include <cstdint>\n#include <cmath>\n#include <cstring>\n#include <cstdio>",
}


def _run(cmd, cwd, timeout=120.0):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _compile_driver(source: Path, function: str, m: int, language: str, workdir: Path) -> Path:
    compiler = _compiler(language)
    lang_flag = ["-x", language]
    common = ["-O2", f"-DAPPROXSIM_MANTISSA_BITS={m}"]
    suffix = ".c" if language == "c" else ".cc"
    prelude = _PRELUDE.format(includes=_INCLUDES[language], source=str(source).replace("\\", "/"))
    # 1. The model alone: a syntax error is the user's, shown as the compiler wrote it.
    check_file = workdir / f"check{suffix}"
    check_file.write_text(prelude)
    check = _run([*compiler, *lang_flag, "-fsyntax-only", *common, str(check_file)], workdir)
    if check.returncode != 0:
        raise CompileError(
            f"{source.name} does not compile. Fix the errors below and register it again.\n"
            f"$ {' '.join(compiler)} -x {language} -fsyntax-only {source}\n{check.stderr.strip()}")
    # 2. The driver: evaluates the function on the grid.
    driver = workdir / f"driver{suffix}"
    driver.write_text(_DRIVER.format(prelude=prelude, function=function))
    exe = workdir / "driver"
    extra = ["-Werror=incompatible-pointer-types"] if language == "c" else []
    build = _run([*compiler, *lang_flag, *common, *extra, str(driver), "-x", "none", "-o", str(exe), "-lm"], workdir)
    if build.returncode == 0:
        return exe
    probe = workdir / f"probe{suffix}"
    probe.write_text(f"{prelude}\nvoid* approxsim_probe_(void) {{ return (void*)&{function}; }}\n")
    exists = _run([*compiler, *lang_flag, "-fsyntax-only", *common, str(probe)], workdir).returncode == 0
    if not exists:
        raise CompileError(
            f"{source.name} defines no function named {function!r}. Pass the name of the function that "
            f"computes the product (function=...), spelled as in the file. Received: function={function!r}")
    raise CompileError(
        f"{function!r} in {source.name} does not have the signature float {function}(float, float). "
        f"Change it to take two floats and return a float.\nCompiler output:\n{build.stderr.strip()}")


def _evaluate(exe: Path, m: int, workdir: Path, timeout: float, label: str) -> np.ndarray:
    out_file = workdir / "table.f32"
    try:
        proc = subprocess.run([str(exe), str(out_file)], cwd=workdir, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ModelError(
            f"The model {label} did not finish evaluating the {1 << m}x{1 << m} grid within {timeout:g} s "
            "(an endless loop?). Fix the model, or pass a larger timeout=.") from None
    if proc.returncode < 0:
        name = signal.Signals(-proc.returncode).name
        raise ModelError(
            f"The model {label} crashed ({name}) while evaluating the grid of operands in [1, 2). "
            "Check it for out-of-bounds accesses or bad pointer casts.")
    if proc.returncode != 0:
        raise ModelError(f"The model {label} exited with status {proc.returncode} while evaluating the grid: "
                         f"{proc.stderr.decode(errors='replace').strip()}")
    side = 1 << m
    data = np.fromfile(out_file, dtype=np.float32)
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


_LOCAL_INCLUDE = re.compile(rb'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)


def _source_digest(path: Path) -> str:
    """Hash of the source and of the local headers it includes (one level)."""
    digest = hashlib.sha256(path.read_bytes())
    for match in _LOCAL_INCLUDE.finditer(path.read_bytes()):
        header = path.parent / match.group(1).decode(errors="replace")
        if header.is_file():
            digest.update(header.read_bytes())
    return digest.hexdigest()


def table_key(path: Path, function: str, m: int, language: str) -> str:
    """The cache key of a table: source, function, M, compiler and approxsim version."""
    ident = _compiler_identity(tuple(_compiler(language)))
    payload = json.dumps([_source_digest(path), function, m, language, ident, __version__, _DRIVER_VERSION])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def build_table(path, *, function: str, mantissa_bits: int, timeout: float = DEFAULT_TIMEOUT,
                name: str = "") -> tuple[np.ndarray, Path]:
    """Compiles a model and evaluates it on the grid, through the cache.

    Args:
      path: C or C++ source file defining ``float function(float, float)``.
      function: the function's name.
      mantissa_bits: ``M``, 1..11.
      timeout: seconds the grid evaluation may take.
      name: multiplier name recorded in the table file.

    Returns:
      ``(table, table_file)``: the float32 ``(2**M, 2**M)`` table and its cache file.

    Raises:
      CompileError: the file does not compile, lacks the function, or its signature is wrong.
      ModelError: the model crashes, hangs, or returns NaN/Inf on the grid.
    """
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"Multiplier source {str(path)!r} does not exist.")
    if isinstance(mantissa_bits, bool) or not isinstance(mantissa_bits, int) \
            or not 1 <= mantissa_bits <= MAX_TABLE_BITS:
        raise ValueError(f"mantissa_bits must be an integer from 1 to {MAX_TABLE_BITS}. "
                         f"Received: mantissa_bits={mantissa_bits!r}")
    if not function.isidentifier():
        raise ValueError(f"function must be a C identifier. Received: function={function!r}")
    language = language_of(path)
    key = table_key(path, function, mantissa_bits, language)
    table_file = cache_dir() / "tables" / f"{key}.npz"
    if table_file.is_file():
        try:
            table, m, _ = load_table(table_file)
            if m == mantissa_bits:
                return table, table_file
        except Exception:  # a damaged cache entry is rebuilt
            pass
    with tempfile.TemporaryDirectory(prefix="approxsim-build-") as tmp:
        workdir = Path(tmp)
        exe = _compile_driver(path, function, mantissa_bits, language, workdir)
        table = _evaluate(exe, mantissa_bits, workdir, timeout, f"{function}() in {path.name}")
    save_table(table_file, table, mantissa_bits, name=name, source=f"{path}:{function}")
    return table, table_file
