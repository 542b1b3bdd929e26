"""Shapes of the contractions, checked in one place: :class:`ConvGeometry` and :class:`MatmulShape`.

Conventions follow TensorFlow: activations NHWC, filters HWIO with
``I = in_channels / groups``; ``SAME`` padding puts the extra row/column at the
bottom/right.

Every size is checked with exact (Python) integers before anything is allocated: a
geometry whose effective kernel, padded input or element counts exceed ``MAX_EXTENT``
(2^62, far beyond any real tensor but safe in the int64 arithmetic of the C++ kernels)
is refused with a ``ValueError``; the C++ extension checks the same fields again
(``csrc/geometry.h``), with overflow-checked arithmetic.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from approxsim.arguments import MAX_EXTENT, as_bool, as_int, pair

__all__ = ["ConvGeometry", "ConvOptions", "MatmulShape", "conv_geometry", "matmul_shapes", "normalize_padding"]



@dataclasses.dataclass(frozen=True)
class ConvGeometry:
    """Everything a backend needs to run a 2-D convolution or its gradients.

    Attributes:
      n, h, w, c: input batch, height, width, channels (NHWC).
      kh, kw: filter height and width.
      cout: output channels.
      groups: channel groups; ``c / groups`` input and ``cout / groups`` output channels each.
      sh, sw: strides; dh, dw: dilations.
      pad_top, pad_bottom, pad_left, pad_right: zero padding.
      oh, ow: output height and width.
    """
    n: int
    h: int
    w: int
    c: int
    kh: int
    kw: int
    cout: int
    groups: int
    sh: int
    sw: int
    dh: int
    dw: int
    pad_top: int
    pad_bottom: int
    pad_left: int
    pad_right: int
    oh: int
    ow: int

    @property
    def cin_per_group(self) -> int:
        return self.c // self.groups

    @property
    def cout_per_group(self) -> int:
        return self.cout // self.groups

    @property
    def input_shape(self) -> tuple:
        return (self.n, self.h, self.w, self.c)

    @property
    def filter_shape(self) -> tuple:
        return (self.kh, self.kw, self.c // self.groups, self.cout)

    @property
    def output_shape(self) -> tuple:
        return (self.n, self.oh, self.ow, self.cout)

    def fields(self) -> dict:
        """The fields by name (what the C++ ``Geometry`` struct and the CUDA kernels take).

        Read field by field: ``dataclasses.asdict`` deep-copies each int, which cost about 15 us a call,
        paid by every convolution a training step runs (LeNet-5: 6 of them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def check_array(self, arr, name: str, shape) -> None:
        """Raises ``ValueError`` unless ``arr`` has ``shape`` (which this geometry needs)."""
        if tuple(arr.shape) != tuple(shape):
            raise ValueError(
                f"`{name}` must have shape {tuple(shape)} for this convolution (input {self.input_shape}, "
                f"filter {self.filter_shape}, output {self.output_shape}). Received: {name} shape={tuple(arr.shape)}")

    def max_extent(self) -> int:
        """The largest index-space size the kernels form (padded input, effective kernel, counts)."""
        ekh, ekw = (self.kh - 1) * self.dh + 1, (self.kw - 1) * self.dw + 1
        return max(self.h + self.pad_top + self.pad_bottom, self.w + self.pad_left + self.pad_right, ekh, ekw,
                   self.n * self.h * self.w * self.c, self.n * self.oh * self.ow * self.cout,
                   self.kh * self.kw * self.c * self.cout, (self.oh - 1) * self.sh + ekh,
                   (self.ow - 1) * self.sw + ekw)


def normalize_padding(padding):
    """``"SAME"``/``"VALID"`` (any case), or explicit ``((top, bottom), (left, right))``.

    Accepts TF's 4-pair form ``[[0, 0], [t, b], [l, r], [0, 0]]``.

    Raises:
      ValueError: anything else, or negative or non-integer pads.
    """
    if isinstance(padding, str):
        mode = padding.upper()
        if mode not in ("SAME", "VALID"):
            raise ValueError(f'`padding` must be "SAME", "VALID" or explicit pairs. Received: padding={padding!r}')
        return mode
    try:
        pads = [tuple(as_int(v, "padding") for v in p) for p in padding]
    except TypeError:
        pads = []
    if len(pads) == 4:  # TF's [[0, 0], [t, b], [l, r], [0, 0]]
        if pads[0] != (0, 0) or pads[3] != (0, 0):
            raise ValueError(f"Explicit padding of the batch and channel dimensions must be 0. Received: padding={padding!r}")
        pads = pads[1:3]
    if len(pads) != 2 or any(len(p) != 2 for p in pads) or any(v < 0 for p in pads for v in p):
        raise ValueError('`padding` must be "SAME", "VALID", ((top, bottom), (left, right)) or TF\'s 4-pair form, '
                         f"with non-negative ints. Received: padding={padding!r}")
    return (pads[0], pads[1])


def axis_padding(padding, axis: int, size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """``(before, after)`` padding of one spatial axis (0: height, 1: width) for a normalised ``padding``."""
    if padding == "VALID":
        return 0, 0
    if padding == "SAME":
        out = -(-size // stride)
        total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
        return total // 2, total - total // 2
    return padding[axis]


def output_size(padding, axis: int, size, k, stride: int, dilation: int):
    """The output size along one axis (``None`` where ``size`` or ``k`` is unknown)."""
    if size is None or k is None:
        return None
    lo, hi = axis_padding(padding, axis, size, k, stride, dilation)
    return (size + lo + hi - (k - 1) * dilation - 1) // stride + 1


@dataclasses.dataclass(frozen=True)
class ConvOptions:
    """A convolution's options, checked and normalised: what stays fixed while shapes vary.

    Attributes:
      strides, dilations: ``(h, w)`` pairs of positive ints.
      padding: ``"SAME"``, ``"VALID"`` or ``((top, bottom), (left, right))``.
      groups: channel groups.
    """
    strides: tuple
    padding: object
    dilations: tuple
    groups: int

    @classmethod
    def parse(cls, *, strides=1, padding="VALID", dilations=1, groups=1) -> "ConvOptions":
        """Checks the options (raising ``ValueError``/``TypeError`` that name the argument)."""
        try:
            groups = as_int(groups, "groups")
        except TypeError:
            raise ValueError(f"`groups` must be a positive int. Received: groups={groups!r}") from None
        if groups < 1:
            raise ValueError(f"`groups` must be a positive int. Received: groups={groups!r}")
        return cls(pair(strides, "strides"), normalize_padding(padding), pair(dilations, "dilations"), groups)

    def output_hw(self, h, w, kh, kw) -> tuple:
        """Output height and width (``None`` where unknown), as TensorFlow infers them."""
        return tuple(output_size(self.padding, axis, size, k, self.strides[axis], self.dilations[axis])
                     for axis, (size, k) in enumerate(((h, kh), (w, kw))))

    def geometry(self, input_shape, filter_shape) -> "ConvGeometry":
        """The :class:`ConvGeometry` of these options on concrete shapes (see :func:`conv_geometry`)."""
        return _geometry(input_shape, filter_shape, self)


def _shape(values, name: str, what: str) -> tuple:
    try:
        out = tuple(as_int(v, name) for v in values)
    except TypeError as e:
        raise TypeError(f"{what} must hold integers. {e}") from None
    return out


def conv_geometry(input_shape: Sequence[int], filter_shape: Sequence[int], *, strides=1, padding="VALID",
                  dilations=1, groups: int = 1) -> ConvGeometry:
    """Validates a convolution's shapes and options and computes its geometry.

    Args:
      input_shape: ``(N, H, W, C)``.
      filter_shape: ``(KH, KW, C / groups, COUT)``.
      strides, dilations: int or ``(h, w)``.
      padding: ``"SAME"``, ``"VALID"``, ``((top, bottom), (left, right))`` or TF's 4-pair form.
      groups: number of channel groups (``groups == C`` with ``C / groups == 1`` is depthwise).

    Raises:
      ValueError: shapes or options that do not fit, or sizes beyond ``MAX_EXTENT``; the
        message names both shapes.
      TypeError: a size or option that is not an integer.
    """
    options = ConvOptions.parse(strides=strides, padding=padding, dilations=dilations, groups=groups)
    return _geometry(input_shape, filter_shape, options)


def _geometry(input_shape, filter_shape, options: ConvOptions) -> ConvGeometry:
    input_shape = _shape(input_shape, "input_shape", "The input shape")
    filter_shape = _shape(filter_shape, "filter_shape", "The filter shape")
    if len(input_shape) != 4:
        raise ValueError(f"conv2d input must be 4-D NHWC. Received: input shape={input_shape}")
    if len(filter_shape) != 4:
        raise ValueError(f"conv2d filter must be 4-D HWIO. Received: filter shape={filter_shape}")
    groups = options.groups
    n, h, w, c = input_shape
    kh, kw, ci, cout = filter_shape
    if min(input_shape + filter_shape) < 0 or min(kh, kw, ci, cout) == 0:
        raise ValueError(f"Empty or negative filter dimensions. Received: input shape={input_shape}, "
                         f"filter shape={filter_shape}")
    if c % groups or cout % groups or ci * groups != c:
        raise ValueError(
            f"With groups={groups}, the input's {c} channels and the filter's {cout} output channels must be "
            f"divisible by {groups}, and the filter must have {c // groups if c % groups == 0 else '?'} input "
            f"channels per group. Received: input shape={input_shape}, filter shape={filter_shape}")
    (sh, sw), (dh, dw), padding = options.strides, options.dilations, options.padding
    pt, pb = axis_padding(padding, 0, h, kh, sh, dh)
    pl, pr = axis_padding(padding, 1, w, kw, sw, dw)
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    oh, ow = options.output_hw(h, w, kh, kw)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"The filter (dilated to {ekh}x{ekw}) does not fit the padded input ({h + pt + pb}x{w + pl + pr}). "
            f"Received: input shape={input_shape}, filter shape={filter_shape}, padding={padding!r}, "
            f"dilations={(dh, dw)}")
    geom = ConvGeometry(n, h, w, c, kh, kw, cout, groups, sh, sw, dh, dw, pt, pb, pl, pr, oh, ow)
    if geom.max_extent() >= MAX_EXTENT:
        raise ValueError(
            f"This convolution is too large to index: its padded input, dilated filter or element counts reach "
            f"{geom.max_extent()} (at most 2^62). Received: input shape={input_shape}, filter shape={filter_shape}, "
            f"strides={(sh, sw)}, dilations={(dh, dw)}, padding={padding!r}")
    return geom


@dataclasses.dataclass(frozen=True)
class MatmulShape:
    """A checked batched matrix product ``op(a) @ op(b)``.

    Attributes:
      batch: the broadcast batch dimensions (``()`` for 2-D operands).
      m, k, n: rows of ``op(a)``, the contraction, columns of ``op(b)``.
      transpose_a, transpose_b: whether ``op`` transposes the last two dimensions.
      a_shape, b_shape: the operands' shapes.
    """
    batch: tuple
    m: int
    k: int
    n: int
    transpose_a: bool
    transpose_b: bool
    a_shape: tuple
    b_shape: tuple

    @property
    def output_shape(self) -> tuple:
        return tuple(self.batch) + (self.m, self.n)

    @property
    def batch_size(self) -> int:
        return int(np.prod(self.batch, dtype=np.int64)) if self.batch else 1

    def __iter__(self):  # ``batch, m, k, n = matmul_shapes(...)``
        return iter((self.batch, self.m, self.k, self.n))


def _broadcast_static(a: tuple, b: tuple) -> tuple:
    """NumPy broadcasting of two shapes whose dimensions may be ``None`` (unknown)."""
    out = []
    for i in range(1, max(len(a), len(b)) + 1):
        x = a[-i] if i <= len(a) else 1
        y = b[-i] if i <= len(b) else 1
        if x == 1 or x == y:
            out.append(y)
        elif y == 1:
            out.append(x)
        elif x is None or y is None:
            out.append(y if x is None else x)
        else:
            raise ValueError("batch dimensions do not broadcast")
    return tuple(reversed(out))


def matmul_shapes(a_shape, b_shape, transpose_a=False, transpose_b=False) -> MatmulShape:
    """Checks ``op(a) @ op(b)`` shapes and returns the :class:`MatmulShape`.

    Dimensions may be ``None`` (a static shape in a TF graph): what is known is checked.
    Unpacks as ``batch, m, k, n = matmul_shapes(...)`` too.

    Raises:
      ValueError: operands of rank < 2, inner dimensions that differ, or batches that do not broadcast.
      TypeError: a transpose flag that is not a bool.
    """
    a_shape = tuple(None if d is None else int(d) for d in a_shape)
    b_shape = tuple(None if d is None else int(d) for d in b_shape)
    ta, tb = as_bool(transpose_a, "transpose_a"), as_bool(transpose_b, "transpose_b")
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise ValueError(f"matmul operands must be at least 2-D. Received: a shape={a_shape}, b shape={b_shape}")
    m, ka = (a_shape[-1], a_shape[-2]) if ta else (a_shape[-2], a_shape[-1])
    kb, n = (b_shape[-1], b_shape[-2]) if tb else (b_shape[-2], b_shape[-1])
    if ka is not None and kb is not None and ka != kb:
        raise ValueError(
            f"matmul inner dimensions differ: a contributes {ka} and b {kb} (transpose_a={ta}, "
            f"transpose_b={tb}). Received: a shape={a_shape}, b shape={b_shape}")
    try:
        batch = _broadcast_static(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"matmul batch dimensions do not broadcast. Received: a shape={a_shape}, "
                         f"b shape={b_shape}") from None
    return MatmulShape(batch, m, ka if ka is not None else kb, n, ta, tb, a_shape, b_shape)
