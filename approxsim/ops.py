"""TensorFlow ops whose products go through an approximate multiplier, with gradients.

Every op computes in float32 (other float inputs are cast to float32 and the
result is cast back to the first input's dtype) and has a ``tf.custom_gradient``:

* ``backward="approx"`` (the default, as ApproxTrain): both gradient products go
  through the multiplier, in the operand order of DESIGN.md section 1: for
  ``y = a (*) b`` the gradient of ``a`` is ``dy (*) b^T`` (``T[dy][b]``) and the
  gradient of ``b`` is ``a^T (*) dy`` (``T[a][dy]``); for convolutions the input
  gradient looks up ``T[dy][w]`` and the filter gradient ``T[x][dy]``.
* ``backward="exact"``: straight-through, the same gradients with the exact
  ``fp32`` product.

The exact ``fp32`` product needs no table: it runs in TensorFlow's own kernels
(forward, and the gradients of ``backward="exact"``) wherever TF has them
(grouped convolutions other than depthwise go through the backend), unless TF
would use TF32 on a GPU (then the backend computes it, exactly).

On the CPU the arithmetic runs in the chosen backend through
``tf.numpy_function``; when the backend is ``"cuda"`` and the tensors live on a
GPU, through ``tf.py_function`` and :mod:`approxsim.ops_cuda` (DLPack, no copy).
Neither has an XLA kernel: do not ``jit_compile`` functions that call these ops.
"""

from __future__ import annotations

import string

import tensorflow as tf

from approxsim import multipliers
from approxsim.backends import get_backend
from approxsim.geometry import conv_geometry, pair

__all__ = ["am_matmul", "am_conv2d", "am_depthwise_conv2d", "am_conv1d", "am_einsum", "resolve_options"]

_BACKWARD = ("approx", "exact")


def resolve_options(multiplier, backward="approx", backend=None):
    """Validates the options every op and layer takes.

    Returns:
      ``(Multiplier, backward, backend object)``.

    Raises:
      UnknownMultiplierError: the multiplier is not registered (the message lists those that are).
      ValueError: ``backward`` is not ``"approx"`` or ``"exact"``, or the backend name is unknown.
    """
    mult = multipliers.get(multiplier)
    if backward not in _BACKWARD:
        raise ValueError(f'`backward` must be "approx" (gradients through the multiplier) or "exact" '
                         f"(exact fp32 gradients). Received: backward={backward!r}")
    return mult, backward, get_backend(backend)


# --- dispatch ------------------------------------------------------------------------------------

def _tf_is_exact() -> bool:
    """Whether TF's own float32 kernels compute exact products here (no TF32 on a GPU)."""
    return (not tf.config.experimental.tensor_float_32_execution_enabled()
            or not tf.config.list_physical_devices("GPU"))


def _on_gpu(t) -> bool:
    return "GPU" in (getattr(t, "device", "") or "").upper()


def _run(be, method, tensors, mult, static_shape, make_args):
    """Calls ``be.<method>(*make_args(arrays), mult)`` (or ``ops_cuda.<method>``) from the graph.

    ``make_args`` turns the runtime values (arrays or eager tensors, in the order of
    ``tensors``) into the positional arguments of the backend method, less ``mult``.
    """
    if getattr(be, "name", "") == "cuda":
        def gpu_fn(*values):
            if _on_gpu(values[0]):
                from approxsim import ops_cuda  # only on this path

                args, kwargs = make_args(list(values))
                return getattr(ops_cuda, method)(*args, mult, **kwargs)
            args, kwargs = make_args([v.numpy() for v in values])
            return tf.convert_to_tensor(getattr(be, method)(*args, mult, **kwargs))

        out = tf.py_function(gpu_fn, tensors, tf.float32)
    else:
        def cpu_fn(*values):
            args, kwargs = make_args(list(values))
            return getattr(be, method)(*args, mult, **kwargs)

        out = tf.numpy_function(cpu_fn, tensors, tf.float32, stateful=False)
    out.set_shape(static_shape)
    return out


