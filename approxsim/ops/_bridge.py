"""From the TF graph to bound backend kernels and back.

``call(kernels, method, tensors, static_shape, make_args)`` runs
``kernels.<method>(*args, **kwargs)`` with ``args, kwargs = make_args(values)`` on the runtime
values of ``tensors``: through ``tf.numpy_function`` for host backends (NumPy arrays in and
out), through ``tf.py_function`` for the CUDA backend, where GPU tensors go to
:mod:`approxsim.ops.cuda` (DLPack, no copy) and host tensors to the backend as NumPy.
Neither has an XLA kernel: functions that call these ops must not be ``jit_compile``d.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

__all__ = ["call"]


def _on_gpu(t) -> bool:
    return "GPU" in (getattr(t, "device", "") or "").upper()


def call(kernels, method, tensors, static_shape, make_args, dtype=tf.float32):
    """The result of ``kernels.<method>`` on ``tensors`` as ``dtype`` (float32; int64 for the exact
    sums of integer multipliers), with ``static_shape`` set."""
    out_np = dtype.as_numpy_dtype
    if kernels.backend.name == "cuda":
        def gpu_fn(*values):
            if _on_gpu(values[0]) and dtype == tf.float32:  # integer codes go through the host path
                from approxsim.ops import cuda as ops_cuda  # only on this path

                args, kwargs = make_args(list(values))
                return getattr(ops_cuda, method)(*args, kernels, **kwargs)
            args, kwargs = make_args([v.numpy() for v in values])
            return tf.convert_to_tensor(np.asarray(getattr(kernels, method)(*args, **kwargs), out_np))

        out = tf.py_function(gpu_fn, tensors, dtype)
    else:
        def cpu_fn(*values):
            args, kwargs = make_args(list(values))
            return np.asarray(getattr(kernels, method)(*args, **kwargs), out_np)

        out = tf.numpy_function(cpu_fn, tensors, dtype, stateful=False)
    out.set_shape(tf.TensorShape(static_shape))
    return out
