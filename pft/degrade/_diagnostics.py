"""Chain diagnostics: effective sample size, split R-hat, a drift test, and the sampler's
warning and error classes.

All functions take a ``(n_chains, n_draws)`` array of a scalar trace (pft uses the loss) and
are plain numpy; they know nothing about torch or models.
"""

from __future__ import annotations

import math

import numpy as np

from pft.errors import InputError, MixingWarning, SamplerDivergenceError, StepSizeWarning

__all__ = [
    "SamplerDivergenceError",
    "MixingWarning",
    "StepSizeWarning",
    "effective_sample_size",
    "split_rhat",
    "drift_z",
    "mcse_mean",
]


def _as_chains(x, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InputError(
            f"`{name}` must have shape (n_chains, n_draws) or (n_draws,); got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise InputError(f"`{name}` has non-finite values; diagnostics need a finite trace.")
    return arr


def _autocovariance(x: np.ndarray) -> np.ndarray:
    """Biased (divide by N) autocovariance of each row, lags 0..N-1, by FFT."""
    n = x.shape[-1]
    centred = x - x.mean(axis=-1, keepdims=True)
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(centred, n=size, axis=-1)
    acov = np.fft.irfft(f * np.conj(f), n=size, axis=-1)[..., :n]
    return acov / n


def effective_sample_size(x) -> float:
    """Multi-chain effective sample size of the mean of a scalar trace.

    Parameters
    ----------
    x : array_like, shape (n_chains, n_draws) or (n_draws,)
        The trace.

    Returns
    -------
    float
        ``n_chains * n_draws / τ`` with ``τ`` the integrated autocorrelation time.

    Notes
    -----
    Autocorrelations ``ρ_k = 1 - (W - mean_c acov_c(k)) / var⁺`` combine the chains through
    the within-chain variance ``W`` and ``var⁺ = (N-1)/N W + B/N``, so chains that disagree
    lower the ESS. ``τ = -1 + 2 Σ_t P_t`` sums Geyer's pairs ``P_t = ρ_{2t} + ρ_{2t+1}`` up to
    the first negative one, made monotone (initial monotone sequence estimator).

    References
    ----------
    Geyer (1992), "Practical Markov chain Monte Carlo", Statist. Sci. 7.
    Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021), "Rank-normalization, folding, and
    localization: an improved R-hat", Bayesian Analysis 16, section 3.2.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 1000))
    >>> 3000 < effective_sample_size(x) < 5000
    True
    """
    x = _as_chains(x, "x")
    n_chains, n = x.shape
    if n < 4:
        return float("nan")
    acov = _autocovariance(x)
    chain_var = acov[:, 0] * n / (n - 1)
    within = chain_var.mean()
    var_plus = within * (n - 1) / n
    if n_chains > 1:
        var_plus += x.mean(axis=1).var(ddof=1)
    if var_plus <= 0:
        return float("nan")
    rho = 1.0 - (within - acov.mean(axis=0)) / var_plus
    rho[0] = 1.0
    n_pairs = n // 2
    pairs = rho[: 2 * n_pairs].reshape(n_pairs, 2).sum(axis=1)
    negative = np.nonzero(pairs < 0)[0]
    stop = int(negative[0]) if negative.size else n_pairs
    pairs = np.minimum.accumulate(pairs[:stop]) if stop else pairs[:0]
    tau = -1.0 + 2.0 * pairs.sum() if stop else 1.0
    total = n_chains * n
    tau = max(tau, 1.0 / math.log10(max(total, 10)))  # Stan's cap ESS <= N log10 N
    return float(total / tau)


def mcse_mean(x) -> float:
    """Monte-Carlo standard error of the mean of a trace, ``sqrt(var⁺ / ESS)``.

    Parameters
    ----------
    x : array_like, shape (n_chains, n_draws) or (n_draws,)

    Returns
    -------
    float

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 2500))
    >>> 0.008 < mcse_mean(x) < 0.012
    True
    """
    x = _as_chains(x, "x")
    ess = effective_sample_size(x)
    if not np.isfinite(ess) or ess <= 0:
        return float("nan")
    return float(math.sqrt(x.var(ddof=1) / ess))


def split_rhat(x) -> float:
    """Rank-normalised split R-hat (the larger of the bulk and the folded value).

    Parameters
    ----------
    x : array_like, shape (n_chains, n_draws) or (n_draws,)
        Needs at least 4 draws per chain.

    Returns
    -------
    float
        About 1 for mixed chains; values above ~1.05 mean the chains (or the two halves of
        a chain) sample different distributions.

    Notes
    -----
    Each chain is split in half; all draws are replaced by normal scores of their pooled
    ranks, ``z = Φ⁻¹((r - 3/8) / (S + 1/4))``, and ``R̂ = sqrt(((N-1)/N W + B/N) / W)`` is
    computed on ``z`` (bulk) and on the scores of ``|x - median|`` (tails); the larger is
    returned.

    References
    ----------
    Vehtari, Gelman, Simpson, Carpenter, Bürkner (2021), "Rank-normalization, folding, and
    localization: an improved R-hat", Bayesian Analysis 16.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 1000))
    >>> round(split_rhat(x), 2)
    1.0
    >>> split_rhat(x + np.arange(4)[:, None]) > 1.5
    True
    """
    from scipy.special import ndtri
    from scipy.stats import rankdata

    x = _as_chains(x, "x")
    n = x.shape[1]
    if n < 4:
        return float("nan")
    half = n // 2
    split = np.concatenate([x[:, :half], x[:, n - half :]], axis=0)

    def _rhat(y: np.ndarray) -> float:
        m = y.shape[1]
        within = y.var(axis=1, ddof=1).mean()
        between = m * y.mean(axis=1).var(ddof=1)
        if within <= 0:
            return float("nan")
        return float(math.sqrt(((m - 1) / m * within + between / m) / within))

    def _zscale(y: np.ndarray) -> np.ndarray:
        r = rankdata(y, method="average").reshape(y.shape)
        return ndtri((r - 0.375) / (y.size + 0.25))

    bulk = _rhat(_zscale(split))
    tail = _rhat(_zscale(np.abs(split - np.median(split))))
    return float(max(bulk, tail))


def drift_z(x, *, first: float = 0.2, last: float = 0.5) -> float:
    """Geweke-style z-score of a drift in the trace: mean of the first ``first`` fraction of
    each chain against the mean of its last ``last`` fraction, pooled over chains.

    Parameters
    ----------
    x : array_like, shape (n_chains, n_draws) or (n_draws,)
    first, last : float
        Fractions of each chain compared (``first + last < 1``).

    Returns
    -------
    float
        ``Σ_c z_c / sqrt(n_chains)`` with ``z_c = (ā_c - b̄_c) / sqrt(se(ā_c)² + se(b̄_c)²)``
        and standard errors from :func:`mcse_mean`; ``nan`` when a segment has fewer than
        20 draws. Standard normal when the trace is stationary; large positive when the
        loss is still falling.

    References
    ----------
    Geweke (1992), "Evaluating the accuracy of sampling-based approaches to the calculation
    of posterior moments", Bayesian Statistics 4.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 1000))
    >>> abs(drift_z(x)) < 4
    True
    >>> drift_z(x + np.linspace(1, 0, 1000)) > 4
    True
    """
    x = _as_chains(x, "x")
    n_chains, n = x.shape
    na, nb = int(first * n), int(last * n)
    if na < 20 or nb < 20:
        return float("nan")
    zs = []
    for chain in x:
        a, b = chain[:na], chain[n - nb :]
        se2 = mcse_mean(a) ** 2 + mcse_mean(b) ** 2
        if not np.isfinite(se2) or se2 <= 0:
            return float("nan")
        zs.append((a.mean() - b.mean()) / math.sqrt(se2))
    return float(np.sum(zs) / math.sqrt(n_chains))
