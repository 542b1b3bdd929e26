"""The CUDA sources of direct multipliers and integer tables, and the NVRTC checks.

:func:`generate_source` turns a model file into one self-contained CUDA source:
a prelude (fixed-width integer typedefs, since NVRTC has no ``<stdint.h>``;
``APPROXSIM_MANTISSA_BITS``; ``main`` renamed), the model with its local
``#include "..."`` headers inlined (``#line`` directives keep NVRTC's messages
pointing at the user's files), and the kernels of ``approxsim/csrc/direct_cuda.h``.
It is compiled by NVRTC (CuPy's ``RawModule``) at first use with
:data:`NVRTC_OPTIONS`: ``-default-device`` makes the model's unannotated functions
and file-scope variables ``__device__`` ones, ``--fmad=false`` keeps each product
and sum the IEEE operation the source spells.

Before that, :func:`prescan` rejects what NVRTC cannot compile in a model, naming
the construct and where it is: ``#include <...>`` of any standard header, host
I/O (``printf``, ``fopen``, ...), allocation (``malloc``, ...), other host-only
calls (``exit``, ``rand``, ``time``, ...), ``std::`` and ``long double``. Code in
``#ifndef __CUDACC_RTC__`` / ``#ifndef __CUDA_ARCH__`` / ``#ifndef __CUDACC__``
blocks (or the ``#else`` of their ``#ifdef``) is skipped, so a model may keep
host-only code for its CPU build. What the pre-scan misses is reported by
:func:`explain_nvrtc_log`, which names the construct from NVRTC's log.
"""

from __future__ import annotations

import re
from pathlib import Path

from approxsim.errors import CompileError

__all__ = ["NVRTC_OPTIONS", "generate_source", "generate_int_table_source", "prescan", "explain_nvrtc_log",
           "INT_TABLE_SYMBOL"]

NVRTC_OPTIONS = ("-default-device", "--fmad=false")

_PRELUDE = """/* approxsim direct-multiplier CUDA source (generated) for {label} */
#if defined(__CUDACC_RTC__)
typedef signed char int8_t;
typedef unsigned char uint8_t;
typedef short int16_t;
typedef unsigned short uint16_t;
typedef int int32_t;
typedef unsigned int uint32_t;
typedef long long int64_t;
typedef unsigned long long uint64_t;
#else
#include <stdint.h>
#endif
#define APPROXSIM_MANTISSA_BITS {m}
#define APPROXSIM_DIRECT_FN {kernel_function}
{integer}#define main approxsim_user_main_
{c_compat}"""

# Standard headers a model may include for the types and functions the prelude and CUDA already give
# (EvoApproxLib's models include <stdint.h> and <stdlib.h>): left out of the GPU source.
_PROVIDED_HEADERS = ("stdint.h", "inttypes.h", "stdlib.h", "stddef.h", "stdbool.h")

_HOST_ONLY = {
    "I/O": ("printf", "fprintf", "sprintf", "snprintf", "vprintf", "puts", "fputs", "putchar", "scanf", "fscanf",
            "sscanf", "fopen", "fclose", "fread", "fwrite", "fflush", "fgets", "getchar", "perror"),
    "memory allocation": ("malloc", "calloc", "realloc", "free", "aligned_alloc", "posix_memalign"),
    "process/host": ("exit", "abort", "atexit", "system", "getenv", "rand", "srand", "time", "clock",
                     "fesetround", "fegetround", "setlocale", "qsort", "bsearch"),
}
_CALL = re.compile(r"\b(" + "|".join(n for names in _HOST_ONLY.values() for n in names) + r")\s*\(")
_SYSTEM_INCLUDE = re.compile(r"^\s*#\s*include\s*<([^>]+)>")
_LOCAL_INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"')
_CUDA_MACROS = ("__CUDACC_RTC__", "__CUDA_ARCH__", "__CUDACC__")
_STD = re.compile(r"\bstd\s*::")
_LONG_DOUBLE = re.compile(r"\blong\s+double\b")
_STREAMS = re.compile(r"\b(stdin|stdout|stderr|FILE|cout|cerr)\b")


