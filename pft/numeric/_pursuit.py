"""Directions of missed features in a residual: sparse coding and a skew-and-kurtosis pursuit,
selected and scored on rows that did not shape them.

Two sources of candidate directions, then one held-out selection:

* **Sparse coding** of the rows as they are (not centred: a missed feature's codes are
  non-negative, so its mean lies along its own direction, and centring would pull every atom
  towards minus the mean of all of them): two dictionaries of ``n_atoms`` unit atoms, each row
  coded greedily with non-negative codes, and the atoms refitted by least squares to their codes,
  ``D = (CᵀC)⁻¹ CᵀX`` (the method of optimal directions). One dictionary reads rows with its own
  atoms and gives each row up to three codes: features that fire together (SAE latents often
  do) then keep apart, where a code-weighted mean of the rows one atom wins converges to their
  mixture. The other reads them by least squares in the background's metric ``Σ⁻¹``
  (``a_jᵀΣ⁻¹x / a_jᵀΣ⁻¹a_j``, discounting directions the background already fills) with one
  code per row. Both start from the top principal directions with both signs and need no
  tails: they find frequent, high-energy features whose projections are barely non-Gaussian.
  They iterate on an in-memory sample of the rows (half of the pursuits' sample; 10 times, the
  three-code dictionary 40 more: two features that fire together start as one atom, their
  mixture, and separate slowly), then refine on every row in streamed passes (two sums per pass,
  CᵀC and CᵀX), so they are fitted on all rows, chunk by chunk, distributed and on a device
  like the other passes.
* **A skew-and-kurtosis pursuit** in whitened coordinates: for each start ``u`` the one-unit
  fixed point ``u ← κ₃ E[g₂(y) w] + (κ₄/3)(E[g₃(y) w] − 3u)``, ``y = uᵀw``, normalised, which
  climbs Comon's negentropy ``J = κ₃²/12 + κ₄²/48`` (gradient ``κ₃/2 E[y² w] + κ₄/6 E[y³ w]``).
  Sparse-code non-negativity makes a missed feature's projection skewed first, heavy-tailed
  second; the third cumulant sees that, a kurtosis-only search does not. Two contrasts are run:
  ``g`` on ``y`` clipped at ±``clip`` (bounded influence: no single token can pull a direction
  onto itself, which in high dimension is where plain moment contrasts converge) from the top
  principal directions and the sparse-coding atoms; and unclipped from the rows with the largest
  whitened norm (rare, strong features live in the tails).
* **Held-out selection**: every candidate's skewness, excess kurtosis and variance share are
  measured on rows that neither sparse coding nor the pursuit saw (each row projected on the
  candidates' filters: ``d`` multiply-adds per candidate, no whitening); candidates are taken in turn
  from two orders — held-out negentropy ``J = s²/12 + κ²/48`` (sharp, rare features) among those
  with more than twice an average direction's variance, and variance share among the
  significantly non-Gaussian sparse-coding atoms (large, frequent features, which are barely
  non-Gaussian; a pursuit optimum may mix two features that fire together, and then has more
  variance than either) — skipping any within |cos| 0.5 of the span of those already taken, and the
  ``k`` kept are orthonormalised in whitened space (Gram–Schmidt, in the order taken) for the
  perturbative correction.

The search's products (sparse coding and the pursuits) run in float32: they are its whole cost,
and what they return is a candidate, scored in float64 on held-out rows; every sum they feed is
accumulated in float64 across chunks and ranks. (float32 against float64 products moved no
reported direction of the real-model case studies by more than 0.001 in |cos|.)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np

from pft._device import host, is_tensor, like, like_dtype, single
from pft.distributed import LocalReducer, Reducer
from pft.errors import InputError
from pft.numeric._ica import sym_decorrelate
from pft.numeric._sparse import sparse_atoms
from pft.numeric.projections import project_moments

__all__ = ["search_and_select", "pursuit", "tail_starts", "select", "gram_schmidt", "rank_key", "selection_keys"]

_DUPLICATE = 0.5  # |cos| in whitened space with the span of kept directions above which a candidate is dropped


def pursuit(w: Any, start: np.ndarray, *, clip: Any = 4.0, max_iter: int = 30, tol: float = 1e-6,
            symmetric: Any = False, reduce: Reducer | None = None) -> np.ndarray:
    """The one-unit skew-and-kurtosis fixed point from each row of ``start`` (m, r) on whitened
    rows ``w`` (N, r): independently, or with ``symmetric`` kept orthonormal after every step
    (``W ← (WWᵀ)^{-1/2} W``, as symmetric FastICA does, so that units cannot merge). Returns (m, r)
    unit rows (see the module docstring).

    ``clip`` (a value, or None for no clipping) and ``symmetric`` may also be given per start,
    as a sequence of m values: the starts with ``symmetric`` true are decorrelated among
    themselves, and every start iterates with its own contrast, as if each group ran alone but
    in one product with ``w`` per step (skinny products run far below the machine's peak)."""
    red = reduce or LocalReducer()
    n = float(red.sum(w.shape[0]))
    U = start / np.linalg.norm(start, axis=1, keepdims=True)
    m = len(U)
    clips = np.asarray([np.inf if c is None else float(c) for c in (clip if np.ndim(clip) else [clip] * m)])
    sym = np.asarray(symmetric if np.ndim(symmetric) else [symmetric] * m, dtype=bool)
    if clips.shape != (m,) or sym.shape != (m,):
        raise InputError(
            f"`clip` and `symmetric` must each be one value or one per start ({m}); "
            f"got {clips.size} clip values and {sym.size} symmetric values."
        )
    bound = None if np.all(np.isinf(clips)) else like_dtype(clips, w)
    for _ in range(int(max_iter)):
        y = w @ like_dtype(U.T, w)
        if bound is not None:
            y = y.clamp(-bound, bound) if is_tensor(y) else np.clip(y, -bound, bound)
        y2 = y * y
        y3 = y2 * y
        k3 = red.sum(host(y3.sum(0))) / n
        k4 = red.sum(host((y2 * y2).sum(0))) / n - 3.0
        # κ₃ E[y² w] + (κ₄/3)(E[y³ w] − 3u) as one product: E[(κ₃ y² + (κ₄/3) y³) w] − κ₄ u
        g = y2 * like_dtype(k3, y) + y3 * like_dtype(k4 / 3.0, y)
        Un = red.sum(host(g.T @ w)) / n - k4[:, None] * U
        nn = np.linalg.norm(Un, axis=1, keepdims=True)
        Un = np.where(nn > 0, Un / np.where(nn > 0, nn, 1.0), U)
        if sym.any():
            Un[sym] = sym_decorrelate(Un[sym])
        change = 1.0 - float(np.min(np.abs(np.sum(Un * U, axis=1))))
        U = Un
        if change < tol:
            break
    return U


def tail_starts(w: Any, m: int, *, reduce: Reducer | None = None) -> np.ndarray:
    """Up to ``m`` unit rows of ``w`` with the largest norms, skipping any within |cos| ≥ 0.5 of
    one already taken (on several ranks, each offers its own largest rows and all thin the union
    the same way)."""
    red = reduce or LocalReducer()
    nrm = host((w * w).sum(1)) ** 0.5
    order = np.argsort(-nrm, kind="stable")[: 8 * m]
    rows = host(w)[order] if not is_tensor(w) else host(w[like(order.astype(np.int64), w).long()])
    rows = red.gather_rows(rows.reshape(-1, w.shape[1]))
    return _thin(rows, np.linalg.norm(rows, axis=1), m)


def _thin(rows: np.ndarray, norms: np.ndarray, m: int) -> np.ndarray:
    out: list[np.ndarray] = []
    for i in np.argsort(-norms):
        v = rows[i] / max(norms[i], np.finfo(float).tiny)
        if all(abs(float(v @ s)) < 0.5 for s in out):
            out.append(v)
        if len(out) >= m:
            break
    return np.array(out) if out else np.zeros((0, rows.shape[1]))


def rank_key(stats: dict[str, np.ndarray], share: np.ndarray) -> np.ndarray:
    """The order in which reports list directions: ``share · J``, the residual-variance share of
    the direction times its held-out negentropy estimate ``J = s²/12 + κ²/48 − 1/n`` (Comon;
    ``1/n`` is about its Gaussian-null mean, so noise scores ≈ 0)."""
    s, k, n = stats["skewness"], stats["kurtosis"], stats["n"]
    return share * (s * s / 12.0 + k * k / 48.0 - 1.0 / n)


def selection_keys(stats: dict[str, np.ndarray], share: np.ndarray, n_candidates: int, *,
                   rank: int | None = None, atoms: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The two orders :func:`select` alternates between, in this order.

    * Held-out negentropy ``J = s²/12 + κ²/48`` (sharp missed features: rare, heavy-tailed),
      among the candidates whose variance share is above twice that of an average direction,
      ``2/rank`` (a missed feature adds its variance to the background's; a direction of
      below-average variance with a few extreme tokens is a sharp corner of the residual, not a
      feature). The others follow, in the same order.
    * Variance share (large features: frequent, high-energy, barely non-Gaussian) among the
      sparse-coding atoms (``atoms``, a boolean mask; all candidates when None) whose held-out
      Jarque–Bera statistic ``z_s² + z_κ²`` is significant at 0.001 after a Bonferroni
      correction over the candidates. Atoms are fitted to explain the rows by non-negative codes;
      a pursuit optimum maximises non-Gaussianity, and where that is a mixture of two features
      that fire together it has more variance than either, so taking it by variance first would
      block both (they lie within |cos| 0.5 of it). Insignificant candidates and non-atoms come
      last in this order.
    """
    s, k = stats["skewness"], stats["kurtosis"]
    jb = stats["skewness_z"] ** 2 + stats["kurtosis_z"] ** 2
    # chi² with 2 degrees of freedom: P(JB > t) = exp(−t/2)
    t = -2.0 * math.log(1e-3 / max(1, int(n_candidates)))
    J = s * s / 12.0 + k * k / 48.0
    if rank is not None:
        J = np.where(share > 2.0 / rank, J, -1.0 / (1.0 + J))
    large = (jb > t) if atoms is None else (jb > t) & np.asarray(atoms, dtype=bool)
    return J, np.where(large, share, -1.0 / (1.0 + share))


def select(C: np.ndarray, keys: Any, k: int) -> np.ndarray:
    """Indices of at most ``k`` candidates (rows of C, unit, whitened), taken in turn from each
    order in ``keys`` (one array, or several to alternate between), best first, skipping any
    within ``|cos| ≥ 0.5`` of the span of those already kept (a duplicate, or a mixture of kept
    directions)."""
    keys = [keys] if isinstance(keys, np.ndarray) else list(keys)
    orders = [list(np.argsort(-kk, kind="stable")) for kk in keys]
    kept: list[int] = []
    Q = np.zeros((0, C.shape[1]))
    floor = math.sqrt(1.0 - _DUPLICATE**2)
    turn = 0
    while len(kept) < k and any(orders):
        order = orders[turn % len(orders)]
        turn += 1
        while order:
            i = order.pop(0)
            if i in kept:
                continue
            v = C[i] - Q.T @ (Q @ C[i])
            nv = float(np.linalg.norm(v))
            if nv > floor:
                kept.append(int(i))
                Q = np.vstack([Q, v / nv])
                break
    return np.array(kept, dtype=np.int64)


def gram_schmidt(U: np.ndarray) -> np.ndarray:
    """Orthonormal rows, each the previous ones' complement of the original row (order kept)."""
    Q = np.zeros_like(U)
    for i, u in enumerate(U):
        v = u - Q[:i].T @ (Q[:i] @ u)
        v = v - Q[:i].T @ (Q[:i] @ v)
        Q[i] = v / max(np.linalg.norm(v), np.finfo(float).tiny)
    return Q


def search_and_select(
    search_raw: Callable[[], Iterable[Any]],
    sample_raw: Any,
    select_raw: Callable[[], Iterable[Any]],
    mean: np.ndarray,
    eigenvectors: np.ndarray,
    eigenvalues: np.ndarray,
    k: int,
    *,
    n_atoms: int | None = None,
    n_iter: int | tuple[int, int] = (50, 10),
    n_refine: int = 2,
    clip: float = 4.0,
    max_iter: int = 10,
    sample_half: Any = None,
    reduce: Reducer | None = None,
) -> dict[str, np.ndarray]:
    """The search on one part of the rows and the selection on another.

    ``search_raw()`` yields the (uncentred) rows of the search part; ``sample_raw`` holds a
    random sample of them in memory (whitened here for the pursuits). Sparse coding
    runs ``n_iter`` iterations on the sample (one number, or one for the three-code Euclidean
    dictionary and one for the one-code ``Σ⁻¹`` dictionary), then ``n_refine`` streamed passes
    over every search row (each atom refitted by least squares to the codes of all search rows);
    the pursuits run on the whitened sample. ``sample_half``, a boolean mask of the sample's
    rows, is the part on which sparse coding iterates (None: the whole sample; the streamed
    passes then fit the atoms to every search row); choose it by global row index, so that
    several ranks together hold the rows one process would. ``select_raw()`` yields the
    (uncentred) rows of the selection part, which are only ever projected on the candidates'
    filters. ``mean`` (d,),
    ``eigenvectors`` (d, r) and ``eigenvalues`` (r,) are the whitening's:
    ``w = Λ^{-1/2} Vᵀ (x − μ)``. Returns the orthonormal whitened basis (k', r) in rank order,
    every candidate, their held-out statistics and sources.
    """
    red = reduce or LocalReducer()
    # the search's products run in float32 (see the module note); raw rows far outside float32's
    # range are scaled by a power of two first (atoms are unit vectors: scaling the rows leaves
    # them unchanged), whitened rows are of order one
    rms = math.sqrt(float(np.sum(eigenvalues)) + float(mean @ mean))
    scale = 1.0
    if rms > 0 and not 2.0**-40 <= rms <= 2.0**40:
        scale = 2.0 ** -round(math.log2(rms))
    r = len(eigenvalues)
    V, lam = eigenvectors[:, :r], eigenvalues[:r]
    centred = single(sample_raw - like(mean, sample_raw), scale)
    sample_white = centred @ like_dtype((V / np.sqrt(lam)) / scale, centred)
    sample_raw = single(sample_raw, scale)
    m = int(n_atoms) if n_atoms is not None else 2 * k
    half = max(1, min(r, (m + 1) // 2))
    start = np.concatenate([V[:, :half].T, -V[:, :half].T])
    metric = (V / lam) @ V.T
    # Euclidean read-outs with up to three codes per row (features that fire together keep
    # apart), least-squares read-outs in the background's metric with one (see the module note)
    kinds = dict(metric=[None, metric], sparsity=[3, 1], reduce=red)
    n_three, n_one = (n_iter, n_iter) if isinstance(n_iter, (int, np.integer)) else n_iter
    core = sample_raw if sample_half is None else sample_raw[like(np.asarray(sample_half, dtype=bool), sample_raw)]
    atoms = sparse_atoms(lambda: [core], start, n_iter=min(n_three, n_one), **kinds)
    # the three-code dictionary iterates on alone: co-firing features separate slowly (see above)
    if n_three > n_one:
        atoms[0] = sparse_atoms(lambda: [core], atoms[0], n_iter=n_three - n_one, sparsity=3, reduce=red)
    elif n_one > n_three:
        atoms[1] = sparse_atoms(lambda: [core], atoms[1], n_iter=n_one - n_three, metric=metric, reduce=red)
    if n_refine > 0:
        atoms = sparse_atoms(lambda: (single(x, scale) for x in search_raw()), atoms, n_iter=n_refine, **kinds)
    atoms = np.concatenate(atoms)
    U_atoms = (atoms @ V) / np.sqrt(lam)  # the whitened direction whose pattern is the atom
    U_atoms /= np.linalg.norm(U_atoms, axis=1, keepdims=True)
    pcs = np.eye(r)[: min(r, k)]
    clip_starts = np.concatenate([pcs, U_atoms[: len(U_atoms) // 2]])
    tails = tail_starts(sample_white, k, reduce=red)
    m_sym = min(r, 2 * k + 4)
    starts = np.concatenate([tails, np.eye(r)])
    starts = sym_decorrelate(starts[select(starts, np.arange(len(starts), 0, -1.0), m_sym)])
    # both pursuits in one product per step: clipped and independent from principal directions
    # and atoms; unclipped and symmetric from the heaviest rows
    n_clip = len(clip_starts)
    both = pursuit(sample_white, np.concatenate([clip_starts, starts]), clip=[clip] * n_clip + [None] * len(starts),
                   symmetric=[False] * n_clip + [True] * len(starts), max_iter=max_iter, reduce=red)
    U_clip, U_tail = both[:n_clip], both[n_clip:]
    C = np.concatenate([U_atoms, U_clip, U_tail])
    source = np.array(["sparse"] * len(U_atoms) + ["pursuit"] * len(U_clip) + ["tail"] * len(U_tail))
    stats = project_moments(select_raw, C @ (V / np.sqrt(lam)).T, mean, red)
    share = (C * C) @ lam / float(np.sum(lam))
    key = rank_key(stats, share)
    idx = select(C, selection_keys(stats, share, len(C), rank=r, atoms=source == "sparse"), k)
    return {"basis": gram_schmidt(C[idx]), "selected": C[idx], "candidates": C, "chosen": idx, "source": source,
            "share": share, "key": key, **{f"candidate_{n}": v for n, v in stats.items() if n != "n"}}


