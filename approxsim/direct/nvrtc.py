"""NVRTC through ctypes: compile CUDA source to PTX without CuPy or a GPU (checks and tests).

The runtime path compiles through CuPy (:class:`approxsim.direct.cuda.CudaKernels`);
this module lets a machine without a GPU check that a direct model's generated
source compiles, with the same options, and get NVRTC's log.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import glob
import importlib.util
import os

from approxsim.errors import CompileError

__all__ = ["find_nvrtc", "compile_to_ptx", "nvrtc_version"]


@functools.lru_cache(maxsize=None)
def find_nvrtc():
    """The NVRTC library (``ctypes.CDLL``) or ``None``: pip wheels (nvidia-cuda-nvrtc), then the system."""
    candidates = []
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations if spec and spec.submodule_search_locations else []):
        for sub in ("cu13/lib", "cuda_nvrtc/lib", "cu12/lib"):
            candidates += sorted(glob.glob(os.path.join(root, sub, "libnvrtc.so*")))
    for root in (os.environ.get("CUDA_PATH", ""), "/usr/local/cuda"):
        if root:
            candidates += sorted(glob.glob(os.path.join(root, "lib64", "libnvrtc.so*")))
    found = ctypes.util.find_library("nvrtc")
    if found:
        candidates.append(found)
    for path in candidates:
        if "alt" in os.path.basename(path) or "builtins" in os.path.basename(path):
            continue
        try:
            # NVRTC dlopens libnvrtc-builtins by name: load the one beside it first
            for builtins in sorted(glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so*"))):
                if ".alt." not in os.path.basename(builtins):
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def nvrtc_version():
    """``(major, minor)`` of the NVRTC found, or ``None``."""
    lib = find_nvrtc()
    if lib is None:
        return None
    major, minor = ctypes.c_int(), ctypes.c_int()
    lib.nvrtcVersion(ctypes.byref(major), ctypes.byref(minor))
    return major.value, minor.value


def compile_to_ptx(source: str, *, arch: str = "compute_80", options=(), name: str = "approxsim_direct.cu") -> str:
    """Compiles CUDA source with NVRTC and returns the PTX.

    Args:
      source: the CUDA source.
      arch: the virtual architecture (``compute_80``, ``compute_90``, ...).
      options: further NVRTC options.
      name: the program name shown in the log.

    Raises:
      RuntimeError: no NVRTC library is installed (pip install nvidia-cuda-nvrtc).
      CompileError: NVRTC rejected the source; ``args[1]`` holds the raw log.
    """
    lib = find_nvrtc()
    if lib is None:
        raise RuntimeError("NVRTC is not installed: pip install nvidia-cuda-nvrtc (CUDA 13) or "
                           "nvidia-cuda-nvrtc-cu12 (CUDA 12).")
    prog = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), name.encode(), 0, None, None)
    if status != 0:
        raise RuntimeError(f"nvrtcCreateProgram failed with status {status}.")
    try:
        opts = [f"--gpu-architecture={arch}".encode(), *(o.encode() for o in options)]
        array = (ctypes.c_char_p * len(opts))(*opts)
        status = lib.nvrtcCompileProgram(prog, len(opts), array)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        log_text = log.value.decode(errors="replace")
        if status != 0:
            raise CompileError(f"NVRTC failed (status {status}):\n{log_text}", log_text)
        lib.nvrtcGetPTXSize(prog, ctypes.byref(size))
        ptx = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetPTX(prog, ptx)
        return ptx.value.decode()
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
