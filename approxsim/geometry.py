"""Shape arithmetic shared by every backend: matmul broadcasting and conv geometry.

Conventions follow TensorFlow: activations NHWC, filters HWIO with
``I = in_channels / groups``; ``SAME`` padding puts the extra row/column at the
bottom/right.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

__all__ = ["ConvGeometry", "conv_geometry", "matmul_shapes", "pair"]


def pair(value, name: str) -> tuple[int, int]:
    """An int or a pair (or TF's 4-list ``[1, h, w, 1]``) as ``(h, w)`` of positive ints."""
    if isinstance(value, (int,)) and not isinstance(value, bool):
        out = (value, value)
    else:
        seq = tuple(value)
        if len(seq) == 4 and seq[0] == 1 and seq[3] == 1:
            seq = seq[1:3]
        if len(seq) == 1:
            seq = seq * 2
        if len(seq) != 2:
            raise ValueError(f"`{name}` must be an int or a pair (h, w). Received: {name}={value!r}")
        out = tuple(int(v) for v in seq)
    if any(v < 1 for v in out):
        raise ValueError(f"`{name}` must be positive. Received: {name}={value!r}")
    return out


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


def _padding(padding, h, w, kh, kw, sh, sw, dh, dw):
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    if isinstance(padding, str):
        mode = padding.upper()
        if mode == "VALID":
            return 0, 0, 0, 0
        if mode == "SAME":
            oh, ow = -(-h // sh), -(-w // sw)
            ph = max((oh - 1) * sh + ekh - h, 0)
            pw = max((ow - 1) * sw + ekw - w, 0)
            return ph // 2, ph - ph // 2, pw // 2, pw - pw // 2
        raise ValueError(f'`padding` must be "SAME", "VALID" or explicit pairs. Received: padding={padding!r}')
    try:
        pads = [tuple(int(v) for v in p) for p in padding]
    except TypeError:
        pads = []
    if len(pads) == 4:  # TF's [[0, 0], [t, b], [l, r], [0, 0]]
        if pads[0] != (0, 0) or pads[3] != (0, 0):
            raise ValueError(f"Explicit padding of the batch and channel dimensions must be 0. Received: padding={padding!r}")
        pads = pads[1:3]
    if len(pads) != 2 or any(len(p) != 2 for p in pads) or any(v < 0 for p in pads for v in p):
        raise ValueError('`padding` must be "SAME", "VALID", ((top, bottom), (left, right)) or TF\'s 4-pair form, '
                         f"with non-negative ints. Received: padding={padding!r}")
    return pads[0][0], pads[0][1], pads[1][0], pads[1][1]


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
      ValueError: shapes or options that do not fit; the message names both shapes.
    """
    input_shape = tuple(int(v) for v in input_shape)
    filter_shape = tuple(int(v) for v in filter_shape)
    if len(input_shape) != 4:
        raise ValueError(f"conv2d input must be 4-D NHWC. Received: input shape={input_shape}")
    if len(filter_shape) != 4:
        raise ValueError(f"conv2d filter must be 4-D HWIO. Received: filter shape={filter_shape}")
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"`groups` must be a positive int. Received: groups={groups!r}")
    n, h, w, c = input_shape
    kh, kw, ci, cout = filter_shape
    if c % groups or cout % groups or ci * groups != c:
        raise ValueError(
            f"With groups={groups}, the input's {c} channels and the filter's {cout} output channels must be "
            f"divisible by {groups}, and the filter must have {c // groups if c % groups == 0 else '?'} input "
            f"channels per group. Received: input shape={input_shape}, filter shape={filter_shape}")
    if min(input_shape + filter_shape) < 0 or min(kh, kw, ci, cout) == 0:
        raise ValueError(f"Empty or negative filter dimensions. Received: input shape={input_shape}, "
                         f"filter shape={filter_shape}")
    sh, sw = pair(strides, "strides")
    dh, dw = pair(dilations, "dilations")
    pt, pb, pl, pr = _padding(padding, h, w, kh, kw, sh, sw, dh, dw)
    ekh, ekw = (kh - 1) * dh + 1, (kw - 1) * dw + 1
    oh = (h + pt + pb - ekh) // sh + 1
    ow = (w + pl + pr - ekw) // sw + 1
    if oh < 1 or ow < 1:
        raise ValueError(
            f"The filter (dilated to {ekh}x{ekw}) does not fit the padded input ({h + pt + pb}x{w + pl + pr}). "
            f"Received: input shape={input_shape}, filter shape={filter_shape}, padding={padding!r}, "
            f"dilations={(dh, dw)}")
    return ConvGeometry(n, h, w, c, kh, kw, cout, groups, sh, sw, dh, dw, pt, pb, pl, pr, oh, ow)


def matmul_shapes(a_shape, b_shape, transpose_a=False, transpose_b=False):
    """Checks ``a @ b`` shapes (after the transposes) and returns ``(batch, m, k, n)``.

    ``batch`` is the broadcast of the leading dimensions (``()`` for 2-D operands).
    """
    a_shape, b_shape = tuple(a_shape), tuple(b_shape)
    if len(a_shape) < 2 or len(b_shape) < 2:
        raise ValueError(f"matmul operands must be at least 2-D. Received: a shape={a_shape}, b shape={b_shape}")
    m, ka = (a_shape[-1], a_shape[-2]) if transpose_a else (a_shape[-2], a_shape[-1])
    kb, n = (b_shape[-1], b_shape[-2]) if transpose_b else (b_shape[-2], b_shape[-1])
    if ka != kb:
        raise ValueError(
            f"matmul inner dimensions differ: a contributes {ka} and b {kb} (transpose_a={transpose_a}, "
            f"transpose_b={transpose_b}). Received: a shape={a_shape}, b shape={b_shape}")
    import numpy as np

    try:
        batch = np.broadcast_shapes(a_shape[:-2], b_shape[:-2])
    except ValueError:
        raise ValueError(f"matmul batch dimensions do not broadcast. Received: a shape={a_shape}, "
                         f"b shape={b_shape}") from None
    return tuple(batch), m, ka, n
