"""A direct model's CPU library: the model compiled with approxsim's kernel loops, cached.

The generated translation unit is the model's toolchain prelude (:mod:`approxsim.toolchain`:
standard headers, CUDA qualifiers defined away, ``main`` renamed), the model file, then
``direct_cpu.h`` with ``APPROXSIM_DIRECT_FN`` set to the model function, so every product is
an inlinable direct call. It is compiled in the model's own language (C for ``.c``) with
``-O3 -ffp-contract=off`` (no fused multiply-adds, so each product and each sum is the IEEE
operation the source spells), hidden symbols (the model inlines into the loops) and the
vector units of the SIMD level: ``-march=native`` by default (the library is built where it
runs), the level's baseline when ``$APPROXSIM_SIMD`` forces one (``portable``: x86-64,
``avx2``: x86-64-v3, ``avx512``: x86-64-v4, ``vbmi``: x86-64-v4 with VBMI);
``APPROXSIM_DIRECT_NATIVE=0`` turns ``-march=native`` off.

Libraries live in ``cache_dir()/direct``, keyed by every file the compiler read, the function,
``M``, the compilers' identities, the kernel headers, the flags, the CPU (with
``-march=native``) and the approxsim version. Each has a ``.sha256`` record (size and digest)
written after it; a library whose record is missing or does not match (truncated, damaged,
half-written) is rebuilt before it is ever loaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import subprocess
import shutil
import tempfile
from pathlib import Path

from approxsim import toolchain
from approxsim._resources import header_dir
from approxsim._version import __version__
from approxsim.errors import CompileError
from approxsim.lut import atomic_write_bytes

__all__ = ["build_library", "library_key", "library_is_intact"]

_KERNEL_HEADERS = ("direct_cpu.h", "direct_loops.h", "geometry.h")
_FLAGS = ["-O3", "-fPIC", "-ffp-contract=off"]
# hidden symbols, so the model function can be inlined into the loops (no PLT call)
_MODEL_FLAGS = ["-fvisibility=hidden", "-fno-semantic-interposition"]
_LEVEL_FLAGS = {"portable": ("-march=x86-64",), "avx2": ("-march=x86-64-v3",), "avx512": ("-march=x86-64-v4",),
                "vbmi": ("-march=x86-64-v4", "-mavx512vbmi")}


@functools.lru_cache(maxsize=None)
def _accepts(compiler: tuple, flags: tuple) -> bool:
    probe = subprocess.run([*compiler, *flags, "-x", "c", "-E", os.devnull], capture_output=True)
    return probe.returncode == 0


def simd_flags(compiler) -> tuple:
    """The vector-unit flags of the library: the forced SIMD level's, or ``-march=native``.

    Raises:
      ValueError: ``$APPROXSIM_SIMD`` names a level this CPU lacks (see approxsim.backends.cpu).
    """
    from approxsim.backends.cpu import forced_simd

    level = forced_simd()
    if level is not None:
        flags = _LEVEL_FLAGS[level] if platform.machine() in ("x86_64", "AMD64") else ()
        return flags if _accepts(tuple(compiler), flags) else ()
    if os.environ.get("APPROXSIM_DIRECT_NATIVE", "1") == "0":
        return ()
    return ("-march=native",) if _accepts(tuple(compiler), ("-march=native",)) else ()


@functools.lru_cache(maxsize=None)
def _cpu_identity() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags", "Features"))]
        return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()
    except OSError:
        return platform.machine() + platform.processor()


def _kernel_digest() -> str:
    digest = hashlib.sha256()
    for name in _KERNEL_HEADERS:
        digest.update((header_dir() / name).read_bytes())
    return digest.hexdigest()


def library_key(path: Path, function: str, m: int, language: str, defines=(), extra_source: str = "") -> str:
    """Cache key: every file the model reads, function, M, language, compilers, kernel headers, flags, version."""
    compiler = toolchain.compiler(language)
    idents = [toolchain.compiler_identity(tuple(toolchain.compiler(lang))) for lang in (language, "c++")]
    vector = simd_flags(compiler)
    native = "-march=native" in vector
    payload = json.dumps([toolchain.source_digest(path, language), function, m, language, idents, _kernel_digest(),
                          _FLAGS, _MODEL_FLAGS, list(vector), list(defines), _cpu_identity() if native else "",
                          __version__, extra_source])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _record(lib: Path) -> Path:
    return lib.with_name(lib.name + ".sha256")


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def library_is_intact(lib: Path) -> bool:
    """Whether ``lib`` exists and matches its ``.sha256`` record (size and digest)."""
    try:
        size, digest = _record(lib).read_text().split()
        return lib.stat().st_size == int(size) and _file_digest(lib) == digest
    except (OSError, ValueError):
        return False


def _explain_failure(path: Path, function: str, language: str, m: int, defines, log: str,
                     signature: str) -> CompileError:
    if not toolchain.compiles(path, language, m, defines=defines):
        return CompileError(f"{path.name} does not compile. Fix the errors below and register it again.\n{log}")
    if not toolchain.defines_function(path, function, language, m, defines=defines):
        return toolchain.missing_function_error(path, function)
    return CompileError(
        f"{function!r} in {path.name} does not have the signature this multiplier needs "
        f"({signature.replace('(*)', ' ' + function)}). Change it accordingly.\nCompiler output:\n{log}")


def build_library(path: Path, function: str, m: int, *, defines=(), signature="float (*)(float, float)",
                  extra_source: str = "", kernel_function: str = "") -> Path:
    """Compiles (or finds in the cache) the shared library of a direct model.

    Args:
      path: the model's C or C++ source.
      function: the model function's name.
      m: the value of ``APPROXSIM_MANTISSA_BITS`` the model is compiled with.
      defines: further ``-D`` definitions of the generated unit (integer models: the code types).
      signature: the function pointer type the model must convert to, checked at compile time.
      extra_source: C placed after the model (integer models: the wrapper of approxsim.compile_int).
      kernel_function: the function the kernels call (default: the model function itself).

    Returns:
      Path of the cached shared library (intact: its record matches).

    Raises:
      CompileError: the model does not compile, lacks the function, or has the wrong signature.
    """
    path = Path(path).resolve()
    language = toolchain.language_of(path)
    key = library_key(path, function, m, language, defines, extra_source)
    kernel_function = kernel_function or function
    lib = toolchain.cache_dir() / "direct" / f"{key}.so"
    if library_is_intact(lib):
        return lib
    with tempfile.TemporaryDirectory(prefix="approxsim-direct-") as tmp:
        workdir = Path(tmp)
        tu = workdir / ("model_kernels.c" if language == "c" else "model_kernels.cc")
        ptr = signature.replace("(*)", "(*const approxsim_dl_signature_check_)")
        tu.write_text(toolchain.prelude(path, language) + f"static {ptr} = {function};\n" + extra_source +
                      '#include "direct_cpu.h"\n')
        obj = workdir / "model_kernels.o"
        compiler = toolchain.compiler(language)
        extra = ["-Werror=incompatible-pointer-types"] if language == "c" else []
        cmd = [*compiler, "-x", language, *_FLAGS, *_MODEL_FLAGS, *simd_flags(compiler), *extra,
               f"-DAPPROXSIM_MANTISSA_BITS={m}", f"-DAPPROXSIM_DIRECT_FN={kernel_function}", *[f"-D{d}" for d in defines],
               f"-I{header_dir()}", "-c", str(tu), "-o", str(obj)]
        out = toolchain.run(cmd, workdir)
        if out.returncode != 0:
            raise _explain_failure(path, function, language, m, defines, out.stderr.strip(), signature)
        tmp_lib = workdir / "lib.so"
        cmd = [*toolchain.compiler("c++"), *_FLAGS, "-shared", str(obj), "-o", str(tmp_lib), "-lm"]
        out = toolchain.run(cmd, workdir)
        if out.returncode != 0:
            raise CompileError(f"Linking the direct kernels of {function}() in {path.name} failed. Check that a "
                               f"C++ compiler is installed (set $CXX to choose one).\n{out.stderr.strip()}")
        data = tmp_lib.read_bytes()
    from approxsim.cache import write_or_warn

    def write():  # the library first, then its record: a record never vouches for a torn file
        atomic_write_bytes(lib, data)
        atomic_write_bytes(_record(lib), f"{len(data)} {hashlib.sha256(data).hexdigest()}\n".encode())
        return lib

    return write_or_warn(write, what=f"the compiled kernels of {function}()") or _private_copy(key, data)


def _private_copy(key: str, data: bytes) -> Path:
    """A library that could not be cached, kept in a folder of this process (removed at exit)."""
    import atexit

    folder = Path(tempfile.mkdtemp(prefix="approxsim-direct-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    lib = folder / f"{key}.so"
    lib.write_bytes(data)
    return lib
