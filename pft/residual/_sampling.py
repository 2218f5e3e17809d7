"""Draws from fitted backgrounds, used as token-independent noise models by patch_scores."""

from __future__ import annotations

from typing import Any

import numpy as np

from pft.errors import InputError, NotFittedError

__all__ = ["edgeworth_polynomial", "sample_perturbative"]


def edgeworth_polynomial(kappa3: np.ndarray, kappa4: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``g(y) = κ₃·He₃(y)/6 + κ₄·He₄(y)/24`` for rows of ``y`` (n, r), tensor Hermite polynomials.

    ``κ₃·He₃(y) = κ_ijk y_i y_j y_k − 3 κ_ijj y_i`` and
    ``κ₄·He₄(y) = κ_ijkl y_i y_j y_k y_l − 6 κ_iikl y_k y_l + 3 κ_iikk`` (symmetric tensors).
    """
    r = kappa3.shape[0]
    v3 = np.einsum("ijj->i", kappa3)
    M4 = np.einsum("iikl->kl", kappa4)
    K3 = kappa3.reshape(r * r, r)
    K4 = kappa4.reshape(r * r, r * r)
    yy = (y[:, :, None] * y[:, None, :]).reshape(len(y), r * r)  # rows y⊗y
    # Contractions as matrix products on y⊗y (no (n, r, r, r) intermediate).
    t3 = np.einsum("nk,nk->n", yy @ K3, y) - 3.0 * (y @ v3)
    t4 = np.einsum("na,na->n", yy @ K4, yy) - 6.0 * (yy @ M4.reshape(-1)) + 3.0 * float(np.trace(M4))
    return t3 / 6.0 + t4 / 24.0


def sample_perturbative(background: Any, k: int, *, seed: Any = None, pool: int = 64) -> np.ndarray:
    """(k, d) draws from a fitted :class:`~pft.numeric.PerturbativeBackground`.

    Parameters
    ----------
    background : PerturbativeBackground
        Fitted.
    k : int
        Number of draws.
    seed : int or numpy Generator
    pool : int, default 64
        Gaussian proposals per draw for the importance-resampling step.

    Returns
    -------
    (k, d) ndarray

    Notes
    -----
    In the whitened coordinates ``w`` of the background's Gaussian the density is
    ``φ(w) h(Bw)`` with ``h(y) = [(1 + g(y)/2)² + ε] / [normalizer + ε]`` on the ``r`` corrected
    directions (orthonormal rows of ``B``) and standard normal on their complement. So
    ``w = Bᵀy + (I − BᵀB) z`` with ``z ~ N(0, I)`` and ``y`` drawn from ``φ_r(y) h(y)``.
    ``h`` is a polynomial (unbounded), which rules out plain rejection from ``φ``; ``y`` is drawn
    by sampling–importance–resampling (Rubin 1988): ``pool·k`` proposals from ``φ_r`` are
    resampled with probabilities ``∝ (1 + g/2)² + ε``. The weights have finite variance (``h`` is
    a polynomial, ``φ`` has every moment), so expectations converge to the density's with a
    bias of order ``1/pool``; draws are not exactly independent (a proposal can be picked twice).
    Activations are ``x = μ + V Λ^{1/2} w``.

    Examples
    --------
    >>> import numpy as np
    >>> from pft.numeric import PerturbativeBackground
    >>> rng = np.random.default_rng(0)
    >>> x = np.c_[rng.exponential(size=(20000, 1)), rng.normal(size=(20000, 2))]
    >>> pb = PerturbativeBackground(n_directions=1, seed=0).fit(x)
    >>> s = sample_perturbative(pb, 20000, seed=1)
    >>> s.shape
    (20000, 3)
    >>> u = s[:, 0] - s[:, 0].mean()
    >>> bool(np.mean(u**3) / np.mean(u**2) ** 1.5 > 0.5)   # skewed like the exponential column
    True
    """
    if not hasattr(background, "gaussian_") or not hasattr(background, "kappa3_"):
        raise NotFittedError("`background` is not a fitted PerturbativeBackground; call fit(X) first.")
    if not isinstance(k, (int, np.integer)) or k < 0:
        raise InputError(f"`k` must be a non-negative integer; got {k!r}.")
    if not isinstance(pool, (int, np.integer)) or pool < 1:
        raise InputError(f"`pool` must be a positive integer; got {pool!r}.")
    rng = np.random.default_rng(seed)
    gauss = background.gaussian_
    B = np.asarray(background.basis_)
    r, rank = B.shape
    eps = float(background.floor)
    k = int(k)
    Y = rng.standard_normal((k * int(pool), r))
    g = edgeworth_polynomial(background.kappa3_, background.kappa4_, Y)
    wts = (1.0 + 0.5 * g) ** 2 + eps
    idx = rng.choice(len(Y), size=k, replace=True, p=wts / wts.sum())
    y = Y[idx]
    z = rng.standard_normal((k, rank))
    w = z - (z @ B.T) @ B + y @ B
    return gauss.mean_ + gauss.pattern(w)

