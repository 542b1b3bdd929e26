"""The C/C++ toolchain that turns users' multiplier models into programs: one place for it.

* :func:`language_of`, :func:`compiler`, :func:`compiler_identity`: which compiler runs;
* :func:`prelude`: what every compilation of a model sees before the model: the usual headers
  (``<stdint.h>``, ``<stdbool.h>``, ``<math.h>``, ``<string.h>``, ``<stdio.h>``, or their C++
  forms), CUDA's ``__host__``/``__device__`` qualifiers defined away, and ``main`` renamed, so
  files written for ApproxTrain's ``lut_gen`` or EvoApproxLib register unchanged;
* :func:`dependencies`: every local file the compiler reads for a model (its own ``-MM``
  output, at any include depth), which :func:`source_digest` hashes for the cache keys and
  :func:`keep_sources` copies into the cache, so a model survives its files;
* the checks that tell a syntax error from a missing function from a wrong signature.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from approxsim.cache import cache_dir
from approxsim.errors import CompileError

__all__ = ["cache_dir", "language_of", "compiler", "compiler_identity", "prelude", "run", "dependencies",
           "source_digest", "keep_sources", "compiles", "defines_function", "missing_function_error",
           "INCLUDES"]

_CXX_SUFFIXES = {".cc", ".cpp", ".cxx", ".c++", ".inl", ".h", ".hpp", ".hh", ".cu"}
_LOCAL_INCLUDE = re.compile(rb'^\s*#\s*include\s*"([^"]+)"', re.MULTILINE)

INCLUDES = {
    "c": "#include <stdint.h>\n#include <stdbool.h>\n#include <math.h>\n#include <string.h>\n#include <stdio.h>",
    "c++": "#include <cstdint>\n#include <cmath>\n#include <cstring>\n#include <cstdio>",
}

_PRELUDE = """{includes}
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


def language_of(path) -> str:
    """``"c"`` for ``.c`` files, ``"c++"`` for C++ sources and headers (``.inl``, ``.h``).

    Raises:
      ValueError: a suffix of neither language.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".c":
        return "c"
    if suffix in _CXX_SUFFIXES:
        return "c++"
    raise ValueError(
        f"Cannot tell the language of {str(path)!r}: use a .c file for C, or .cc/.cpp/.cxx/.inl/.h "
        f"for C++. Received: suffix={suffix!r}")


def compiler(language: str) -> list[str]:
    """The compiler command for ``language`` (``$CC``/``$CXX``, else the first of cc/gcc/clang found).

    Raises:
      CompileError: none is installed.
    """
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
def compiler_identity(command: tuple) -> str:
    """The compiler command and the first line of its ``--version`` (part of every cache key)."""
    try:
        out = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=30)
        first = (out.stdout or out.stderr).splitlines()[0] if (out.stdout or out.stderr) else ""
    except (OSError, subprocess.TimeoutExpired):
        first = ""
    return f"{' '.join(command)} | {first}"


def _include_path(path: Path) -> str:
    """``path`` spelled for ``#include "..."``; a name the preprocessor cannot take is refused."""
    text = str(path).replace("\\", "/")
    if '"' in text or "\n" in text:
        raise ValueError(f"The model's path contains a character an #include cannot name (a quote or a line "
                         f"break). Rename or move the file. Received: path={str(path)!r}")
    return text


def prelude(path: Path, language: str) -> str:
    """The headers, qualifier definitions and the ``#include`` of the model (see the module docstring)."""
    return _PRELUDE.format(includes=INCLUDES[language], source=_include_path(path))


def run(cmd, cwd, timeout: float = 300.0):
    """Runs a compiler command, capturing its output as text."""
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def _syntax_check(path: Path, language: str, m: int, body: str = "", defines=()) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="approxsim-check-") as tmp:
        unit = Path(tmp) / ("check.c" if language == "c" else "check.cc")
        unit.write_text(prelude(path, language) + body)
        return run([*compiler(language), "-x", language, "-fsyntax-only", f"-DAPPROXSIM_MANTISSA_BITS={m}",
                    *[f"-D{d}" for d in defines], str(unit)], tmp)


def compiles(path: Path, language: str, m: int, *, defines=()) -> bool:
    """Whether the model alone compiles (its own errors, not approxsim's driver's)."""
    return _syntax_check(path, language, m, defines=defines).returncode == 0


def syntax_errors(path: Path, language: str, m: int, *, defines=()) -> str:
    """The compiler's messages for the model alone ('' when it compiles)."""
    res = _syntax_check(path, language, m, defines=defines)
    return "" if res.returncode == 0 else res.stderr.strip()


def defines_function(path: Path, function: str, language: str, m: int, *, defines=()) -> bool:
    """Whether the model declares ``function`` (whatever its signature)."""
    body = f"\nvoid* approxsim_probe_(void) {{ return (void*)&{function}; }}\n"
    return _syntax_check(path, language, m, body, defines).returncode == 0


