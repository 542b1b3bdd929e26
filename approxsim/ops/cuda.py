"""GPU ``tf.Tensor`` in, GPU ``tf.Tensor`` out: the TensorFlow side of the CUDA backend.

:mod:`approxsim.ops._bridge` calls these functions inside ``tf.py_function`` when the
backend is ``"cuda"`` and the tensors live on a GPU. Tensors cross between TensorFlow and CuPy through
DLPack, without copies: the inputs are viewed in place, and the result is written by the
kernels straight into a tensor that TensorFlow allocated (so TF's memory pool, not CuPy's,
holds activations; CuPy only allocates the small tables).

Stream ordering. TensorFlow runs its GPU kernels on its own streams, CuPy on its current
stream, and DLPack (as TF exports it) carries no stream or event. Two host-side waits make
the hand-over correct, and nothing else is synchronised (the kernels of one call follow each
other on CuPy's stream without waits between launches):

1. before the first launch, ``synchronize_device`` (``cudaDeviceSynchronize``): the kernels
   that produced the inputs, and the fill of the output tensor, were only *enqueued* on TF's
   stream when ``py_function`` handed us the tensors (``to_dlpack`` waits for the tensor
   handle, not for the GPU). TF exposes no handle to its stream to wait on with an event, so
   the device-wide wait is the only one available;
2. after the last launch, ``synchronize_stream`` on CuPy's stream: TF will read the output
   (and may free or reuse the inputs) from its own stream as soon as the function returns,
   and that stream knows nothing of CuPy's.

Each function takes the bound CUDA kernels (``get_backend("cuda").bind(multiplier)``, or a
multiplier, which is bound here) after the tensors.
"""

from __future__ import annotations

import tensorflow as tf

from approxsim.backends import cuda as _cuda
from approxsim.backends import get_backend
from approxsim.geometry import matmul_shapes

__all__ = ["matmul", "conv2d", "conv2d_input_grad", "conv2d_filter_grad"]


class _Export:
    """A GPU tensor as a DLPack producer that accepts the consumer's stream argument.

    ``tf.Tensor.__dlpack__`` refuses any ``stream`` (TF cannot order its work after another
    stream), while CuPy's ``from_dlpack`` always passes one. The ordering is done by hand in
    :func:`_run`, so the stream argument is dropped here.
    """

    def __init__(self, tensor):
        self._tensor = tensor

    def __dlpack__(self, *, stream=None, **kwargs):
        del stream, kwargs  # ordered by the explicit synchronisation in _run
        return tf.experimental.dlpack.to_dlpack(self._tensor)

    def __dlpack_device__(self):
        return self._tensor.__dlpack_device__()


def _view(t):
    """A CuPy view of a GPU tensor (no copy)."""
    if not isinstance(t, tf.Tensor) or "GPU" not in (t.device or "").upper():
        raise ValueError("approxsim.ops_cuda takes eager tf.Tensors that live on a GPU; use the CPU backend for "
                         f"host tensors. Received: device={getattr(t, 'device', None)!r}")
    if t.dtype != tf.float32:
        raise TypeError(f"approxsim.ops_cuda computes in float32; cast first. Received: dtype={t.dtype.name}")
    return _cuda.from_dlpack(_Export(t))


def _kernels(kernels_or_mult):
    if hasattr(kernels_or_mult, "backend"):
        return kernels_or_mult
    return get_backend("cuda").bind(kernels_or_mult)


def _run(method, inputs, out_shape, kernels, *extra, **kwargs):
    kernels = _kernels(kernels)
    with tf.device(inputs[0].device):
        out = tf.fill(tf.constant(out_shape, tf.int64), tf.constant(0.0, tf.float32))
    views = [_view(t) for t in inputs]
    out_view = _view(out)
    with _cuda.device_of(views[0]):
        _cuda.synchronize_device()  # 1: TF's producers of the inputs (and the fill) have finished
        getattr(kernels, method)(*views, *extra, out=out_view, **kwargs)
        _cuda.synchronize_stream()  # 2: our kernels have finished before TF's stream reads `out`
    return out


def matmul(a, b, kernels, *, transpose_a=False, transpose_b=False):
    """``a @ b`` with every product ``T[a][b]``; shapes as :func:`approxsim.matmul`.

    Args:
      a: float32 GPU tensor ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
      b: float32 GPU tensor ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``).
      kernels: bound CUDA kernels (or a :class:`~approxsim.Multiplier`).
      transpose_a, transpose_b: transpose the last two dimensions.

    Returns:
      float32 GPU tensor ``(broadcast batch..., M, N)``.
    """
    batch, m, _, n = matmul_shapes(a.shape, b.shape, transpose_a, transpose_b)
    return _run("matmul", [a, b], tuple(batch) + (m, n), kernels, transpose_a=bool(transpose_a),
                transpose_b=bool(transpose_b))


def conv2d(x, w, geom, kernels):
    """Forward convolution (products ``T[x][w]``): NHWC ``x``, HWIO ``w`` -> NHWC, as GPU tensors."""
    return _run("conv2d", [x, w], geom.output_shape, kernels, geom)


def conv2d_input_grad(dy, w, geom, kernels):
    """Input gradient (products ``T[dy][w]``): ``dy`` NHWC, ``w`` HWIO -> ``dx`` NHWC."""
    return _run("conv2d_input_grad", [dy, w], geom.input_shape, kernels, geom)


def conv2d_filter_grad(x, dy, geom, kernels):
    """Filter gradient (products ``T[x][dy]``): ``x``, ``dy`` NHWC -> ``dw`` HWIO."""
    return _run("conv2d_filter_grad", [x, dy], geom.filter_shape, kernels, geom)
