"""Integer C models (EvoApproxLib style) to tables and to direct kernels (DESIGN.md section 1b).

A model is a C or C++ function of two integer codes in one of the forms EvoApproxLib writes:
``uint16_t f(uint8_t, uint8_t)``, ``int16_t f(int8_t, int8_t)``, ``uint32_t f(uint16_t, uint16_t)``,
``int32_t f(int16_t, int16_t)`` (the prototype gives the width and signedness), or
``uint64_t f(const uint64_t B, const uint64_t A)`` (positional order counts; the width and
signedness come from the caller: ``bits=``, ``signed=``). A prototype's width is an upper bound:
a 12-bit circuit in ``uint16_t`` parameters takes ``bits=12``. ``signed=True`` with unsigned
parameters is the form of signed circuits that take and return bit patterns: they get the
codes' patterns and their result is read as a ``2n``-bit two's complement pattern.

:func:`build_int_table` evaluates a model on all ``2^(2n)`` pairs of codes (``n <= 12``) in a
separate process, through the cache, as :mod:`approxsim.compile` does for float models;
:func:`run_int_pairs` runs it on given pairs. Both call the model through one generated
wrapper, :func:`wrapper_source`, which the direct kernels (:mod:`approxsim.direct`) use too, so
a table entry and a direct product are the same C expression.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import tempfile
from pathlib import Path
from typing import Optional

import numpy as np

from approxsim import toolchain
from approxsim._version import __version__
from approxsim.compile import DEFAULT_TIMEOUT, _run_driver, compile_driver
from approxsim.errors import CompileError, ModelError
from approxsim.integer import MAX_BITS, MAX_TABLE_BITS, IntFormat, check_bits

__all__ = ["IntSignature", "parse_signature", "resolve_format", "wrapper_source", "build_int_table",
           "run_int_pairs", "int_table_key", "WRAPPER"]

WRAPPER = "approxsim_int_model_"  # the generated wrapper's name: long long WRAPPER(long long a, long long b)
_DRIVER_VERSION = 1

# C integer types by spelling: (width, signed)
_TYPES = {
    "uint8_t": (8, False), "int8_t": (8, True), "uint16_t": (16, False), "int16_t": (16, True),
    "uint32_t": (32, False), "int32_t": (32, True), "uint64_t": (64, False), "int64_t": (64, True),
    "unsigned char": (8, False), "signed char": (8, True), "unsigned short": (16, False), "short": (16, True),
    "unsigned short int": (16, False), "short int": (16, True), "unsigned int": (32, False), "unsigned": (32, False),
    "int": (32, True), "unsigned long long": (64, False), "long long": (64, True),
    "unsigned long": (64, False), "long": (64, True),
}
_FLOATS = ("float", "double")
_QUALIFIERS = re.compile(r"\b(const|volatile|register|static|inline|extern|__inline__|__device__|__host__)\b")


@dataclasses.dataclass(frozen=True)
class IntSignature:
    """The C prototype of an integer model: return and parameter types (spelling, width, signedness)."""

    ret: str
    param: str
    ret_bits: int
    ret_signed: bool
    param_bits: int
    param_signed: bool

    @property
    def says_width(self) -> bool:
        """Whether the parameter type gives the width (not the ``uint64_t`` form)."""
        return self.param_bits < 64

    def spelled(self, function: str) -> str:
        return f"{self.ret} {function}({self.param}, {self.param})"


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _ctype(spelling: str) -> str:
    spelling = _QUALIFIERS.sub(" ", spelling)
    return " ".join(spelling.split())


def _param_type(param: str) -> str:
    """The type of one parameter declaration (``const uint64_t B`` -> ``uint64_t``)."""
    words = _ctype(param).split()
    if len(words) > 1 and " ".join(words) not in _TYPES and words[-1] not in ("char", "short", "int", "long"):
        words = words[:-1]  # drop the parameter's name
    return " ".join(words)


def parse_signature(path, function: str) -> Optional[IntSignature]:
    """The integer prototype of ``function`` in the file, or None for a float model (or one this
    scan does not find, which the float path then compiles and reports on).

    Raises:
      CompileError: the function's parameters are of a form approxsim does not take (the message
        lists the forms).
    """
    path = Path(path)
    text = _strip_comments(path.read_text(errors="replace"))
    pattern = re.compile(r"([A-Za-z_][\w \t]*?)\s*\b" + re.escape(function) + r"\s*\(([^()]*)\)\s*(\{|;)")
    found = [m for m in pattern.finditer(text) if m.group(3) == "{"] or list(pattern.finditer(text))
    if not found:
        return None  # not recognised as an integer model: the float path reports what is wrong
    ret_spelling, params = found[0].group(1), found[0].group(2)
    ret = _ctype(ret_spelling.split("\n")[-1])
    parts = [_param_type(p) for p in params.split(",")] if params.strip() else []
    if any(t in _FLOATS for t in parts):
        return None  # float operands: a float model (the float path checks its exact signature)
    forms = ("uint16_t f(uint8_t, uint8_t), int16_t f(int8_t, int8_t), uint32_t f(uint16_t, uint16_t), "
             "int32_t f(int16_t, int16_t), uint64_t f(uint64_t, uint64_t), or float f(float, float) for a float model")
    if ret in _FLOATS or len(parts) != 2 or parts[0] != parts[1] or parts[0] not in _TYPES or ret not in _TYPES:
        raise CompileError(
            f"{function}() in {path.name} is declared {ret} {function}({params.strip()}): not a multiplier "
            f"signature approxsim takes. Use one of: {forms}.")
    pb, ps = _TYPES[parts[0]]
    rb, rs = _TYPES[ret]
    if pb > 16 and pb != 64:
        raise CompileError(f"{function}() in {path.name} takes {parts[0]} codes; integer circuits have at most "
                           f"{MAX_BITS}-bit codes. Use one of: {forms}.")
    return IntSignature(ret, parts[0], rb, rs, pb, ps)


def resolve_format(sig: IntSignature, function: str, bits=None, signed=None) -> IntFormat:
    """The codes of a model: from the prototype where it says them, else from ``bits``/``signed``.

    Raises:
      ValueError: neither gives the width, or the options contradict the prototype.
    """
    where = f"{sig.spelled(function)}"
    if bits is not None:
        bits = check_bits(bits)
    if signed is not None and not isinstance(signed, (bool, np.bool_)):
        raise ValueError(f"signed must be True, False or None. Received: signed={signed!r}")
    if sig.says_width:
        if bits is not None and bits > sig.param_bits:
            raise ValueError(f"bits={bits} contradicts the prototype {where}: its {sig.param} parameters hold at "
                             f"most {sig.param_bits}-bit codes. Pass bits <= {sig.param_bits}, or none.")
        if signed is False and sig.param_signed:
            raise ValueError(f"signed=False (--unsigned) contradicts the prototype {where}: {sig.param} codes are "
                             "signed. Drop the option, or fix the prototype.")
        bits = sig.param_bits if bits is None else bits
        signed = sig.param_signed if signed is None else bool(signed)
    else:
        if bits is None or signed is None:
            missing = " and ".join(n for n, v in (("bits", bits), ("signedness", signed)) if v is None)
            raise ValueError(f"The prototype {where} does not say the codes' {missing}. Pass bits=N and "
                             "signed=True/False (CLI: --bits N --signed or --unsigned).")
    return IntFormat(bits, bool(signed))


def wrapper_source(function: str, sig: IntSignature, fmt: IntFormat) -> str:
    """C that defines ``long long approxsim_int_model_(long long a, long long b)``: the model on two codes.

    Signed parameter types get the codes, unsigned ones the codes' ``n``-bit patterns; a signed
    circuit with an unsigned return type has its result read as a ``2n``-bit two's complement pattern.
    """
    mask = (1 << fmt.bits) - 1
    arg = "{v}" if sig.param_signed else f"({{v}} & {mask}LL)"
    if fmt.signed and not sig.ret_signed:
        width = 2 * fmt.bits
        result = (f"(long long)(((unsigned long long)r & {(1 << width) - 1}ULL) ^ {1 << (width - 1)}ULL) "
                  f"- {1 << (width - 1)}LL")
    else:
        result = "(long long)r"
    return (f"\n/* approxsim: the integer model {function}() on two codes ({fmt.describe()}) */\n"
            f"static long long {WRAPPER}(long long a, long long b) {{\n"
            f"  const {sig.ret} r = {function}(({sig.param})({arg.format(v='a')}), ({sig.param})({arg.format(v='b')}));\n"
            f"  return {result};\n"
            f"}}\n")


_TABLE_DRIVER = r"""
/* approxsim integer table driver (generated): f on every pair of codes, in pattern order */
int main(int argc, char** argv) {
  const long long side = 1LL << APPROXSIM_INT_BITS;
  static long long row[4096];
  long long pa, pb;
  FILE* out;
  if (argc != 2) return 2;
  out = fopen(argv[1], "wb");
  if (!out) return 3;
  for (pa = 0; pa < side; ++pa) {
    const long long a = APPROXSIM_INT_SIGNED && pa >= side / 2 ? pa - side : pa;
    for (pb = 0; pb < side; ++pb) row[pb] = WRAPPER(a, APPROXSIM_INT_SIGNED && pb >= side / 2 ? pb - side : pb);
    if (fwrite(row, sizeof(long long), (size_t)side, out) != (size_t)side) return 4;
  }
  return fclose(out) == 0 ? 0 : 5;
}
"""

_PAIRS_DRIVER = r"""
/* approxsim integer pairs driver (generated): out[i] = f(a[i], b[i]) for the code pairs in argv[1] */
int main(int argc, char** argv) {
  FILE* in;
  FILE* out;
  long long ab[2], r;
  if (argc != 3) return 2;
  in = fopen(argv[1], "rb");
  out = fopen(argv[2], "wb");
  if (!in || !out) return 3;
  while (fread(ab, sizeof(long long), 2, in) == 2) {
    r = WRAPPER(ab[0], ab[1]);
    if (fwrite(&r, sizeof(long long), 1, out) != 1) return 4;
  }
  return fclose(out) == 0 ? 0 : 5;
}
"""


def _driver(function: str, sig: IntSignature, fmt: IntFormat, body: str) -> str:
    text = (wrapper_source(function, sig, fmt) + body.replace("WRAPPER", WRAPPER)
            .replace("APPROXSIM_INT_BITS", str(fmt.bits)).replace("APPROXSIM_INT_SIGNED", str(int(fmt.signed))))
    return text.replace("{", "{{").replace("}", "}}")  # compile_driver formats {function}


def _compile(path: Path, function: str, sig: IntSignature, fmt: IntFormat, workdir: Path, body: str) -> Path:
    return compile_driver(path, function, fmt.bits, workdir, _driver(function, sig, fmt, body),
                          signature=sig.spelled("{function}"))


def int_table_key(path: Path, function: str, sig: IntSignature, fmt: IntFormat, language: str) -> str:
    """The cache key of an integer table: every file the model reads, function, prototype, codes,
    compiler and approxsim version."""
    ident = toolchain.compiler_identity(tuple(toolchain.compiler(language)))
    payload = json.dumps([toolchain.source_digest(path, language), function, dataclasses.astuple(sig), fmt.bits,
                          fmt.signed, language, ident, __version__, _DRIVER_VERSION])
    return hashlib.sha256(payload.encode()).hexdigest()[:32]


def build_int_table(path, *, function: str, sig: IntSignature, fmt: IntFormat, timeout: float = DEFAULT_TIMEOUT,
                    name: str = "") -> tuple[np.ndarray, Path]:
    """Compiles an integer model and evaluates it on all ``2^(2n)`` pairs of codes, through the cache.

    Returns:
      ``(table, table_file)``: the int32 ``(2^n, 2^n)`` table (indexed by patterns) and its cache file.

    Raises:
      ValueError: ``n`` above 12 (use direct mode).
      CompileError: the file does not compile, lacks the function, or has another signature.
      ModelError: the model crashes, hangs or exits, or a product does not fit int32.
    """
    from approxsim.cache import write_or_warn
    from approxsim.lut import load_int_table, save_int_table

    path = Path(path).expanduser().resolve()
    if fmt.bits > MAX_TABLE_BITS:
        raise ValueError(f"An integer table holds at most {MAX_TABLE_BITS}-bit codes (a {fmt.bits}-bit one would "
                         f"have 2^{2 * fmt.bits} entries). Register {function}() with mode=\"direct\" (CLI: --mode direct).")
    timeout = toolchain.check_timeout(timeout)
    language = toolchain.language_of(path)
    key = int_table_key(path, function, sig, fmt, language)
    table_file = toolchain.cache_dir() / "tables" / f"int-{key}.npz"
    if table_file.is_file():
        try:
            table, got, meta = load_int_table(table_file)
            if got == fmt and meta.get("key") == key:
                return table, table_file
        except Exception:  # a damaged or foreign cache entry is rebuilt
            pass
    label = f"{function}() in {path.name}"
    side = 1 << fmt.bits
    with tempfile.TemporaryDirectory(prefix="approxsim-build-") as tmp:
        workdir = Path(tmp)
        exe = _compile(path, function, sig, fmt, workdir, _TABLE_DRIVER)
        out = workdir / "table.i64"
        _run_driver(exe, [out], workdir, timeout, label, f"evaluating all {side}x{side} pairs of {fmt.describe()}")
        data = np.fromfile(out, dtype=np.int64) if out.is_file() else np.empty(0, np.int64)
    if data.size != side * side:
        raise ModelError(f"The model {label} wrote {data.size} products instead of {side * side}.")
    table = data.reshape(side, side)
    if data.size and (int(table.min()) < -2 ** 31 or int(table.max()) > 2 ** 31 - 1):
        p = np.unravel_index(int(np.argmax(np.abs(table))), table.shape)
        codes = fmt.codes()
        raise ModelError(f"The model {label} returns {int(table[p])} for codes ({int(codes[p[0]])}, "
                         f"{int(codes[p[1]])}), which does not fit an int32 table. Register it with mode=\"direct\".")
    provenance = {"key": key, "function": function, "bits": fmt.bits, "signed": fmt.signed,
                  "signature": sig.spelled(function), "source": str(path)}
    write_or_warn(lambda: save_int_table(table_file, table, fmt, name=name, source=f"{path}:{function}", key=key,
                                         provenance=provenance), what=f"the table of {name or function}")
    return table.astype(np.int32), table_file


def run_int_pairs(path, *, function: str, sig: IntSignature, fmt: IntFormat, a, b,
                  timeout: float = DEFAULT_TIMEOUT) -> np.ndarray:
    """``f(a[i], b[i])`` (int64) for code pairs, computed by the model in a separate process.

    Raises:
      CompileError, ModelError: as :func:`build_int_table`.
    """
    path = Path(path).expanduser().resolve()
    timeout = toolchain.check_timeout(timeout)
    pairs = np.stack([np.asarray(a, np.int64).ravel(), np.asarray(b, np.int64).ravel()], axis=1)
    with tempfile.TemporaryDirectory(prefix="approxsim-run-") as tmp:
        workdir = Path(tmp)
        exe = _compile(path, function, sig, fmt, workdir, _PAIRS_DRIVER)
        pairs.tofile(workdir / "pairs.i64")
        _run_driver(exe, [workdir / "pairs.i64", workdir / "out.i64"], workdir, timeout,
                    f"{function}() in {path.name}", f"computing {len(pairs)} sample products")
        return np.fromfile(workdir / "out.i64", dtype=np.int64)
