"""Speed of approxsim's CUDA backend against cuBLAS / cuDNN fp32 (TF32 off), in one run.

Run on a machine with an NVIDIA GPU, CuPy and NVRTC (``pip install 'approxsim[cuda12]'``), plus
cuBLAS for the ``cupy.matmul`` baseline (``pip install nvidia-cublas-cu12``, or CuPy's ``[ctk]``
extra); PyTorch is used for the cuDNN convolutions when it is installed (TensorFlow is not needed):

    python benchmarks/bench_cuda.py            # everything, a few minutes (first run compiles kernels)
    python benchmarks/bench_cuda.py --quick    # smaller shapes, to check that it runs

It prints one Markdown table per part, ready to paste into BENCHMARKS.md with the date and the
GPU (printed first):

1. approximate GEMM, M = 7 (``mbm7``), 4096^3 against ``cupy.matmul`` fp32 (target: <= 3x);
2. conv2d forward + input gradient + filter gradient on ResNet-50 layers, batch 64, against
   cuDNN fp32 through PyTorch (target: <= 4x). Without PyTorch the native side is a cuBLAS GEMM
   with the same number of multiply-adds (said so in the table);
3. throughput (multiply-adds per second) for M = 3, 7, 11 and the exact path;
4. the kernel sequence of one LeNet-5 training step (batch 128) against its native equivalent.

Times are medians of CUDA-event-timed repetitions after a warm-up; every ratio compares
numbers taken in the same run on the same GPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("CUPY_TF32", "0")  # cuBLAS without TF32 (CuPy's default, made explicit)
os.environ["NVIDIA_TF32_OVERRIDE"] = "0"  # and no TF32 anywhere in this process


RESNET50 = [  # name, H(=W), C in, C out, kernel, stride (the distinct conv shapes, ImageNet 224)
    ("conv1", 224, 3, 64, 7, 2),
    ("res2 1x1 reduce", 56, 256, 64, 1, 1),
    ("res2 3x3", 56, 64, 64, 3, 1),
    ("res2 1x1 expand", 56, 64, 256, 1, 1),
    ("res3 3x3", 28, 128, 128, 3, 1),
    ("res3 1x1 expand", 28, 128, 512, 1, 1),
    ("res4 3x3", 14, 256, 256, 3, 1),
    ("res4 1x1 expand", 14, 256, 1024, 1, 1),
    ("res5 3x3", 7, 512, 512, 3, 1),
    ("res5 1x1 expand", 7, 512, 2048, 1, 1),
]


def timeit(fn, reps):
    """Median milliseconds of ``fn()`` over ``reps`` runs, timed with CUDA events on the current stream."""
    import cupy

    fn()
    fn()
    cupy.cuda.get_current_stream().synchronize()
    times = []
    for _ in range(reps):
        start, end = cupy.cuda.Event(), cupy.cuda.Event()
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(cupy.cuda.get_elapsed_time(start, end))
    return statistics.median(times)


def _torch():
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def _torch_stream_sync(torch):
    """Makes PyTorch's and CuPy's timing meaningful together: torch runs on its current stream."""
    import cupy

    return cupy.cuda.ExternalStream(torch.cuda.current_stream().cuda_stream)


def bench_gemm(be, mults, size, reps):
    import cupy

    rng = cupy.random.default_rng(0)
    a = rng.standard_normal((size, size), dtype=cupy.float32)
    b = rng.standard_normal((size, size), dtype=cupy.float32)
    native = timeit(lambda: cupy.matmul(a, b), reps)
    rows = []
    for label, mult in mults:
        t = timeit(lambda: be.matmul(a, b, mult), reps)
        rows.append((label, t, native, t / native, size**3 / t / 1e6))  # t in ms
    print(f"\n### GEMM {size}^3 (native: cupy.matmul fp32, TF32 off, {native:.2f} ms)\n")
    print("| multiplier | approxsim ms | cuBLAS ms | ratio | G multiply-adds/s |")
    print("|---|---|---|---|---|")
    for label, t, nat, ratio, gmacs in rows:
        print(f"| {label} | {t:.2f} | {nat:.2f} | {ratio:.2f}x | {gmacs:.0f} |")
    return rows


def _conv_native(torch, x, w, stride, pad, reps):
    """cuDNN fp32 forward + both gradients through PyTorch (NHWC tensors as channels_last)."""
    import cupy

    xt = torch.from_dlpack(x).permute(0, 3, 1, 2)  # NHWC storage = channels_last NCHW view
    wt = torch.from_dlpack(cupy.ascontiguousarray(w.transpose(3, 2, 0, 1))).contiguous(
        memory_format=torch.channels_last)
    y = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)
    dy = torch.randn_like(y)

    def step():
        torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad)
        torch.nn.grad.conv2d_input(xt.shape, wt, dy, stride=stride, padding=pad)
        torch.nn.grad.conv2d_weight(xt, wt.shape, dy, stride=stride, padding=pad)

    with _torch_stream_sync(torch):
        return timeit(step, reps)


def bench_conv(be, mult, batch, reps, layers):
    import cupy

    from approxsim.geometry import conv_geometry

    torch = _torch()
    rng = cupy.random.default_rng(1)
    print(f"\n### conv2d forward + input grad + filter grad, batch {batch}, multiplier {mult.name}\n")
    native_name = "cuDNN fp32 (PyTorch)" if torch else "cuBLAS GEMM of equal multiply-adds (no PyTorch)"
    print(f"| layer | approxsim ms | {native_name} ms | ratio |")
    print("|---|---|---|---|")
    total_a = total_n = 0.0
    for name, hw, cin, cout, k, s in layers:
        pad = k // 2
        g = conv_geometry((batch, hw, hw, cin), (k, k, cin, cout), strides=s, padding=((pad, pad), (pad, pad)))
        x = rng.standard_normal(g.input_shape, dtype=cupy.float32)
        w = rng.standard_normal(g.filter_shape, dtype=cupy.float32)
        dy = rng.standard_normal(g.output_shape, dtype=cupy.float32)

        def ours():
            be.conv2d(x, w, g, mult)
            be.conv2d_input_grad(dy, w, g, mult)
            be.conv2d_filter_grad(x, dy, g, mult)

        t = timeit(ours, reps)
        if torch is not None:
            nat = _conv_native(torch, x, w, s, pad, reps)
        else:
            rows, kk = g.n * g.oh * g.ow, k * k * cin
            a = rng.standard_normal((rows, kk), dtype=cupy.float32)
            b = rng.standard_normal((kk, cout), dtype=cupy.float32)
            nat = 3 * timeit(lambda: cupy.matmul(a, b), reps)
        total_a, total_n = total_a + t, total_n + nat
        print(f"| {name} ({hw}x{hw}x{cin} -> {cout}, {k}x{k}/{s}) | {t:.2f} | {nat:.2f} | {t / nat:.2f}x |")
    print(f"| **all layers** | {total_a:.2f} | {total_n:.2f} | **{total_a / total_n:.2f}x** |")
    return total_a / total_n


def bench_lenet(be, mult, batch, reps):
    """One LeNet-5 training step's contractions: 2 convs (fwd, filter grad, conv2 input grad), 3 dense layers."""
    import cupy

    from approxsim.geometry import conv_geometry

    torch = _torch()
    rng = cupy.random.default_rng(2)
    g1 = conv_geometry((batch, 28, 28, 1), (5, 5, 1, 6), padding="SAME")
    g2 = conv_geometry((batch, 14, 14, 6), (5, 5, 6, 16), padding="VALID")
    t = {k: rng.standard_normal(s, dtype=cupy.float32) for k, s in [
        ("x1", g1.input_shape), ("w1", g1.filter_shape), ("dy1", g1.output_shape),
        ("x2", g2.input_shape), ("w2", g2.filter_shape), ("dy2", g2.output_shape)]}
    dense = [(400, 120), (120, 84), (84, 10)]
    d = [(rng.standard_normal((batch, i), dtype=cupy.float32), rng.standard_normal((i, o), dtype=cupy.float32),
          rng.standard_normal((batch, o), dtype=cupy.float32)) for i, o in dense]

    def ours():
        be.conv2d(t["x1"], t["w1"], g1, mult)
        be.conv2d(t["x2"], t["w2"], g2, mult)
        for x, w, dy in d:
            be.matmul(x, w, mult)
            be.matmul(dy, w, mult, transpose_b=True)
            be.matmul(x, dy, mult, transpose_a=True)
        be.conv2d_input_grad(t["dy2"], t["w2"], g2, mult)
        be.conv2d_filter_grad(t["x2"], t["dy2"], g2, mult)
        be.conv2d_filter_grad(t["x1"], t["dy1"], g1, mult)

    def native_dense():
        for x, w, dy in d:
            cupy.matmul(x, w)
            cupy.matmul(dy, w.T)
            cupy.matmul(x.T, dy)

    ta = timeit(ours, reps)
    if torch is not None:
        F = torch.nn.functional
        tt = {k: torch.from_dlpack(v).permute(0, 3, 1, 2) if k[0] in "xd" else
              torch.from_dlpack(cupy.ascontiguousarray(v.transpose(3, 2, 0, 1))) for k, v in t.items()}

        def native():
            F.conv2d(tt["x1"], tt["w1"], padding=2)
            F.conv2d(tt["x2"], tt["w2"])
            native_dense()
            torch.nn.grad.conv2d_input(tt["x2"].shape, tt["w2"], tt["dy2"])
            torch.nn.grad.conv2d_weight(tt["x2"], tt["w2"].shape, tt["dy2"])
            torch.nn.grad.conv2d_weight(tt["x1"], tt["w1"].shape, tt["dy1"], padding=2)

        with _torch_stream_sync(torch):
            tn = timeit(native, reps)
        label = "cuDNN + cuBLAS fp32"
    else:
        tn = timeit(native_dense, reps)
        label = "cuBLAS dense layers only (no PyTorch for the convs)"
    print(f"\n### LeNet-5 training step contractions, batch {batch}, {mult.name}\n")
    print(f"| approxsim ms | native ({label}) ms | ratio |\n|---|---|---|\n| {ta:.3f} | {tn:.3f} | {ta / tn:.2f}x |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small shapes, few repetitions")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per measurement")
    args = parser.parse_args(argv)

    from approxsim import multipliers
    from approxsim.backends import backend_status, get_backend

    ok, reason = backend_status("cuda")
    if not ok:
        print(f"The CUDA backend is not usable here: {reason}", file=sys.stderr)
        return 1
    import cupy

    be = get_backend("cuda")
    props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"# approxsim CUDA benchmark: {name}, CuPy {cupy.__version__}, CUDA runtime "
          f"{cupy.cuda.runtime.runtimeGetVersion()}, {reason}")
    reps = args.reps or (3 if args.quick else 10)
    size = 1024 if args.quick else 4096
    get = multipliers.get
    print("(compiling kernels on first use ...)", file=sys.stderr)
    bench_gemm(be, [("mbm7 (M=7, target <= 3x)", get("mbm7")), ("mbm3 (M=3)", get("mbm3")),
                    ("mbm11 (M=11)", get("mbm11")), ("mitchell9 (M=9)", get("mitchell9")),
                    ("fp32 (exact path)", get("fp32"))], size, reps)
    layers = RESNET50[2:4] if args.quick else RESNET50
    bench_conv(be, get("mbm7"), 8 if args.quick else 64, reps, layers)
    bench_lenet(be, get("mbm7"), 128, reps * 5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
