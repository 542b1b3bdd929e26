"""A direct model's CPU library: the model compiled with approxsim's kernel loops, cached.

The generated translation unit includes the same standard headers as the table
driver (:mod:`approxsim.compile`), defines CUDA's qualifiers away, renames a
``main`` the file may have, includes the model file, then ``direct_kernels.h``
with ``APPROXSIM_DIRECT_FN`` set to the model function, so every product is an
inlinable direct call. It is compiled in the model's own language (C for ``.c``)
with ``-O3 -ffp-contract=off`` (no fused multiply-adds, so each product and each
sum is the IEEE operation the source spells) and ``-march=native`` (the library is
built where it runs; ``APPROXSIM_DIRECT_NATIVE=0`` turns it off), and linked with the C++ thread
runner (``direct_runner.h``) into one shared library.

Libraries live in ``cache_dir()/direct``, keyed by the source (and the local
headers it includes), the function, ``M``, both compilers' identities, the
kernel headers, the flags, the CPU (with ``-march=native``) and the approxsim version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import tempfile
from pathlib import Path

from approxsim import compile as _compile
from approxsim._resources import header_dir
from approxsim._version import __version__
from approxsim.errors import CompileError

__all__ = ["build_library", "library_key"]

_KERNEL_HEADERS = ("direct_kernels.h", "direct_runner.h")
_FLAGS = ["-O3", "-fPIC", "-ffp-contract=off"]
# the model TU: hidden symbols, so the model function can be inlined into the loops (no PLT call)
_MODEL_FLAGS = ["-fvisibility=hidden", "-fno-semantic-interposition"]
_TU = """/* approxsim direct-multiplier kernels (generated) */
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
static float (*const approxsim_dk_signature_check_)(float, float) = {function};
#include "direct_kernels.h"
"""


@functools.lru_cache(maxsize=None)
def _native_flags(compiler: tuple) -> tuple:
    """``-march=native`` when the compiler takes it and ``$APPROXSIM_DIRECT_NATIVE`` is not 0.

    The library is built at first use on the machine that runs it (like NVRTC's
    kernels), so it may use the host's vector units; the CPU's identity is part of the
    cache key. No fused multiply-adds (``-ffp-contract=off``): each product is still
    the IEEE operation the model spells.
    """
    if os.environ.get("APPROXSIM_DIRECT_NATIVE", "1") == "0":
        return ()
    probe = subprocess.run([*compiler, "-march=native", "-x", "c", "-E", os.devnull], capture_output=True)
    return ("-march=native",) if probe.returncode == 0 else ()


@functools.lru_cache(maxsize=None)
def _cpu_identity() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            lines = [ln for ln in f.read().splitlines() if ln.startswith(("model name", "flags", "Features"))]
        return hashlib.sha256("\n".join(sorted(set(lines))).encode()).hexdigest()
    except OSError:
        import platform

        return platform.machine() + platform.processor()


def _kernel_digest() -> str:
    digest = hashlib.sha256()
    for name in _KERNEL_HEADERS:
        digest.update((header_dir() / name).read_bytes())
    return digest.hexdigest()


def library_key(path: Path, function: str, m: int, language: str) -> str:
    """Cache key: source digest, function, M, language, compilers, kernel headers, approxsim version."""
    idents = [_compile._compiler_identity(tuple(_compile._compiler(lang))) for lang in (language, "c++")]
    native = _native_flags(tuple(_compile._compiler(language)))
    payload = json.dumps([_compile._source_digest(path), function, m, language, idents, _kernel_digest(),
                          _FLAGS, _MODEL_FLAGS, native, _cpu_identity() if native else "", __version__])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def _run(cmd, cwd):
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=300)


def _explain_failure(path: Path, function: str, language: str, m: int, workdir: Path, log: str) -> CompileError:
    compiler = _compile._compiler(language)
    probe = workdir / ("probe.c" if language == "c" else "probe.cc")
    probe.write_text(f'{_compile._INCLUDES[language]}\n#define main approxsim_user_main_\n#include "{path}"\n'
                     f"void* approxsim_probe_(void) {{ return (void*)&{function}; }}\n")
    plain = workdir / ("plain.c" if language == "c" else "plain.cc")
    plain.write_text(f'{_compile._INCLUDES[language]}\n#define main approxsim_user_main_\n#include "{path}"\n')
    common = ["-x", language, "-fsyntax-only", f"-DAPPROXSIM_MANTISSA_BITS={m}"]
    if _run([*compiler, *common, str(plain)], workdir).returncode != 0:
        return CompileError(f"{path.name} does not compile. Fix the errors below and register it again.\n{log}")
    if _run([*compiler, *common, str(probe)], workdir).returncode != 0:
        return CompileError(
            f"{path.name} defines no function named {function!r}. Pass the name of the function that "
            f"computes the product (function=...), spelled as in the file. Received: function={function!r}")
    return CompileError(
        f"{function!r} in {path.name} does not have the signature float {function}(float, float), or it "
        f"clashes with approxsim's kernel code. Change it to take two floats and return a float.\n"
        f"Compiler output:\n{log}")


def build_library(path: Path, function: str, m: int) -> Path:
    """Compiles (or finds in the cache) the shared library of a direct model.

    Args:
      path: the model's C or C++ source.
      function: the model function's name.
      m: the value of ``APPROXSIM_MANTISSA_BITS`` the model is compiled with (1..23).

    Returns:
      Path of the cached shared library.

    Raises:
      CompileError: the model does not compile, lacks the function, or has the wrong signature.
    """
    path = Path(path).resolve()
    language = _compile.language_of(path)
    key = library_key(path, function, m, language)
    lib = _compile.cache_dir() / "direct" / f"{key}.so"
    if lib.is_file():
        return lib
    lib.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="approxsim-direct-") as tmp:
        workdir = Path(tmp)
        tu = workdir / ("model_kernels.c" if language == "c" else "model_kernels.cc")
        tu.write_text(_TU.format(includes=_compile._INCLUDES[language], source=str(path).replace("\\", "/"),
                                 function=function))
        obj = workdir / "model_kernels.o"
        extra = ["-Werror=incompatible-pointer-types"] if language == "c" else []
        compiler = _compile._compiler(language)
        cmd = [*compiler, "-x", language, *_FLAGS, *_MODEL_FLAGS, *_native_flags(tuple(compiler)), *extra,
               f"-DAPPROXSIM_MANTISSA_BITS={m}", f"-DAPPROXSIM_DIRECT_FN={function}", f"-I{header_dir()}", "-c",
               str(tu), "-o", str(obj)]
        out = _run(cmd, workdir)
        if out.returncode != 0:
            raise _explain_failure(path, function, language, m, workdir, out.stderr.strip())
        runner = workdir / "runner.cc"
        runner.write_text('#include "direct_runner.h"\n')
        tmp_lib = workdir / "lib.so"
        cmd = [*_compile._compiler("c++"), "-std=c++17", *_FLAGS, f"-I{header_dir()}", "-shared", str(runner),
               str(obj), "-o", str(tmp_lib), "-pthread", "-lm"]
        out = _run(cmd, workdir)
        if out.returncode != 0:
            raise CompileError(f"Linking the direct kernels of {function}() in {path.name} failed. Check that a "
                               f"C++17 compiler is installed (set $CXX to choose one).\n{out.stderr.strip()}")
        fd, staged = tempfile.mkstemp(prefix=f".{lib.name}.", suffix=".tmp", dir=lib.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(tmp_lib.read_bytes())
            os.chmod(staged, 0o755)
            os.replace(staged, lib)  # atomic: concurrent builders of the same key write the same library
        except BaseException:
            if os.path.exists(staged):
                os.unlink(staged)
            raise
    return lib