def _as_float32(*tensors):
    """Converts to tensors; returns the float32 tensors and the dtype to cast results back to."""
    tensors = [tf.convert_to_tensor(t) for t in tensors]
    dtype = tensors[0].dtype
    for t in tensors:
        if not (t.dtype.is_floating or t.dtype.is_integer):
            raise TypeError(f"approxsim ops take real numbers (computed in float32). Received: dtype={t.dtype.name}")
    if not dtype.is_floating:
        dtype = tf.float32
    return [tf.cast(t, tf.float32) for t in tensors], dtype


def _sum_to_shape(grad, shape):
    """Sums ``grad`` over the dimensions that were broadcast to reach it from ``shape``."""
    g_shape = tf.shape(grad)
    _, axes = tf.raw_ops.BroadcastGradientArgs(s0=g_shape, s1=shape)
    return tf.reshape(tf.reduce_sum(grad, axis=axes), shape)


def _swap(t):
    rank = t.shape.rank
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return tf.transpose(t, perm)


# --- matmul --------------------------------------------------------------------------------------

def _matmul_static_shape(a_shape, b_shape, ta, tb):
    if a_shape.rank is None or b_shape.rank is None:
        return tf.TensorShape(None)
    if a_shape.rank < 2 or b_shape.rank < 2:
        raise ValueError(f"am_matmul operands must be at least 2-D. Received: a shape={a_shape}, b shape={b_shape}")
    m, ka = (a_shape[-1], a_shape[-2]) if ta else (a_shape[-2], a_shape[-1])
    kb, n = (b_shape[-1], b_shape[-2]) if tb else (b_shape[-2], b_shape[-1])
    if ka is not None and kb is not None and ka != kb:
        raise ValueError(f"am_matmul inner dimensions differ: {ka} and {kb} (transpose_a={ta}, transpose_b={tb}). "
                         f"Received: a shape={a_shape}, b shape={b_shape}")
    try:
        batch = tf.broadcast_static_shape(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"am_matmul batch dimensions do not broadcast. Received: a shape={a_shape}, "
                         f"b shape={b_shape}") from None
    return batch.concatenate([m, n])


def _matmul_raw(a, b, mult, be, ta, tb):
    shape = _matmul_static_shape(a.shape, b.shape, ta, tb)
    if mult.is_exact and _tf_is_exact():  # the exact product: TF's own kernel
        return tf.linalg.matmul(a, b, transpose_a=ta, transpose_b=tb)

    def make_args(v):
        return (v[0], v[1]), {"transpose_a": ta, "transpose_b": tb}

    return _run(be, "matmul", [a, b], mult, shape, make_args)


@tf.autograph.experimental.do_not_convert
def am_matmul(a, b, *, multiplier, transpose_a=False, transpose_b=False, backward="approx", backend=None,
              name=None):
    """Approximate ``a @ b`` (batched, broadcasting), every product ``a (*) b`` looked up as ``T[a][b]``.

    Args:
      a: tensor ``(..., M, K)`` (``(..., K, M)`` with ``transpose_a``).
      b: tensor ``(..., K, N)`` (``(..., N, K)`` with ``transpose_b``); batch dimensions broadcast.
      multiplier: name or :class:`~approxsim.Multiplier`.
      transpose_a, transpose_b: use the transpose of the last two dimensions.
      backward: ``"approx"`` (gradients through the multiplier: ``da`` from ``T[dy][b]``,
        ``db`` from ``T[a][dy]``) or ``"exact"`` (exact fp32 gradients).
      backend: ``"reference"``, ``"cpu"``, ``"cuda"``, ``"auto"`` or ``None``.
      name: optional name scope.

    Returns:
      ``(broadcast batch..., M, N)`` in ``a``'s dtype.
    """
    mult, backward, be = resolve_options(multiplier, backward, backend)
    ta, tb = bool(transpose_a), bool(transpose_b)
    grad_mult = mult if backward == "approx" else multipliers.get("fp32")
    with tf.name_scope(name or "am_matmul"):
        (a, b), dtype = _as_float32(a, b)
        if mult.is_exact and _tf_is_exact():  # exact forward and gradients: TF's own op and gradient
            return tf.cast(_matmul_raw(a, b, mult, be, ta, tb), dtype)

        @tf.custom_gradient
        def op(a, b):
            y = _matmul_raw(a, b, mult, be, ta, tb)

            def grad(dy):
                # d op(a) = dy (*) op(b)^T: products T[dy][b]; transposed afterwards if needed.
                da = _matmul_raw(dy, b, grad_mult, be, False, not tb)
                if ta:
                    da = _swap(da)
                # d op(b) = op(a)^T (*) dy: products T[a][dy].
                db = _matmul_raw(a, dy, grad_mult, be, not ta, False)
                if tb:
                    db = _swap(db)
                return _sum_to_shape(da, tf.shape(a)), _sum_to_shape(db, tf.shape(b))

            return y, grad

        return tf.cast(op(a, b), dtype)