def _strip_comments_and_strings(text: str) -> str:
    """The source with comments and string/char literals blanked out, line breaks kept."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif c in "\"'":
            j = i + 1
            while j < n and text[j] != c and text[j] != "\n":
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            # keep #include "file" names: they are not string literals
            line_start = text.rfind("\n", 0, i) + 1
            if c == '"' and _LOCAL_INCLUDE.match(text[line_start:j]):
                out.append(text[i:j])
            else:
                out.append(c + " " * max(0, j - i - 2) + (c if j - i >= 2 else ""))
            i = j
        else:
            out.append(c)
            i += 1
    return "".join(out)


def _host_only_mask(lines):
    """For each line, whether it sits in a block only the host compiler sees.

    Recognised: ``#ifndef M`` / ``#if !defined(M)`` (the if-branch is host-only) and
    ``#ifdef M`` / ``#if defined(M)`` (the else-branch is), for M a CUDA macro.
    """
    stack, mask = [], []  # entries: (which branch is host-only: "if", "else" or None, in the else branch)
    cond = re.compile(r"\s*(!)?\s*defined\s*\(?\s*(" + "|".join(_CUDA_MACROS) + r")\s*\)?\s*$")
    for line in lines:
        directive = re.match(r"\s*#\s*(ifndef|ifdef|if|elif|else|endif)\b(.*)", line)
        if directive:
            kind, rest = directive.group(1), directive.group(2).strip()
            if kind in ("ifndef", "ifdef"):
                cuda = rest in _CUDA_MACROS
                stack.append(((("if" if kind == "ifndef" else "else") if cuda else None), False))
            elif kind == "if":
                match = cond.match(rest)
                stack.append(((("if" if match.group(1) else "else") if match else None), False))
            elif kind == "else" and stack:
                stack[-1] = (stack[-1][0], True)
            elif kind == "elif" and stack:
                stack[-1] = (None, True)  # scanned: too many cases to tell
            elif kind == "endif" and stack:
                stack.pop()
            mask.append(False)
            continue
        mask.append(any((skip == "if" and not in_else) or (skip == "else" and in_else) for skip, in_else in stack))
    return mask


def prescan(text: str, filename: str) -> list[tuple[str, str, int]]:
    """NVRTC-incompatible constructs in a model's text: ``(construct, file, line)`` tuples."""
    found = []
    lines = _strip_comments_and_strings(text).split("\n")
    for number, (line, skipped) in enumerate(zip(lines, _host_only_mask(lines)), start=1):
        if skipped:
            continue
        include = _SYSTEM_INCLUDE.match(line)
        if include and include.group(1).strip() in _PROVIDED_HEADERS:
            continue
        if include:
            found.append((f"#include <{include.group(1).strip()}>", filename, number))
            continue
        for match in _CALL.finditer(line):
            found.append((f"{match.group(1)}()", filename, number))
        for pattern, name in ((_STD, "std::"), (_LONG_DOUBLE, "long double")):
            if pattern.search(line):
                found.append((name, filename, number))
        for match in _STREAMS.finditer(line):
            found.append((match.group(1), filename, number))
    return found


def _inline(path: Path, seen: set, problems: list) -> str:
    """The file's text with local includes inlined (once each), scanning every file."""
    text = path.read_text(errors="replace")
    problems.extend(prescan(text, path.name))
    out = [f'#line 1 "{path.name}"']
    for number, line in enumerate(text.split("\n"), start=1):
        match = _LOCAL_INCLUDE.match(line)
        header = path.parent / match.group(1) if match else None
        system = _SYSTEM_INCLUDE.match(line)
        if system and system.group(1).strip() in _PROVIDED_HEADERS:
            out.append(f"/* {line.strip()}: provided by the prelude */")
        elif header is not None and header.is_file():
            key = header.resolve()
            if key not in seen:
                seen.add(key)
                out.append(_inline(header, seen, problems))
            out.append(f'#line {number + 1} "{path.name}"')
        else:
            out.append(line)
    return "\n".join(out)


