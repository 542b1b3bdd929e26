"""The reference backend: NumPy, short and obviously right, slow. The oracle of every test.

Every contraction forms its single products with :func:`approxsim.product.approx_product`
(or the float32 IEEE product for ``fp32``) and sums them in float64, in bounded
chunks. Convolutions are sums of matrix products, one per filter tap and group:

* forward: ``y[p, co] += patch[p, ci] (*) w[kh, kw, ci, co]``  (``T[x][w]``)
* input gradient: ``dpatch[p, ci] += dy[p, co] (*) w[kh, kw, ci, co]``  (``T[dy][w]``)
* filter gradient: ``dw[kh, kw, ci, co] = sum_p patch[p, ci] (*) dy[p, co]``  (``T[x][dy]``)
"""

from __future__ import annotations

import numpy as np

from approxsim.backends.base import Backend
from approxsim.product import products

_CHUNK = 1 << 22  # products formed at once


def status():
    return True, "NumPy"


def create():
    return ReferenceBackend()


def contract(a, b, mult):
    """``sum_k a[m, k] (*) b[k, n]`` as float64, in chunks of at most ``_CHUNK`` products."""
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=np.float64)
    if m == 0 or n == 0 or k == 0:
        return out
    kc = max(1, min(k, _CHUNK // max(n, 1)))
    rc = max(1, _CHUNK // (kc * n))
    with np.errstate(invalid="ignore", over="ignore"):
        for r0 in range(0, m, rc):
            for k0 in range(0, k, kc):
                p = products(a[r0:r0 + rc, k0:k0 + kc, None], b[None, k0:k0 + kc, :], mult)
                out[r0:r0 + rc] += p.sum(axis=1, dtype=np.float64)
    return out


def _patches(xp, geom, i, j):
    """The input rows/columns that filter tap (i, j) meets: shape (N, OH, OW, C)."""
    r0, c0 = i * geom.dh, j * geom.dw
    return xp[:, r0:r0 + (geom.oh - 1) * geom.sh + 1:geom.sh, c0:c0 + (geom.ow - 1) * geom.sw + 1:geom.sw, :]


def _pad(x, geom):
    return np.pad(x, ((0, 0), (geom.pad_top, geom.pad_bottom), (geom.pad_left, geom.pad_right), (0, 0)))


class ReferenceBackend(Backend):
    name = "reference"

    def matmul(self, a, b, mult, *, transpose_a=False, transpose_b=False):
        if transpose_a:
            a = np.swapaxes(a, -1, -2)
        if transpose_b:
            b = np.swapaxes(b, -1, -2)
        batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
        a = np.broadcast_to(a, batch + a.shape[-2:])
        b = np.broadcast_to(b, batch + b.shape[-2:])
        out = np.empty(batch + (a.shape[-2], b.shape[-1]), dtype=np.float32)
        for idx in np.ndindex(*batch):
            out[idx] = contract(a[idx], b[idx], mult)
        return out

    def conv2d(self, x, w, geom, mult):
        xp = _pad(x, geom)
        cig, cog = geom.cin_per_group, geom.cout_per_group
        out = np.zeros((geom.n * geom.oh * geom.ow, geom.cout), dtype=np.float64)
        for i in range(geom.kh):
            for j in range(geom.kw):
                patch = _patches(xp, geom, i, j).reshape(-1, geom.c)
                for g in range(geom.groups):
                    ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                    out[:, co] += contract(patch[:, ci], w[i, j, :, co], mult)
        return out.astype(np.float32).reshape(geom.output_shape)

    def conv2d_input_grad(self, dy, w, geom, mult):
        cig, cog = geom.cin_per_group, geom.cout_per_group
        dxp = np.zeros((geom.n, geom.h + geom.pad_top + geom.pad_bottom,
                        geom.w + geom.pad_left + geom.pad_right, geom.c), dtype=np.float64)
        dy2 = dy.reshape(-1, geom.cout)
        for i in range(geom.kh):
            for j in range(geom.kw):
                target = _patches(dxp, geom, i, j)  # a strided view into dxp
                for g in range(geom.groups):
                    ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                    part = contract(dy2[:, co], w[i, j, :, co].T, mult)
                    target[..., ci] += part.reshape(geom.n, geom.oh, geom.ow, cig)
        dx = dxp[:, geom.pad_top:geom.pad_top + geom.h, geom.pad_left:geom.pad_left + geom.w, :]
        return np.ascontiguousarray(dx, dtype=np.float32)

    def conv2d_filter_grad(self, x, dy, geom, mult):
        xp = _pad(x, geom)
        cig, cog = geom.cin_per_group, geom.cout_per_group
        dw = np.zeros(geom.filter_shape, dtype=np.float32)
        dy2 = dy.reshape(-1, geom.cout)
        for i in range(geom.kh):
            for j in range(geom.kw):
                patch = _patches(xp, geom, i, j).reshape(-1, geom.c)
                for g in range(geom.groups):
                    ci, co = slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)
                    dw[i, j, :, co] = contract(patch[:, ci].T, dy2[:, co], mult)
        return dw
