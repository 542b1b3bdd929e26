"""Structure in a multiplier's table, found and verified exactly, for faster kernels.

Many approximate multipliers compute the product's significand from the *sum* of (functions of)
the operands' mantissa indexes: Mitchell's ``1 + x + y`` (``2(x + y)`` on carry), L-Mul, and
MBM, whose operands first get their lowest kept bit set. Their table is then
``T[i][j] = g(u[i] + v[j])`` for small integer maps ``u``, ``v`` (rows and columns that are equal
get the same class), and ``g`` is piecewise linear in ``s = u + v``:
``g(s) = alpha_p + beta_p * s`` on a few pieces ``s >= theta_p``. The CPU kernels then compute
``T[i][j]`` with a few vector operations instead of a table lookup (no gathers), exactly: every
entry is checked, with the same float32 operation the kernels use (``fma(beta, s, alpha)``), and
a table with a single entry off is not treated as structured.

Tables of no such structure use the lookup kernels (:class:`TableStructure` ``kind="general"``).
"""

from __future__ import annotations

import dataclasses

import numpy as np

__all__ = ["TableStructure", "detect", "MAX_PIECES"]

MAX_PIECES = 4


@dataclasses.dataclass(frozen=True)
class TableStructure:
    """What :func:`detect` found.

    Attributes:
      kind: ``"linear-sum"`` (``T[i][j] = alpha_p + beta_p * (u[i] + v[j])``) or ``"general"``.
      u, v: int32 class of each row / column (``linear-sum`` only).
      thresholds: ``theta_1 .. theta_{P-1}``: piece ``p`` is the last whose threshold ``s`` reaches.
      alphas, betas: float32 coefficients of each piece.
    """
    kind: str
    u: np.ndarray = None
    v: np.ndarray = None
    thresholds: tuple = ()
    alphas: tuple = ()
    betas: tuple = ()

    def describe(self) -> str:
        if self.kind != "linear-sum":
            return "general (lookup kernels)"
        pieces = len(self.alphas)
        return (f"linear-sum: T[i][j] = alpha + beta * (u[i] + v[j]), {pieces} piece{'s' * (pieces > 1)}, "
                f"{int(self.u.max()) + 1} row and {int(self.v.max()) + 1} column classes")


GENERAL = TableStructure("general")


def _classes(t: np.ndarray, axis: int) -> np.ndarray:
    """Class of each row (axis 0) or column (axis 1): equal lines share one, numbered in the order of
    their mean entry (the order of ``u`` for a table increasing in ``u + v``; ties by first appearance)."""
    lines = t if axis == 0 else t.T
    _, first, inverse = np.unique(lines, axis=0, return_index=True, return_inverse=True)
    means = lines[first].astype(np.float64).mean(axis=1)
    order = np.lexsort((first, means))
    rank = np.empty(len(first), dtype=np.int64)
    rank[order] = np.arange(len(first))
    return rank[inverse.ravel()].astype(np.int32)


def _pieces(g: np.ndarray):
    """Greedy exact segmentation of ``g`` (float32 by integer ``s``) into lines; None beyond MAX_PIECES."""
    n = len(g)
    values = g.astype(np.float64)
    pieces, start = [], 0
    while start < n:
        if len(pieces) == MAX_PIECES:
            return None
        if start + 1 == n:
            alpha, beta = values[start], 0.0
        else:
            beta = values[start + 1] - values[start]
            alpha = values[start] - beta * start
        if np.float32(alpha) != alpha or np.float32(beta) != beta:
            return None
        s = np.arange(start, n, dtype=np.float64)
        exact = alpha + beta * s == values[start:]
        end = start + (int(np.argmin(exact)) if not exact.all() else len(exact))
        pieces.append((start, np.float32(alpha), np.float32(beta)))
        start = end
    return pieces


def _kernel_values(u, v, pieces) -> np.ndarray:
    """The table as the kernels compute it: float32 ``fma(beta_p, s, alpha_p)`` for ``s = u + v``."""
    s = (u[:, None] + v[None, :]).astype(np.float64)
    out = np.zeros(s.shape, dtype=np.float64)
    for start, alpha, beta in pieces:
        out = np.where(s >= start, float(alpha) + float(beta) * s, out)  # exact in float64: one rounding to f32
    return out.astype(np.float32)


def detect(table) -> TableStructure:
    """The structure of a float32 table (``GENERAL`` when none is found or it does not hold exactly)."""
    t = np.ascontiguousarray(table, dtype=np.float32)
    if t.ndim != 2 or not np.isfinite(t).all():
        return GENERAL
    u, v = _classes(t, 0), _classes(t, 1)
    rows, cols = int(u.max()) + 1, int(v.max()) + 1
    reduced = np.empty((rows, cols), dtype=np.float32)
    reduced[u[:, None], v[None, :]] = t
    s = np.add.outer(np.arange(rows), np.arange(cols))
    g = np.empty(rows + cols - 1, dtype=np.float32)
    g[s.ravel()] = reduced.ravel()
    if not np.array_equal(g[s].view(np.uint32), reduced.view(np.uint32)):
        return GENERAL  # not a function of the class sum
    pieces = _pieces(g)
    if pieces is None:
        return GENERAL
    if not np.array_equal(_kernel_values(u, v, pieces).view(np.uint32), t.view(np.uint32)):
        return GENERAL  # (e.g. -0.0 against +0.0): the kernels' arithmetic must give every entry's bits
    return TableStructure("linear-sum", u, v, tuple(float(p[0]) for p in pieces[1:]),
                          tuple(float(p[1]) for p in pieces), tuple(float(p[2]) for p in pieces))
