"""Sparse non-negative dictionary learning on rows, one streamed pass per iteration: the
sparse-coding source of candidate missed features (see :mod:`pft.numeric._pursuit`)."""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np

from pft._device import host, is_tensor, like_dtype
from pft.distributed import LocalReducer, Reducer
from pft.errors import InputError

__all__ = ["sparse_atoms"]


def _greedy_codes(P: Any, G: Any, sparsity: int) -> list:
    """Non-negative greedy codes of rows whose read-outs are ``P`` (n, m): ``sparsity`` times,
    every row gives the atom with the largest read-out its read-out as code (0 when none is
    positive) and the read-outs of every atom drop by ``code · G[:, j]`` (``G = F Dᵀ``: atom
    j's pattern read by every atom's filter). Returns one ``(atom index (n,), code (n,))`` pair
    per step (the codes as a sparse matrix)."""
    steps = []
    if sparsity > 1:
        P = P.clone() if is_tensor(P) else P.copy()
        Gt = like_dtype(np.ascontiguousarray(G.T), P)
    for step in range(int(sparsity)):
        if is_tensor(P):
            j = P.argmax(dim=1)
            c = P.gather(1, j[:, None])[:, 0].clamp(min=0.0)
        else:
            j = P.argmax(axis=1)
            c = np.maximum(P[np.arange(P.shape[0]), j], 0.0)
        steps.append((j, c))
        if step + 1 < sparsity:
            P -= c[:, None] * Gt[j]
    return steps


def _code_sums(steps: list, x: Any, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``(CᵀC (m, m), CᵀX (m, d))`` on the host for the sparse codes of :func:`_greedy_codes`."""
    if is_tensor(x):
        CtX = x.new_zeros((m, x.shape[1]))
        CtC = x.new_zeros((m * m,))
        for j, c in steps:
            CtX.index_add_(0, j, c[:, None] * x)
        for j1, c1 in steps:
            for j2, c2 in steps:
                CtC.index_add_(0, j1 * m + j2, c1 * c2)
        return host(CtC).reshape(m, m), host(CtX)
    C = np.zeros((x.shape[0], m), dtype=x.dtype)
    rows = np.arange(x.shape[0])
    for j, c in steps:
        C[rows, j] += c
    return C.T @ C, C.T @ x  # dense: for a few dozen atoms BLAS beats a sparse product


def sparse_atoms(chunks: Callable[[], Iterable[Any]], start: Any, *, n_iter: int = 10, metric: Any = None,
                 sparsity: Any = 1, tol: float = 1e-4, reduce: Reducer | None = None) -> Any:
    """Sparse non-negative dictionary learning, one streamed pass per iteration.

    ``chunks()`` yields rows (numpy or tensors on one device); ``start`` (m, d) are the
    initial atoms (one array for every dictionary, or a list with one per dictionary). Each
    row is coded greedily by up to ``sparsity`` atoms with non-negative codes
    (:func:`_greedy_codes`), and the atoms become the least-squares fit of the rows to their
    codes, ``D = (CᵀC)⁻¹ CᵀX`` (the method of optimal directions: two sums per pass, CᵀC and
    CᵀX). With one code per row this is the code-weighted mean of the rows each atom wins;
    several codes per row can separate features that fire together with correlated amplitudes,
    which one code per row merges into their mixture. Read-outs are ``⟨a_j, x⟩`` (``metric``
    None), or, with ``metric`` the inverse covariance ``Σ⁻¹``, the least-squares amplitudes
    ``a_jᵀΣ⁻¹x / a_jᵀΣ⁻¹a_j`` (an untied read-out that discounts directions the background
    already fills). ``metric`` may be a list: one dictionary per entry, all learned in the same
    passes (one product of the rows with every read-out per pass), and ``sparsity`` then a list
    too, or one value for all. The passes stop once no atom turns by more than ``tol``
    (``1 − |cos|``) or after ``n_iter``. Returns (m, d) unit atoms (an atom no row uses keeps
    its previous value), or a list of them when ``metric`` is a list.
    """
    red = reduce or LocalReducer()
    metrics = list(metric) if isinstance(metric, (list, tuple)) else [metric]
    starts = list(start) if isinstance(start, (list, tuple)) else [start] * len(metrics)
    if len(starts) != len(metrics) or len({a.shape for a in starts}) != 1:
        raise InputError(
            f"`start` must be one (m, d) array, or one per dictionary ({len(metrics)}) all of one shape; "
            f"got {len(starts)} of shapes {sorted({tuple(np.shape(a)) for a in starts})}."
        )
    m, d = starts[0].shape
    n_dict = len(metrics)
    sparsities = list(sparsity) if isinstance(sparsity, (list, tuple)) else [sparsity] * n_dict
    D = [a / np.linalg.norm(a, axis=1, keepdims=True) for a in starts]
    for _ in range(int(n_iter)):
        F = [Dj if M is None else (Dj @ M) / np.sum((Dj @ M) * Dj, axis=1, keepdims=True)
             for Dj, M in zip(D, metrics)]
        G = [Fj @ Dj.T for Fj, Dj in zip(F, D)]
        Fall = np.concatenate(F)
        CtC = np.zeros((n_dict * m, n_dict * m))
        CtX = np.zeros((n_dict * m, d))
        for x in chunks():
            if len(x) == 0:
                continue
            P = x @ like_dtype(Fall.T, x)
            # every dictionary's codes as one sparse matrix (atom j of dictionary i is column
            # i·m + j): one product with the rows for all of them
            steps = [(j + i * m, c) for i in range(n_dict)
                     for j, c in _greedy_codes(P[:, i * m:(i + 1) * m], G[i], sparsities[i])]
            A, B = _code_sums(steps, x, n_dict * m)
            CtC += A
            CtX += B
        CtC, CtX = red.sum(CtC), red.sum(CtX)
        Dn = []
        for j in range(n_dict):
            blk = slice(j * m, (j + 1) * m)
            A, B, new = CtC[blk, blk], CtX[blk], D[j].copy()
            ok = np.diag(A) > 0
            if ok.any():
                try:  # CᵀC is positive definite unless two atoms code the same rows alike
                    sol = np.linalg.solve(A[np.ix_(ok, ok)], B[ok])
                except np.linalg.LinAlgError:
                    sol = np.linalg.lstsq(A[np.ix_(ok, ok)], B[ok], rcond=None)[0]
                nb = np.linalg.norm(sol, axis=1)
                good = nb > 0
                idx = np.flatnonzero(ok)[good]
                new[idx] = sol[good] / nb[good, None]
            Dn.append(new)
        turn = 1.0 - float(np.min(np.abs(np.sum(np.concatenate(Dn) * np.concatenate(D), axis=1))))
        D = Dn
        if turn < tol:
            break
    return D if isinstance(metric, (list, tuple)) else D[0]

