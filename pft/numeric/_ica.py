"""Directions of extreme kurtosis in whitened data (FastICA with the kurtosis contrast)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pft._device import as_device_matrix, host, is_tensor, like, resolve_device
from pft._deprecation import renamed_keywords
from pft._validate import check_int, check_seed
from pft.errors import InputError
from pft.distributed import LocalReducer, Reducer

__all__ = ["kurtosis_directions", "excess_kurtosis", "sym_decorrelate"]


def excess_kurtosis(u: Any, *, reduce: Reducer | None = None) -> np.ndarray:
    """Excess kurtosis of each column of ``u`` (N, k; numpy or a tensor on any device), about its
    own mean and variance (rows summed over ranks when ``reduce`` is distributed)."""
    red = reduce or LocalReducer()
    n = float(red.sum(u.shape[0]))
    z = u - like(red.sum(host(u.sum(axis=0))) / n, u)
    z2 = z * z
    m2 = red.sum(host(z2.sum(axis=0))) / n
    m4 = red.sum(host((z2 * z2).sum(axis=0))) / n
    return m4 / np.maximum(m2, np.finfo(float).tiny) ** 2 - 3.0


def sym_decorrelate(W: np.ndarray) -> np.ndarray:
    """``(W Wᵀ)^{-1/2} W``: the closest matrix with orthonormal rows (symmetric FastICA's
    decorrelation; also used by the pursuit in :mod:`pft.numeric._pursuit`)."""
    s, U = np.linalg.eigh(W @ W.T)
    s = np.maximum(s, np.finfo(float).eps)
    return (U / np.sqrt(s)) @ U.T @ W


@renamed_keywords(k="n_directions")
def kurtosis_directions(
    w: Any,
    n_directions: int,
    *,
    seed: int = 0,
    n_components: int | None = None,
    max_iter: int = 200,
    tol: float = 1e-7,
    reduce: Reducer | None = None,
    device: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal directions of maximal ``|excess kurtosis|`` in whitened data.

    Parameters
    ----------
    w : (N, r) ndarray or tensor
        Whitened data (zero mean, identity covariance, at least approximately). A tensor is
        worked on where it lives.
    n_directions : int
        Number ``k`` of directions returned (``k=`` is a deprecated spelling of this keyword).
    seed : int, default 0
        Seed of the random orthonormal start.
    n_components : int, optional
        Directions searched jointly (default ``min(r, 2k + 4)``); the ``k`` with the largest
        ``|excess kurtosis|`` are returned. Searching more than ``k`` keeps a weak direction from
        being locked onto when a strong one is available.
    max_iter, tol : int, float
        Fixed-point iterations and convergence tolerance on ``1 − |⟨w_old, w_new⟩|``.
    reduce : Reducer, optional
        Sums over rows on several ranks (each passes its own rows; all get the same result).
    device : str or torch.device, optional
        Where the O(N r m) products of each iteration run (a numpy ``w`` is copied there once);
        the m × r iterate stays on the host in float64. Results are numpy either way.

    Returns
    -------
    directions : (k, r) ndarray
        Unit, mutually orthogonal rows, sorted by decreasing ``|excess kurtosis|``.
    kurtosis : (k,) ndarray
        Excess kurtosis of ``w @ directions.T`` on the data given.

    Notes
    -----
    Symmetric FastICA (Hyvärinen 1999) with ``g(u) = u³``: ``W ← E[(Wy)³ yᵀ] − 3W`` followed
    by ``W ← (WWᵀ)^{-1/2} W``. Its fixed points are the directions where the excess kurtosis
    is extremal, of either sign.

    References
    ----------
    .. [1] A. Hyvärinen, "Fast and robust fixed-point algorithms for independent component
       analysis", IEEE Trans. Neural Netw. 10 (1999).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> s = np.c_[rng.laplace(size=5000), rng.normal(size=(5000, 3))] / [np.sqrt(2), 1, 1, 1]
    >>> d, kurt = kurtosis_directions(s, 1, seed=0)
    >>> round(float(abs(d[0, 0])), 2), bool(kurt[0] > 2)
    (1.0, True)
    """
    check_seed(seed)
    dev = resolve_device(device)
    if not is_tensor(w):
        w = np.asarray(w, dtype=np.float64)
    if w.ndim != 2:
        raise InputError(f"`w` must be 2-D (tokens x whitened dims); got shape {tuple(w.shape)}.")
    if is_tensor(w) or dev is not None:
        w = as_device_matrix(w, "w", dev if dev is not None else w.device, allow_empty=True)
    red = reduce or LocalReducer()
    r = w.shape[1]
    N = float(red.sum(w.shape[0]))
    k = check_int(n_directions, "n_directions", minimum=1)
    if k > r:
        raise InputError(f"`n_directions` must be at most {r} (the whitened dimension); got {k!r}.")
    m = min(r, n_components if n_components is not None else 2 * k + 4)
    m = max(m, k)
    rng = np.random.default_rng(seed)
    W = sym_decorrelate(rng.standard_normal((m, r)))
    for _ in range(max_iter):
        u = w @ like(W.T, w)  # (N, m)
        # E[(Wy)³ yᵀ]; u*u*u, since u**3 goes through pow and is 100x slower
        W_new = red.sum(host((u * u * u).T @ w)) / N - 3.0 * W
        W_new = sym_decorrelate(W_new)
        change = 1.0 - np.min(np.abs(np.sum(W_new * W, axis=1)))
        W = W_new
        if change < tol:
            break
    kurt = excess_kurtosis(w @ like(W.T, w), reduce=red)
    order = np.argsort(-np.abs(kurt))[:k]
    return W[order], kurt[order]
