"""CUDA kernels (package data), compiled at first use by CuPy/NVRTC; see approxsim.backends.cuda."""
