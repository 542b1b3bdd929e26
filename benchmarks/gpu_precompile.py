"""Compiles every CUDA kernel module approxsim uses, in parallel, into CuPy's disk cache.

NVRTC compiles one module at a time per process; the first use of each (file, product policy)
pair would otherwise compile it in series inside the tests and benchmarks. Run first by
benchmarks/gpu_check.sh. Needs CuPy with NVRTC (a GPU is needed for CuPy's module load).
"""

from __future__ import annotations

import concurrent.futures
import sys
import time


def _compile(job):
    filename, variant = job
    import cupy

    from approxsim.backends import cuda_build

    start = time.perf_counter()
    cupy.RawModule(code=cuda_build.kernel_source(filename), options=cuda_build.compile_options(variant)).compile()
    return filename, variant, time.perf_counter() - start


def _compile_direct(name):
    import cupy

    from approxsim import multipliers
    from approxsim.direct.cuda_source import NVRTC_OPTIONS

    start = time.perf_counter()
    source = multipliers.get(name).direct.cuda_source()
    cupy.RawModule(code=source, options=NVRTC_OPTIONS, backend="nvrtc").compile()
    return name, "direct", time.perf_counter() - start


def main() -> int:
    from approxsim.backends import cuda_build

    jobs = [(f, v) for f in ("gemm.cu", "conv.cu") for v in cuda_build.VARIANTS] + [("multiply.cu", "gen")]
    start = time.perf_counter()
    with concurrent.futures.ProcessPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(_compile, j) for j in jobs] + [pool.submit(_compile_direct, n)
                                                              for n in ("mbm23", "mitchell23")]
        failed = 0
        for fut in concurrent.futures.as_completed(futures):
            try:
                f, v, t = fut.result()
                print(f"compiled {f} [{v}] in {t:.1f} s")
            except Exception as e:  # report and go on: the later steps show the same error in context
                failed += 1
                print(f"FAILED: {type(e).__name__}: {e}")
    print(f"{len(futures) - failed} of {len(futures)} modules compiled in {time.perf_counter() - start:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
