"""The reference backend: NumPy, short and obviously right, slow. The oracle of every test.

Every contraction forms its single products with the multiplier's own NumPy oracle
(``Multiplier.products``: DESIGN.md section 1 for tables, the IEEE product for
``fp32``, the compiled model for direct multipliers, the integer table or model on the
codes for integer multipliers), whatever its kind, and sums them in float64 (integers:
int64, exact), in bounded chunks. Convolutions are sums of matrix products, one per
filter tap and group:

* forward: ``y[p, co] += patch[p, ci] (*) w[kh, kw, ci, co]``  (``T[x][w]``)
* input gradient: ``dpatch[p, ci] += dy[p, co] (*) w[kh, kw, ci, co]``  (``T[dy][w]``)
* filter gradient: ``dw[kh, kw, ci, co] = sum_p patch[p, ci] (*) dy[p, co]``  (``T[x][dy]``)
"""

from __future__ import annotations

import numpy as np

from approxsim.backends.base import Backend, IntegerKernels, Kernels
from approxsim.int_multiplier import IntegerMultiplier
from approxsim.multiplier import Multiplier

_CHUNK = 1 << 22  # products formed at once


def status():
    return True, "NumPy"


def create():
    return ReferenceBackend()


def contract(a, b, mult, acc=np.float64):
    """``sum_k a[m, k] (*) b[k, n]`` as ``acc`` (float64; int64 for integer codes, exact), in chunks of
    at most ``_CHUNK`` products."""
    m, k = a.shape
    n = b.shape[1]
    out = np.zeros((m, n), dtype=acc)
    if m == 0 or n == 0 or k == 0:
        return out
    kc = max(1, min(k, _CHUNK // max(n, 1)))
    rc = max(1, _CHUNK // (kc * n))
    with np.errstate(invalid="ignore", over="ignore"):
        for r0 in range(0, m, rc):
            for k0 in range(0, k, kc):
                x, y = np.broadcast_arrays(a[r0:r0 + rc, k0:k0 + kc, None], b[None, k0:k0 + kc, :])
                p = mult.products(np.ascontiguousarray(x), np.ascontiguousarray(y))
                out[r0:r0 + rc] += p.sum(axis=1, dtype=acc)
    return out


def _tap(geom, i, j):
    """Input rows and columns that tap (i, j) meets, for every output row and column, and which are inside."""
    rows = np.arange(geom.oh, dtype=np.int64) * geom.sh + i * geom.dh - geom.pad_top
    cols = np.arange(geom.ow, dtype=np.int64) * geom.sw + j * geom.dw - geom.pad_left
    return rows, cols, (rows >= 0) & (rows < geom.h), (cols >= 0) & (cols < geom.w)


def _patch(x, geom, i, j):
    """``(N * OH * OW, C)``: the input each output pixel meets at tap (i, j), zeros in the padding.

    The padding zeros take part in the products (``0 (*) Inf`` is NaN; code 0 for integer
    multipliers), as a padded input would.
    """
    rows, cols, rin, cin = _tap(geom, i, j)
    patch = np.zeros((geom.n, geom.oh, geom.ow, geom.c), dtype=x.dtype)
    patch[:, rin[:, None] & cin[None, :]] = x[:, rows[rin]][:, :, cols[cin]].reshape(geom.n, -1, geom.c)
    return patch.reshape(-1, geom.c)


def _groups(geom):
    cig, cog = geom.cin_per_group, geom.cout_per_group
    return [(slice(g * cig, (g + 1) * cig), slice(g * cog, (g + 1) * cog)) for g in range(geom.groups)]


class ReferenceKernels(Kernels):
    """Any kind of float multiplier, through its ``products`` oracle (Inf and NaN propagate silently)."""

    ACC = np.float64  # what the sums accumulate in

    def _finish(self, res, terms):
        return np.ascontiguousarray(res, dtype=self.result_dtype(terms))

    def _conv(self, *args):
        with np.errstate(invalid="ignore", over="ignore"):
            return super()._conv(*args)

    def _multiply(self, a, b):
        return self.multiplier.products(a, b)

    def _matmul(self, a, b, shape, out):
        if shape.transpose_a:
            a = np.swapaxes(a, -1, -2)
        if shape.transpose_b:
            b = np.swapaxes(b, -1, -2)
        a = np.broadcast_to(a, shape.batch + a.shape[-2:])
        b = np.broadcast_to(b, shape.batch + b.shape[-2:])
        res = np.empty(shape.output_shape, dtype=self.result_dtype(shape.k))
        for idx in np.ndindex(*shape.batch):
            res[idx] = contract(a[idx], b[idx], self.multiplier, self.ACC)
        return res

    def _conv2d(self, x, w, geom, out):
        res = np.zeros((geom.n * geom.oh * geom.ow, geom.cout), dtype=self.ACC)
        for i in range(geom.kh):
            for j in range(geom.kw):
                patch = _patch(x, geom, i, j)
                for ci, co in _groups(geom):
                    res[:, co] += contract(patch[:, ci], w[i, j, :, co], self.multiplier, self.ACC)
        return self._finish(res, geom.kh * geom.kw * geom.cin_per_group).reshape(geom.output_shape)

    def _conv2d_input_grad(self, dy, w, geom, out):
        dx = np.zeros(geom.input_shape, dtype=self.ACC)
        for i in range(geom.kh):
            for j in range(geom.kw):
                rows, cols, rin, cin = _tap(geom, i, j)
                if not (rin.any() and cin.any()):
                    continue  # this tap reaches padding only: no input position receives a product
                reached = dy[:, rin][:, :, cin].reshape(-1, geom.cout)  # the outputs whose tap lands inside
                for ci, co in _groups(geom):
                    part = contract(reached[:, co], w[i, j, :, co].T, self.multiplier, self.ACC)
                    dx[:, rows[rin][:, None], cols[cin][None, :], ci] += part.reshape(
                        geom.n, int(rin.sum()), int(cin.sum()), -1)
        return self._finish(dx, geom.kh * geom.kw * geom.cout_per_group)

    def _conv2d_filter_grad(self, x, dy, geom, out):
        dw = np.zeros(geom.filter_shape, dtype=self.result_dtype(geom.n * geom.oh * geom.ow))
        dy2 = dy.reshape(-1, geom.cout)
        for i in range(geom.kh):
            for j in range(geom.kw):
                patch = _patch(x, geom, i, j)
                for ci, co in _groups(geom):
                    dw[i, j, :, co] = contract(patch[:, ci].T, dy2[:, co], self.multiplier, self.ACC)
        return dw


class IntReferenceKernels(IntegerKernels, ReferenceKernels):
    """Integer multipliers: products from the table (or the compiled model) on the codes, exact int64 sums."""

    ACC = np.int64

    def _multiply(self, a, b):  # the products in the dtype every backend gives them (DESIGN.md 1b)
        return self._finish(self.multiplier.products(a, b), 1)


class ReferenceBackend(Backend):
    name = "reference"
    KERNELS = {Multiplier: ReferenceKernels, IntegerMultiplier: IntReferenceKernels}
