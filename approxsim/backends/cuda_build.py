"""What the CUDA backend compiles and uploads: kernel sources, NVRTC options, table placement.

Needs neither CuPy nor a GPU (except :func:`get_function`), so a machine without either
can check the sources (``approxsim.direct.nvrtc`` compiles them to PTX).

Table placement (``variant``), by what is fastest for the table:

* ``s16``: shared memory, 16-bit entries (``M <= 7`` and every entry exact in 16 bits);
* ``s32``: shared memory, 32-bit entries (``M <= 6``);
* ``g32``: read-only global memory, 32-bit entries (``M <= 11``);
* ``gen``: any finite table (entries zero, negative or subnormal), through the header's
  ``approxsim_mul_split``; ``fp32``: the exact product (FMA), no table.
"""

from __future__ import annotations

import dataclasses
import os
import re
import threading
from typing import Optional

import numpy as np

from approxsim._resources import data_dir, header_dir
from approxsim.geometry import ConvGeometry

__all__ = ["kernel_dir", "kernel_source", "compile_options", "get_function", "TablePlan", "table_plan",
           "VARIANTS", "geometry_struct"]

VARIANTS = ("fp32", "s16", "s32", "g32", "gen")
_lock = threading.Lock()
_modules = {}


def kernel_dir():
    """Folder of the ``.cu``/``.cuh`` kernel sources (package data ``approxsim.kernels``)."""
    return data_dir("approxsim.kernels", "cuda")


def kernel_source(filename: str) -> str:
    """A kernel file with approxsim's own ``#include "..."`` files inlined.

    Inlining makes the source self-contained, so CuPy's compile cache (keyed by source and
    options) notices an edit of any header.
    """
    seen = set()
    dirs = (kernel_dir(), header_dir())

    def expand(name):
        if name in seen:
            return ""
        seen.add(name)
        for d in dirs:
            path = d / name
            if path.is_file():
                text = path.read_text()
                return re.sub(r'^\s*#\s*include\s+"([^"]+)"\s*$', lambda m: expand(m.group(1)), text, flags=re.M)
        raise FileNotFoundError(f"CUDA source {name!r} is missing from {[str(d) for d in dirs]}; reinstall approxsim.")

    return expand(filename)


def compile_options(variant: str):
    """NVRTC options for one product policy (``fp32``, ``s16``, ``s32``, ``g32``, ``gen``).

    ``$APPROXSIM_CUDA_MIN_BLOCKS`` (a tuning knob, default 2) sets the kernels' minimum blocks per SM.
    """
    options = ("-std=c++14", f"-I{header_dir()}", f"-I{kernel_dir()}", f"-DAPPROXSIM_ONLY_{variant}")
    blocks = os.environ.get("APPROXSIM_CUDA_MIN_BLOCKS", "").strip()
    if blocks:
        if not blocks.isdigit() or not 1 <= int(blocks) <= 8:
            raise ValueError(f"APPROXSIM_CUDA_MIN_BLOCKS must be an integer from 1 to 8. "
                             f"Received: APPROXSIM_CUDA_MIN_BLOCKS={blocks!r}")
        options += (f"-DAPPROXSIM_MIN_BLOCKS={int(blocks)}",)
    return options


def get_function(filename: str, name: str, variant: str):
    """Kernel ``name`` of ``filename`` compiled for ``variant`` on the current device (compiled once)."""
    import cupy

    key = (cupy.cuda.Device().id, filename, variant)
    with _lock:
        mod = _modules.get(key)
        if mod is None:
            mod = _modules[key] = cupy.RawModule(code=kernel_source(filename), options=compile_options(variant))
    return mod.get_function(name)


@dataclasses.dataclass(frozen=True)
class TablePlan:
    """How a multiplier's table goes to the GPU.

    Attributes:
      variant: the product policy (see the module docstring).
      host_table: what is uploaded (``None`` for ``fp32``).
      shared_bytes: dynamic shared memory the table takes (0 unless in shared memory).
      emin, emax: exponent range of the table's nonzero entries (``emin > emax``: none), the
        kernels' input to ``approxsim_float_domain_exact``.
    """
    variant: str
    host_table: Optional[np.ndarray]
    shared_bytes: int
    emin: int
    emax: int


def split_entries(table) -> np.ndarray:
    """The table as the header's ``approxsim_entry`` structs (sign|fraction, unbiased exponent)."""
    from approxsim.product import split_table

    sign, frac, uexp = split_table(table)
    entries = np.empty(sign.size, dtype=[("sign_frac", "<u4"), ("exp", "<i4")])
    entries["sign_frac"] = sign | frac
    entries["exp"] = uexp.astype(np.int32)
    return entries


def table_plan(mult) -> TablePlan:
    """The :class:`TablePlan` of a multiplier (cached on it)."""
    def build():
        if mult.is_exact:
            return TablePlan("fp32", None, 0, 1, 0)
        m = mult.mantissa_bits
        table = np.ascontiguousarray(mult.table, dtype=np.float32).ravel()
        bits = table.view(np.uint32)
        exp = (bits >> 23) & 0xFF
        if not ((bits >> 31 == 0).all() and (exp >= 1).all() and (exp <= 254).all()):
            return TablePlan("gen", split_entries(mult.table), 0, 1, 0)
        emin, emax = int(exp.min()) - 127, int(exp.max()) - 127
        if m <= 7 and not (bits & 0xFFFF).any():
            half = (bits >> 16).astype(np.uint16)
            if half.size % 2:  # keep whole 32-bit words for the copy to shared memory
                half = np.append(half, np.uint16(0))
            return TablePlan("s16", half, half.size * 2, emin, emax)
        if m <= 6:
            return TablePlan("s32", bits.copy(), bits.size * 4, emin, emax)
        return TablePlan("g32", bits.copy(), 0, emin, emax)

    return mult.derived("cuda_plan", build)


GEOMETRY_DTYPE = np.dtype([(f.name, "<i8") for f in dataclasses.fields(ConvGeometry)])


def geometry_struct(geom: ConvGeometry) -> np.ndarray:
    """The geometry as the kernels' ``approxsim_geometry`` struct argument (a 1-element structured array).

    CuPy passes a structured NumPy value by value, laid out as its dtype; the fields are
    those of ``csrc/geometry.h``, in order, all 64-bit.
    """
    out = np.zeros(1, dtype=GEOMETRY_DTYPE)
    for name, value in geom.fields().items():
        out[name] = value
    return out