# --- einsum (two operands, as used by EinsumDense and attention) --------------------------------

def _dims(t, letters, spec):
    """Sizes of ``letters`` in ``t`` (python ints where static, else scalar tensors)."""
    dyn = tf.shape(t)
    out = []
    for c in letters:
        i = spec.index(c)
        out.append(t.shape[i] if t.shape[i] is not None else dyn[i])
    return out


def _prod(values):
    out = 1
    for v in values:
        out = out * v
    return out


def _expand_ellipsis(sa, sb, out, rank_a, rank_b, equation):
    """Replaces ``...`` by unused letters (the same ones in both operands: no broadcasting)."""
    spare = [c for c in string.ascii_letters if c not in sa + sb + out]
    n = None
    for spec, rank in ((sa, rank_a), (sb, rank_b)):
        if "..." in spec:
            k = rank - (len(spec) - 3)
            if n is not None and k != n:
                raise ValueError(f"am_einsum needs '...' to stand for as many dimensions in both operands. "
                                 f"Received: equation={equation!r}")
            n = k
    if n is None or n < 0:
        raise ValueError(f"am_einsum: '...' in the output only, or too few dimensions. Received: equation={equation!r}")
    fill = "".join(spare[:n])
    return sa.replace("...", fill), sb.replace("...", fill), out.replace("...", fill)


@tf.autograph.experimental.do_not_convert
def am_einsum(equation, a, b, *, multiplier, backward="approx", backend=None, name=None):
    """Approximate two-operand ``tf.einsum``; every product looked up as ``T[a][b]``.

    The contraction is rewritten as one batched :func:`am_matmul`: letters in both
    operands and the output are batch dimensions, letters in both operands only are
    summed over, the others are free.

    Args:
      equation: e.g. ``"abc,cde->abde"``; no ellipsis, no repeated letter within an operand.
      a, b: the operands.
      multiplier, backward, backend: as in :func:`am_matmul`.

    Returns:
      The result, in ``a``'s dtype.
    """
    eq = equation.replace(" ", "")
    if "->" not in eq or eq.count(",") != 1:
        raise ValueError("am_einsum takes an explicit two-operand equation, like 'abc,cd->abd'. "
                         f"Received: equation={equation!r}")
    a = tf.convert_to_tensor(a)
    b = tf.convert_to_tensor(b)
    lhs, out = eq.split("->")
    sa, sb = lhs.split(",")
    if "..." in eq:
        sa, sb, out = _expand_ellipsis(sa, sb, out, a.shape.rank, b.shape.rank, equation)
    for spec in (sa, sb, out):
        if len(set(spec)) != len(spec) or not all(c in string.ascii_letters for c in spec):
            raise ValueError(f"am_einsum needs distinct letters within each operand and the output. "
                             f"Received: equation={equation!r}")
    if set(out) - set(sa) - set(sb):
        raise ValueError(f"am_einsum output letters must come from the operands. Received: equation={equation!r}")
    if a.shape.rank != len(sa) or b.shape.rank != len(sb):
        raise ValueError(f"am_einsum operand ranks do not match {equation!r}. "
                         f"Received: a shape={a.shape}, b shape={b.shape}")
    with tf.name_scope(name or "am_einsum"):
        # Letters in one operand only and not in the output are plain sums (no products).
        only_a = [c for c in sa if c not in sb and c not in out]
        if only_a:
            a = tf.reduce_sum(a, axis=[sa.index(c) for c in only_a])
            sa = "".join(c for c in sa if c not in only_a)
        only_b = [c for c in sb if c not in sa and c not in out]
        if only_b:
            b = tf.reduce_sum(b, axis=[sb.index(c) for c in only_b])
            sb = "".join(c for c in sb if c not in only_b)
        batch = [c for c in out if c in sa and c in sb]
        contract = [c for c in sa if c in sb and c not in out]
        free_a = [c for c in sa if c not in sb]
        free_b = [c for c in sb if c not in sa]
        a2 = tf.transpose(a, [sa.index(c) for c in batch + free_a + contract])
        b2 = tf.transpose(b, [sb.index(c) for c in batch + contract + free_b])
        bdims = _dims(a, batch, sa)
        fa, fb, kd = _dims(a, free_a, sa), _dims(b, free_b, sb), _dims(a, contract, sa)
        a2 = tf.reshape(a2, bdims + [_prod(fa), _prod(kd)])
        b2 = tf.reshape(b2, bdims + [_prod(kd), _prod(fb)])
        y = am_matmul(a2, b2, multiplier=multiplier, backward=backward, backend=backend)
        y = tf.reshape(y, bdims + fa + fb)
        order = batch + free_a + free_b
        return tf.transpose(y, [order.index(c) for c in out])


