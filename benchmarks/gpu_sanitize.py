"""A small run of every CUDA kernel kind, for compute-sanitizer (memcheck, racecheck).

Odd shapes (tile edges), split-K, shared-memory and global tables, a direct model; each result is
compared with the CPU backend, so a race that changes a result fails here too.
"""

from __future__ import annotations

import sys

import numpy as np


def main() -> int:
    from approxsim import multipliers
    from approxsim.backends import get_backend
    from approxsim.geometry import conv_geometry

    gpu, cpu = get_backend("cuda"), get_backend("cpu")
    rng = np.random.default_rng(0)
    worst = 0.0
    for name in ("mbm7", "mbm5", "mitchell9", "fp32", "mbm23"):
        mult = multipliers.get(name)
        a = rng.standard_normal((70, 1300)).astype(np.float32)
        b = rng.standard_normal((1300, 33)).astype(np.float32)
        pairs = [(gpu.matmul(a, b, mult), cpu.matmul(a, b, mult), cpu.matmul(np.abs(a), np.abs(b), mult))]
        g = conv_geometry((2, 9, 10, 6), (3, 3, 3, 10), strides=(2, 1), padding="SAME", groups=2)
        x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in (g.input_shape, g.filter_shape, g.output_shape))
        for op, p, q in (("conv2d", x, w), ("conv2d_input_grad", dy, w), ("conv2d_filter_grad", x, dy)):
            pairs.append((getattr(gpu, op)(p, q, g, mult), getattr(cpu, op)(p, q, g, mult),
                          getattr(cpu, op)(np.abs(p), np.abs(q), g, mult)))
        for got, want, scale in pairs:
            err = float(np.max(np.abs(np.asarray(got) - want) / (scale + 1e-30)))
            worst = max(worst, err)
            print(f"{name}: max relative error {err:.2e}")
    print(f"worst {worst:.2e}")
    return 0 if worst <= 1e-5 else 1


if __name__ == "__main__":
    sys.exit(main())
