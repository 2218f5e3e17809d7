"""Streamed moments of projections of rows on a few filters, with Gaussian-null z-scores.

Package-internal API (a non-underscore module): :func:`pft.residual.score` measures the held-out
skewness and excess kurtosis of its selected directions with :class:`HeldOutMoments`, as the
direction search (:mod:`pft.numeric._pursuit`) does for its candidates.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from pft._device import host, like
from pft.distributed import Reducer

__all__ = ["HeldOutMoments", "project_moments", "clipped_normal_m4"]


def clipped_normal_m4(c: float) -> float:
    """``E[clip(z, −c, c)⁴]`` for a standard normal ``z`` (truncated moments in closed form)."""
    phi = math.exp(-0.5 * c * c) / math.sqrt(2.0 * math.pi)
    tail = 0.5 * math.erfc(c / math.sqrt(2.0))
    return 3.0 * (1.0 - 2.0 * tail) - 2.0 * phi * (c**3 + 3.0 * c) + 2.0 * tail * c**4


class HeldOutMoments:
    """Streamed sums of ``y, y², y³, y⁴`` of projections on held-out rows, turned into skewness
    and excess kurtosis (about the held-out mean) with their Gaussian-null z-scores, and the
    same third and fourth moments of ``y`` clipped at ±``clip`` (bounded influence per token)."""

    def __init__(self, k: int, clip: float = 4.0) -> None:
        self.n = 0.0
        self.clip = float(clip)
        self.s = np.zeros((6, k))

    def add(self, y: np.ndarray) -> None:
        y2 = y * y
        yc = np.clip(y, -self.clip, self.clip)
        yc3 = yc * yc * yc
        self.n += y.shape[0]
        self.s += [y.sum(0), y2.sum(0), (y2 * y).sum(0), (y2 * y2).sum(0), yc3.sum(0), (yc3 * yc).sum(0)]

    def result(self, red: Reducer) -> dict[str, np.ndarray]:
        n = float(red.sum(self.n))
        m1, m2, m3, m4, c3m, c4m = red.sum(self.s) / n
        c2 = np.maximum(m2 - m1**2, np.finfo(float).tiny)
        c3 = m3 - 3 * m1 * m2 + 2 * m1**3
        c4 = m4 - 4 * m1 * m3 + 6 * m1**2 * m2 - 3 * m1**4
        skew = c3 / c2**1.5
        kurt = c4 / c2**2 - 3.0
        return {"n": n, "variance": c2, "skewness": skew, "kurtosis": kurt,
                "skewness_z": skew / math.sqrt(6.0 / n), "kurtosis_z": kurt / math.sqrt(24.0 / n),
                "clipped_skewness": c3m, "clipped_kurtosis": c4m - clipped_normal_m4(self.clip)}



def project_moments(rows: Callable[[], Iterable[Any]], filters: np.ndarray, mean: np.ndarray,
                    reduce: Reducer) -> dict[str, np.ndarray]:
    """:class:`HeldOutMoments` of the projections ``filters (x − mean)`` of the rows ``rows()``
    yields (one pass; each row costs ``d·m``, not a whitening)."""
    acc = HeldOutMoments(len(filters))
    shift = filters @ mean
    for x in rows():
        if len(x):
            acc.add(host(x @ like(filters.T, x)) - shift)
    return acc.result(reduce)

