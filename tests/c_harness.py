"""An independent C harness for integer multiplier models (tests only).

Compiles a model file with the system C compiler together with a generated ``main`` that calls
the function directly, in a prototype the caller states, and returns its results as int64. It
shares no code with approxsim's own compile path, so the tables approxsim builds can be checked
against it.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

SIGNATURES = {
    # name: (C return type, C parameter type)
    "u8": ("uint16_t", "uint8_t"),
    "s8": ("int16_t", "int8_t"),
    "u16": ("uint32_t", "uint16_t"),
    "s16": ("int32_t", "int16_t"),
    "u64": ("uint64_t", "uint64_t"),
}

_MAIN = r"""
#include <stdint.h>
#include <stdio.h>
{ret} {function}({param}, {param});
int main(int argc, char** argv) {{
  FILE* in = fopen(argv[1], "rb");
  FILE* out = fopen(argv[2], "wb");
  int64_t ab[2];
  while (fread(ab, sizeof(int64_t), 2, in) == 2) {{
    int64_t r = (int64_t)({function}(({param})ab[0], ({param})ab[1]));
    fwrite(&r, sizeof(int64_t), 1, out);
  }}
  fclose(out);
  return 0;
}}
"""


def call(path, function: str, signature: str, a, b) -> np.ndarray:
    """``function(a[i], b[i])`` as int64 (the C return value converted to int64_t), for int64 arrays
    of arguments (converted to the parameter type by C's rules)."""
    ret, param = SIGNATURES[signature]
    cc = shutil.which("cc") or shutil.which("gcc")
    with tempfile.TemporaryDirectory(prefix="c-harness-") as tmp:
        tmp = Path(tmp)
        (tmp / "main.c").write_text(_MAIN.format(ret=ret, param=param, function=function))
        exe = tmp / "harness"
        subprocess.run([cc, "-O1", "-o", str(exe), str(path), str(tmp / "main.c")], check=True,
                       capture_output=True, text=True)
        pairs = np.stack([np.asarray(a, np.int64).ravel(), np.asarray(b, np.int64).ravel()], axis=1)
        pairs.tofile(tmp / "in.bin")
        subprocess.run([str(exe), str(tmp / "in.bin"), str(tmp / "out.bin")], check=True, timeout=600)
        return np.fromfile(tmp / "out.bin", dtype=np.int64).reshape(np.shape(a))


def exhaustive(path, function: str, signature: str, bits: int, signed: bool) -> np.ndarray:
    """The int64 ``(2^n, 2^n)`` table of the raw C results, indexed by the codes' n-bit patterns
    (first operand outer). Arguments are the codes (signed ones as negative numbers), except for
    the ``u64`` and unsigned-typed prototypes, which get the patterns."""
    side = 1 << bits
    pat = np.arange(side, dtype=np.int64)
    codes = np.where(pat >= side // 2, pat - side, pat) if signed else pat
    arg = codes if signature in ("s8", "s16") else pat
    a, b = np.meshgrid(arg, arg, indexing="ij")
    return call(path, function, signature, a, b)
