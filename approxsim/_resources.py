"""Where the package data lives: C sources of the built-ins, CUDA kernels, the shared header."""

from __future__ import annotations

import importlib.util
from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def data_dir(package: str, checkout_folder: str) -> Path:
    """Folder of a data-only package (``approxsim.builtin_models`` -> ``multipliers/``).

    Installed, the folder is the package's; in a source checkout or an editable
    install that does not map it, it is the checkout's top-level folder.
    """
    spec = importlib.util.find_spec(package)
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return _ROOT.parent / checkout_folder


def header_dir() -> Path:
    """Folder of ``approx_product.h``, the arithmetic shared by the C++ and CUDA kernels."""
    return _ROOT / "csrc"