# --- convolutions --------------------------------------------------------------------------------

def _conv_static_shape(x_shape, w_shape, strides, padding, dilations):
    """The output shape TF would infer, with ``None`` where the input's size is unknown."""
    if x_shape.rank != 4 or w_shape.rank != 4:
        raise ValueError(f"am_conv2d takes a 4-D NHWC input and a 4-D HWIO filter. "
                         f"Received: input shape={x_shape}, filter shape={w_shape}")
    n, h, w, _ = x_shape.as_list()
    kh, kw, _, cout = w_shape.as_list()
    sh, sw = strides
    dh, dw = dilations
    dims = []
    for size, k, s, d, axis in ((h, kh, sh, dh, 0), (w, kw, sw, dw, 1)):
        if size is None or k is None:
            dims.append(None)
            continue
        ek = (k - 1) * d + 1
        if isinstance(padding, str):
            dims.append(-(-size // s) if padding == "SAME" else (size - ek) // s + 1)
        else:
            lo, hi = padding[axis]
            dims.append((size + lo + hi - ek) // s + 1)
    return tf.TensorShape([n] + dims + [cout])


def _norm_padding(padding):
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("SAME", "VALID"):
            raise ValueError(f'`padding` must be "SAME", "VALID" or explicit pairs. Received: padding={padding!r}')
        return mode
    pads = [tuple(int(v) for v in p) for p in padding]
    if len(pads) == 4:
        pads = pads[1:3]
    if len(pads) != 2 or any(len(p) != 2 for p in pads):
        raise ValueError(f"Explicit `padding` must be ((top, bottom), (left, right)) or TF's 4-pair form. "
                         f"Received: padding={padding!r}")
    return tuple(pads)


def _native_conv(strides, padding, dilations, groups, w_shape):
    """TF's own exact convolution for these options, where its CPU kernels and gradients exist; else None."""
    (sh, sw), (dh, dw) = strides, dilations
    if sh > 1 and dh > 1 or sw > 1 and dw > 1:
        return None
    if groups == 1:
        if isinstance(padding, str):
            return lambda x, w: tf.nn.conv2d(x, w, [1, sh, sw, 1], padding, dilations=[1, dh, dw, 1])
        pads = [[0, 0], list(padding[0]), list(padding[1]), [0, 0]]  # TF's CPU gradient lacks explicit+dilated
        return lambda x, w: tf.nn.conv2d(tf.pad(x, pads), w, [1, sh, sw, 1], "VALID", dilations=[1, dh, dw, 1])
    kh, kw, cig, cout = w_shape.as_list()
    if cig == 1 and isinstance(padding, str) and sh == sw and None not in (kh, kw, cout):
        def depthwise(x, w):  # TF has no CPU gradient for grouped conv2d
            wd = tf.reshape(w, [kh, kw, groups, cout // groups])
            return tf.nn.depthwise_conv2d(x, wd, [1, sh, sw, 1], padding, dilations=[dh, dw])
        return depthwise
    return None


def _conv_core(x, w, mult, grad_mult, be, strides, padding, dilations, groups):
    """Float32 grouped conv2d with a custom gradient; ``x`` NHWC, ``w`` HWIO (I = C / groups)."""
    geo = dict(strides=strides, padding=padding, dilations=dilations, groups=groups)
    out_shape = _conv_static_shape(x.shape, w.shape, strides, padding, dilations)
    if x.shape[-1] is not None and w.shape[2] is not None and x.shape[-1] != w.shape[2] * groups:
        raise ValueError(f"The input has {x.shape[-1]} channels but the filter expects {w.shape[2]} x {groups} "
                         f"groups. Received: input shape={x.shape}, filter shape={w.shape}, groups={groups}")

    def fwd_args(v):
        return (v[0], v[1], conv_geometry(v[0].shape, v[1].shape, **geo)), {}

    def dx_args(v):  # dy, w, input shape
        return (v[0], v[1], conv_geometry(tuple(v[2]), v[1].shape, **geo)), {}

    def dw_args(v):  # x, dy, filter shape
        return (v[0], v[1], conv_geometry(v[0].shape, tuple(v[2]), **geo)), {}

    native = _native_conv(strides, padding, dilations, groups, w.shape) if _tf_is_exact() else None
    if mult.is_exact and native is not None:  # exact forward and gradients: TF's own op and gradient
        return native(x, w)

    @tf.custom_gradient
    def op(x, w):
        y = _run(be, "conv2d", [x, w], mult, out_shape, fwd_args)

        def grad(dy):
            if grad_mult.is_exact and native is not None:
                with tf.GradientTape() as tape:
                    tape.watch([x, w])
                    y_native = native(x, w)
                return tape.gradient(y_native, [x, w], output_gradients=dy)
            dx = _run(be, "conv2d_input_grad", [dy, w, tf.shape(x)], grad_mult, x.shape, dx_args)
            dw = _run(be, "conv2d_filter_grad", [x, dy, tf.shape(w)], grad_mult, w.shape, dw_args)
            return dx, dw

        return y, grad

    return op(x, w)


def _check_format(data_format, expected, op):
    if data_format not in (None, expected):
        raise ValueError(f"{op} supports data_format={expected!r} only (transpose the input first). "
                         f"Received: data_format={data_format!r}")


@tf.autograph.experimental.do_not_convert
def am_conv2d(x, filters, *, multiplier, strides=1, padding="VALID", dilations=1, groups=1, data_format=None,
              backward="approx", backend=None, name=None):
    """Approximate ``tf.nn.conv2d`` (grouped when ``groups > 1``); products ``T[x][w]``.

    Args:
      x: input ``(N, H, W, C)``.
      filters: ``(KH, KW, C / groups, COUT)``.
      multiplier: name or :class:`~approxsim.Multiplier`.
      strides, dilations: int, ``(h, w)`` or TF's ``[1, h, w, 1]``.
      padding: ``"SAME"``, ``"VALID"``, ``((top, bottom), (left, right))`` or TF's 4-pair form.
      groups: channel groups.
      data_format: ``"NHWC"`` (or ``None``); others raise.
      backward: ``"approx"`` (input gradient ``T[dy][w]``, filter gradient ``T[x][dy]``) or ``"exact"``.
      backend: see :func:`am_matmul`.
      name: optional name scope.

    Returns:
      ``(N, OH, OW, COUT)`` in ``x``'s dtype.
    """
    _check_format(data_format, "NHWC", "am_conv2d")
    mult, backward, be = resolve_options(multiplier, backward, backend)
    grad_mult = mult if backward == "approx" else multipliers.get("fp32")
    strides, dilations, padding = pair(strides, "strides"), pair(dilations, "dilations"), _norm_padding(padding)
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"`groups` must be a positive int. Received: groups={groups!r}")
    with tf.name_scope(name or "am_conv2d"):
        (x, w), dtype = _as_float32(x, filters)
        y = _conv_core(x, w, mult, grad_mult, be, strides, padding, dilations, groups)
        return tf.cast(y, dtype)


@tf.autograph.experimental.do_not_convert
def am_depthwise_conv2d(x, filters, *, multiplier, strides=1, padding="VALID", dilations=1, data_format=None,
                        backward="approx", backend=None, name=None):
    """Approximate ``tf.nn.depthwise_conv2d``; products ``T[x][w]``.

    Args:
      x: input ``(N, H, W, C)``.
      filters: ``(KH, KW, C, DM)``; output channel ``c * DM + m`` uses ``filters[..., c, m]``.
      strides: int, ``(h, w)`` or ``[1, h, w, 1]`` (equal strides, as TF requires, are not enforced).
      multiplier, padding, dilations, data_format, backward, backend, name: as in :func:`am_conv2d`.

    Returns:
      ``(N, OH, OW, C * DM)`` in ``x``'s dtype.
    """
    _check_format(data_format, "NHWC", "am_depthwise_conv2d")
    filters = tf.convert_to_tensor(filters)
    if filters.shape.rank != 4 or None in filters.shape.as_list():
        raise ValueError(f"am_depthwise_conv2d needs a 4-D filter (KH, KW, C, DM) of known shape. "
                         f"Received: filter shape={filters.shape}")
    kh, kw, c, dm = filters.shape.as_list()
    w = tf.reshape(filters, [kh, kw, 1, c * dm])
    return am_conv2d(x, w, multiplier=multiplier, strides=strides, padding=padding, dilations=dilations,
                     groups=c, backward=backward, backend=backend, name=name or "am_depthwise_conv2d")


@tf.autograph.experimental.do_not_convert
def am_conv1d(x, filters, *, multiplier, stride=1, padding="VALID", dilations=1, groups=1, data_format=None,
              backward="approx", backend=None, name=None):
    """Approximate ``tf.nn.conv1d``; products ``T[x][w]``.

    Args:
      x: input ``(N, L, C)``.
      filters: ``(K, C / groups, COUT)``.
      stride, dilations: int.
      padding: ``"SAME"``, ``"VALID"``, ``"CAUSAL"`` (left padding by ``(K - 1) * dilations``) or
        ``(left, right)``.
      multiplier, groups, data_format (``"NWC"`` or ``None``), backward, backend, name: as in :func:`am_conv2d`.

    Returns:
      ``(N, OL, COUT)`` in ``x``'s dtype.
    """
    _check_format(data_format, "NWC", "am_conv1d")
    x = tf.convert_to_tensor(x)
    filters = tf.convert_to_tensor(filters)
    if x.shape.rank != 3 or filters.shape.rank != 3:
        raise ValueError(f"am_conv1d takes a 3-D (N, L, C) input and a 3-D (K, C / groups, COUT) filter. "
                         f"Received: input shape={x.shape}, filter shape={filters.shape}")
    stride = stride if isinstance(stride, int) else int(tuple(stride)[-2 if len(tuple(stride)) == 3 else 0])
    dil = dilations if isinstance(dilations, int) else int(tuple(dilations)[0])
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "CAUSAL":
            pad2 = ((0, 0), ((filters.shape[0] - 1) * dil, 0))
        elif mode in ("SAME", "VALID"):
            pad2 = mode
        else:
            raise ValueError('`padding` must be "SAME", "VALID", "CAUSAL" or (left, right). '
                             f"Received: padding={padding!r}")
    else:
        left, right = (int(v) for v in padding)
        pad2 = ((0, 0), (left, right))
    y = am_conv2d(tf.expand_dims(x, 1), tf.expand_dims(filters, 0), multiplier=multiplier, strides=(1, stride),
                  padding=pad2, dilations=(1, dil), groups=groups, backward=backward, backend=backend,
                  name=name or "am_conv1d")
    return tf.squeeze(y, 1)