def generate_source(model, *, check: bool = True) -> str:
    """The CUDA source of a :class:`~approxsim.direct.DirectModel`: model plus kernels.

    Args:
      model: the DirectModel.
      check: run :func:`prescan` and raise on what NVRTC cannot compile.

    Raises:
      approxsim.CompileError: names each NVRTC-incompatible construct, with file and line, and the fix.
    """
    problems: list = []
    body = _inline(model.path, {model.path}, problems)
    if check and problems:
        shown = "\n".join(f"  {name}  ({file}:{line})" for name, file, line in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        raise CompileError(
            f"The model {model.function}() in {model.path.name} cannot run on the GPU: NVRTC, which compiles it "
            f"into the CUDA kernels, has no standard headers and no host library. Unsupported constructs:\n"
            f"{shown}{more}\nFix: remove them, or put host-only code in an `#ifndef __CUDACC_RTC__` block. The "
            "generated source already defines int8_t..uint64_t, and the CUDA math functions (fabsf, ldexp, ...) "
            "need no header. Received: path=" + repr(str(model.path)))
    from approxsim.backends.cuda_build import kernel_source

    kernels = kernel_source("direct_cuda.h")  # with direct_loops.h and geometry.h inlined
    c_compat = "#define restrict __restrict__ /* a C model: NVRTC compiles C++ */\n" \
        if model.path.suffix.lower() == ".c" else ""
    wrapper = getattr(model, "wrapper", None)  # integer models: the code wrapper of approxsim.compile_int
    if wrapper is not None:
        from approxsim.compile_int import WRAPPER

        kernel_function, integer, body = WRAPPER, "#define APPROXSIM_DL_INTEGER 1\n", body + "\n" + wrapper()
    else:
        kernel_function, integer = model.function, ""
    return (_PRELUDE.format(label=f"{model.function}() in {model.path.name}", m=model.compile_bits,
                            kernel_function=kernel_function, integer=integer, c_compat=c_compat)
            + body + "\n#undef main\n#line 1 \"direct_cuda.h\"\n" + kernels)


_LOG_PATTERNS = (
    (re.compile(r'cannot open source file "([^"]+)"'), "#include <{0}> (NVRTC has no such header)"),
    (re.compile(r'identifier "([^"]+)" is undefined'), "{0} (not available in device code: a host-only "
                                                       "function or variable)"),
    (re.compile(r'calling a __host__ function\("?([^")]+)'), "{0} (a host-only function)"),
    (re.compile(r'(?:function|variable) "([^"]+)" .*(?:host|not allowed)'), "{0} (host-only)"),
)


def explain_nvrtc_log(log: str, label: str) -> CompileError:
    """A CompileError naming the constructs NVRTC rejected, with the full log."""
    named = []
    for pattern, template in _LOG_PATTERNS:
        for match in pattern.finditer(log):
            text = template.format(match.group(1))
            if text not in named:
                named.append(text)
    what = ("NVRTC rejected: " + "; ".join(named)) if named else "NVRTC reported errors"
    return CompileError(f"The model {label} does not compile for the GPU. {what}. Fix: remove host-only code "
                        f"(standard headers, I/O, allocation, std::) or guard it with `#ifndef __CUDACC_RTC__`.\n"
                        f"NVRTC log:\n{log.strip()}")


INT_TABLE_SYMBOL = "approxsim_int_table_"  # the device pointer to an integer table (set by the host)


def generate_int_table_source(bits: int) -> str:
    """The CUDA source of an integer table multiplier: the direct kernels (direct_loops.h, integer
    types) with a model that looks ``f(a, b)`` up in the int32 table at ``approxsim_int_table_``,
    ``T[pa * 2^n + pb]`` for the codes' patterns. Zero padding enters the forward and
    filter-gradient sums as code 0, as in the reference."""
    from approxsim.backends.cuda_build import kernel_source

    mask, side = (1 << bits) - 1, 1 << bits
    model = (f"/* approxsim integer table multiplier (generated), {bits}-bit codes */\n"
             f"__device__ const int* {INT_TABLE_SYMBOL};\n"
             f"static __device__ __forceinline__ long long approxsim_int_table_model_(int a, int b) {{\n"
             f"  return {INT_TABLE_SYMBOL}[(long long)(a & {mask}) * {side} + (b & {mask})];\n}}\n")
    prelude = _PRELUDE.format(label=f"an integer table, {bits}-bit codes", m=bits,
                              kernel_function="approxsim_int_table_model_", integer="#define APPROXSIM_DL_INTEGER 1\n",
                              c_compat="")
    return prelude + model + "\n#undef main\n#line 1 \"direct_cuda.h\"\n" + kernel_source("direct_cuda.h")