def missing_function_error(path: Path, function: str) -> CompileError:
    return CompileError(
        f"{path.name} defines no function named {function!r}. Pass the name of the function that "
        f"computes the product (function=...), spelled as in the file. Received: function={function!r}")


def undefined_reference(log: str, function: str) -> bool:
    """Whether a link log says ``function`` is declared but never defined."""
    return bool(re.search(r"undefined reference to [`'\"]?_?" + re.escape(function) + r"\b", log))


def _scan_includes(path: Path) -> list[Path]:
    """Local ``#include "..."`` files found by scanning text (when the preprocessor cannot run)."""
    found, todo = [], [path]
    while todo:
        current = todo.pop()
        try:
            data = current.read_bytes()
        except OSError:
            continue
        for match in _LOCAL_INCLUDE.finditer(data):
            header = (current.parent / match.group(1).decode(errors="replace")).resolve()
            if header.is_file() and header not in found and header != path:
                found.append(header)
                todo.append(header)
    return found


def dependencies(path: Path, language: str) -> list[Path]:
    """The model file and every local file the compiler reads for it (``-MM``: no system headers), sorted.

    Falls back to following ``#include "..."`` lines when the preprocessor fails (a missing header:
    the compile step reports it).
    """
    path = Path(path).resolve()
    with tempfile.TemporaryDirectory(prefix="approxsim-deps-") as tmp:
        unit = Path(tmp) / ("deps.c" if language == "c" else "deps.cc")
        unit.write_text(f'#include "{_include_path(path)}"\n')
        res = run([*compiler(language), "-x", language, "-MM", "-MG", "-DAPPROXSIM_MANTISSA_BITS=1", str(unit)], tmp)
    files = {path}
    if res.returncode == 0:
        text = res.stdout.replace("\\\n", " ")
        for token in text.split(":", 1)[-1].split():
            candidate = Path(token)
            if not candidate.is_absolute():
                candidate = Path(tmp) / candidate
            if candidate.is_file() and candidate.name != unit.name:
                files.add(candidate.resolve())
    else:
        files.update(_scan_includes(path))
    return sorted(files)


def source_digest(path: Path, language: str = None) -> str:
    """SHA-256 over every file the model reads (names relative to the model's folder, and contents)."""
    path = Path(path).resolve()
    language = language or language_of(path)
    digest = hashlib.sha256()
    for dep in dependencies(path, language):
        digest.update(os.path.relpath(dep, path.parent).encode() + b"\0")
        digest.update(dep.read_bytes() + b"\0")
    return digest.hexdigest()


def keep_sources(path: Path, folder: Path) -> Path:
    """Copies the model and every local file it reads into ``folder`` (layout kept); returns the copy.

    Files are laid out relative to the deepest folder that holds all of them, so the copy's
    ``#include "..."`` lines (``../common/x.h`` too) find the copied headers. Each file is written
    atomically; an existing copy is left as it is (its folder name is the digest of its content).
    """
    from approxsim.lut import atomic_write_bytes

    path = Path(path).resolve()
    deps = dependencies(path, language_of(path))
    root = Path(os.path.commonpath([str(d.parent) for d in deps]))
    copy = folder / path.relative_to(root)
    if not copy.is_file():
        for dep in deps:
            atomic_write_bytes(folder / dep.relative_to(root), dep.read_bytes())
    return copy


def check_timeout(timeout) -> float:
    """A time limit in seconds: a finite positive number.

    Raises:
      ValueError: anything else (``inf``, ``nan``, zero or negative).
    """
    import math
    import numbers

    if isinstance(timeout, bool) or not isinstance(timeout, numbers.Real) or not math.isfinite(timeout) \
            or timeout <= 0:
        raise ValueError(f"timeout must be a finite number of seconds above 0 (the limit on running the model). "
                         f"Received: timeout={timeout!r}")
    return float(timeout)


_OUTPUT_KEPT = 4096  # bytes of a model's own output kept for error messages; the rest is discarded


def run_isolated(cmd, cwd, timeout: float):
    """Runs a model's driver in its own process with a time limit.

    The model's stdout and stderr are read as they come and all but their first 4 KiB are
    discarded, so a chatty model costs no memory.

    Returns:
      ``(returncode, output_head)``; ``returncode`` is ``None`` when the time limit ran out (the
      process is killed).
    """
    import threading

    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    head = bytearray()

    def drain():
        for block in iter(lambda: proc.stdout.read(65536), b""):
            if len(head) < _OUTPUT_KEPT:
                head.extend(block[:_OUTPUT_KEPT - len(head)])

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    finally:
        reader.join(timeout=5)
        proc.stdout.close()
    return code, head.decode(errors="replace").strip()
