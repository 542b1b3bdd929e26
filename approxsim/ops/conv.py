"""``am_conv2d``, ``am_depthwise_conv2d``, ``am_conv1d``: approximate convolutions with gradients.

Forward products ``T[x][w]``; with ``backward="approx"`` the input gradient looks up ``T[dy][w]``
and the filter gradient ``T[x][dy]`` (DESIGN.md section 1). Which kernels run each of the three
is the op plan's decision (:mod:`approxsim.ops._plan`). With an integer multiplier the operands
are integer codes, padding is code 0, and the result is the exact int64 sums, with no gradient
(DESIGN.md section 1b).
"""

from __future__ import annotations

import tensorflow as tf

from approxsim.arguments import as_int
from approxsim.geometry import ConvOptions
from approxsim.ops._common import as_codes, as_float32, check_format
from approxsim.ops._plan import plan

__all__ = ["am_conv2d", "am_depthwise_conv2d", "am_conv1d"]


def _static_shape(x, w, options):
    """The output shape TF would infer, with ``None`` where the input's size is unknown."""
    if x.shape.rank != 4 or w.shape.rank != 4:
        raise ValueError(f"am_conv2d takes a 4-D NHWC input and a 4-D HWIO filter. "
                         f"Received: input shape={x.shape}, filter shape={w.shape}")
    n, h, wd, c = x.shape.as_list()
    kh, kw, cig, cout = w.shape.as_list()
    if c is not None and cig is not None and c != cig * options.groups:
        raise ValueError(f"The input has {c} channels but the filter expects {cig} x {options.groups} "
                         f"groups. Received: input shape={x.shape}, filter shape={w.shape}, groups={options.groups}")
    return tf.TensorShape([n, *options.output_hw(h, wd, kh, kw), cout])


def _conv_core(x, w, p, options):
    """Float32 grouped conv2d with a custom gradient; ``x`` NHWC, ``w`` HWIO (I = C / groups)."""
    static = _static_shape(x, w, options)
    fwd, grd = p.forward, p.gradient
    if grd is None:  # integer codes: exact sums, no gradient
        return fwd.conv2d(x, w, options, static)
    if fwd.native and grd.native and fwd.supports_forward(options, w) and grd.supports_gradients(options, w):
        return fwd.conv2d(x, w, options, static)  # TF's own op and gradient

    @tf.custom_gradient
    def op(x, w):
        y = fwd.conv2d(x, w, options, static)

        def grad(dy):
            return grd.conv2d_input_grad(dy, w, x, options), grd.conv2d_filter_grad(x, dy, w, options)

        return y, grad

    return op(x, w)


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

    Raises:
      ValueError: shapes or options that do not fit, or ``data_format`` other than NHWC.
    """
    check_format(data_format, "NHWC", "am_conv2d")
    p = plan(multiplier, backward, backend)
    options = ConvOptions.parse(strides=strides, padding=padding, dilations=dilations, groups=groups)
    with tf.name_scope(name or "am_conv2d"):
        if p.multiplier.is_integer:
            return _conv_core(*as_codes(p.multiplier, x, filters), p, options)
        (x, w), dtype = as_float32(x, filters)
        return tf.cast(_conv_core(x, w, p, options), dtype)


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
    check_format(data_format, "NHWC", "am_depthwise_conv2d")
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
    check_format(data_format, "NWC", "am_conv1d")
    x = tf.convert_to_tensor(x)
    filters = tf.convert_to_tensor(filters)
    if x.shape.rank != 3 or filters.shape.rank != 3:
        raise ValueError(f"am_conv1d takes a 3-D (N, L, C) input and a 3-D (K, C / groups, COUT) filter. "
                         f"Received: input shape={x.shape}, filter shape={filters.shape}")
    stride = _single(stride, "stride", 3)
    dil = _single(dilations, "dilations", 3)
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
        left, right = (as_int(v, "padding") for v in padding)
        pad2 = ((0, 0), (left, right))
    y = am_conv2d(tf.expand_dims(x, 1), tf.expand_dims(filters, 0), multiplier=multiplier, strides=(1, stride),
                  padding=pad2, dilations=(1, dil), groups=groups, backward=backward, backend=backend,
                  name=name or "am_conv1d")
    return tf.squeeze(y, 1)


def _single(value, name, rank):
    """An int, a 1-sequence or TF's ``[1, s, 1]`` form as one positive int."""
    if isinstance(value, (list, tuple)):
        seq = tuple(value)
        if len(seq) == rank:
            seq = seq[1:2]
        if len(seq) != 1:
            raise ValueError(f"`{name}` must be an int or a 1-sequence. Received: {name}={value!r}")
        value = seq[0]
    return as_int(value, name)
