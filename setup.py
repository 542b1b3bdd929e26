"""Build of approxsim's C++ extension (pybind11); metadata lives in pyproject.toml.

The extension is compiled for the baseline x86-64 (or the host's baseline elsewhere):
faster SIMD paths are chosen at run time inside the extension, never with
-march=native, so one build runs on every machine of the architecture.
"""

import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import find_packages, setup

ParallelCompile("APPROXSIM_BUILD_JOBS", default=0).install()

ext = Pybind11Extension(
    "approxsim._cpu",
    sorted(glob.glob("approxsim/csrc/*.cpp")),
    depends=sorted(glob.glob("approxsim/csrc/*.h")),  # rebuild when a header changes
    include_dirs=["approxsim/csrc"],
    cxx_std=17,
    extra_compile_args=["-O3", "-fno-math-errno"],
)

setup(
    packages=find_packages(include=["approxsim", "approxsim.*"]) + ["approxsim.builtin_models", "approxsim.kernels"],
    package_dir={"approxsim.builtin_models": "multipliers", "approxsim.kernels": "cuda"},
    package_data={
        "approxsim": ["csrc/*.h"],
        "approxsim.builtin_models": ["*.c", "*.h"],
        "approxsim.kernels": ["*.cu", "*.cuh"],
    },
    ext_modules=[ext],
    cmdclass={"build_ext": build_ext},
)
