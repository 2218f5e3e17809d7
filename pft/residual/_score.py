"""score(): what an interpretation's residual carries beyond a Gaussian background."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._validate import as_matrix, describe
from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground
from pft.numeric._ica import excess_kurtosis
from pft.numeric._reduce import Reducer, reducer, uniforms
from pft.residual._metrics import anchor_metrics, mardia, participation_ratio, ridge_r2
from pft.residual._report import ResidualReport

__all__ = ["score"]

_LN2 = math.log(2.0)


class _Stages:
    """A tqdm bar over the named stages of a score (a no-op when progress is off)."""

    def __init__(self, names: list[str], progress: bool) -> None:
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=len(names), desc="pft score", unit="stage")

    def __call__(self, name: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(name)
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _offset_of(red: Reducer, n_local: int) -> int:
    """Global index of this rank's first row among rows counted ``n_local`` per rank."""
    return red.offset_and_total(n_local)[0]


def score(
    activations: Any,
    reconstruction: Any,
    *,
    codes: Any = None,
    holdout: float = 0.2,
    seed: int = 0,
    device: Any = None,
    n_directions: int | None = None,
    progress: bool = True,
    distributed: bool = False,
    group: Any = None,
) -> ResidualReport:
    """Score an interpretation by what its residual ``r = activations − reconstruction`` carries.

    Parameters
    ----------
    activations : (N, d) array or tensor
        The model's activations ``x``. Integer, float16 and bfloat16 inputs are upcast; all
        arithmetic is float64.
    reconstruction : (N, d) array or tensor
        The interpretation's reconstruction ``x̂`` (an SAE's output, a circuit's prediction).
    codes : (N, m) array or tensor, optional
        The interpretation's codes (SAE feature activations), for ``l0`` and ``dead_fraction``.
    holdout : float in (0, 1), default 0.2
        Fraction of tokens held out (chosen at random with ``seed``) to evaluate everything fitted.
    seed : int, default 0
    device : str or torch.device, optional
        Where to run the O(N²d) Mardia skewness blocks (e.g. ``"cuda"``); numpy otherwise.
    n_directions : int, optional
        Number of non-Gaussian directions searched, corrected for and reported
        (default ``min(8, d)``).
    progress : bool, default True
        Show a progress bar over the stages.
    distributed : bool, default False
        Each ``torch.distributed`` rank passes its own tokens (in rank order they make up the
        whole set); every statistic is reduced over ``group`` and every rank returns the same
        report, equal to a one-process score of the concatenated tokens. Mardia's skewness
        needs all pairs of held-out tokens, so each rank gathers the held-out whitened rows.
    group : torch.distributed process group, optional

    Returns
    -------
    ResidualReport

    Notes
    -----
    0. Tokens are held out at random, each with probability ``holdout`` (drawn per token index
       from ``seed``, so the split does not depend on how tokens are sharded).
    1. Reconstruction metrics (``mse``, ``fvu``, ...) on all tokens, pooled in float64.
    2. A Gaussian background (Ledoit–Wolf) is fitted to the training residuals; held-out NLL in
       bits under it and under an isotropic Gaussian of the same total variance.
    3. A :class:`~pft.numeric.PerturbativeBackground` (basis ``"ica"``) is fitted on the
       training split: FastICA directions of extreme kurtosis from one half of it, cumulants
       from a quarter, their overall amplitude by maximum likelihood on the last quarter.
       ``nongaussian_bits`` is its mean held-out log-likelihood gain over the Gaussian. Since no
       row that shaped the correction is scored, noise cannot read as structure in either
       direction (a Gaussian residual gets an amplitude near 0 and a gain within its error of 0).
       The standard error is ``std_t(gain_t)/√N_test``: held-out tokens' gains are independent
       given the fit, and their variance is finite (the gain is the log of a ratio of
       polynomials, growing only like ``log‖r‖``). A few tokens carrying a missed feature make
       the gains strongly skewed, and the sample variance includes exactly that; nothing is
       tuned. Tokens are assumed exchangeable: for strongly correlated tokens (long documents)
       the SE is optimistic — hold out whole documents instead.
    4. Mardia's statistics on the held-out residual, whitened with its own covariance.
    5. The directions' held-out excess kurtosis and its null z-score ``κ/√(24/N_test)``.
    6. Ridge regressions of ``r`` on ``x`` and on ``x̂`` (held-out R²).

    Examples
    --------
    >>> import numpy as np
    >>> from pft.toy import superposition, interpretations
    >>> data = superposition(6000, d=16, n_features=48, seed=0)
    >>> interps = interpretations(data, fvu=0.2, n_missing=2, seed=0)
    >>> good = score(data.activations, interps["oracle+noise"].reconstruction, progress=False)
    >>> bad = score(data.activations, interps["missing"].reconstruction, progress=False)
    >>> round(good.fvu, 3), round(bad.fvu, 3)
    (0.2, 0.2)
    >>> bool(bad.mardia_kurtosis_z > 10 > abs(good.mardia_kurtosis_z))
    True
    >>> missed = data.features[list(interps["missing"].missing)]
    >>> np.round(np.abs(bad.nongaussian_directions[:2] @ missed.T).max(axis=0), 2)
    array([1., 1.])
    """
    x = as_matrix(activations, "activations")
    xhat = as_matrix(reconstruction, "reconstruction")
    if xhat.shape != x.shape:
        raise InputError(
            f"`reconstruction` has shape {xhat.shape} but `activations` has shape {x.shape}; "
            "they must match token for token."
        )
    N_local, d = x.shape
    if not (isinstance(holdout, (float, int)) and 0 < holdout < 1):
        raise InputError(f"`holdout` must be a fraction in (0, 1); got {holdout!r}.")
    if n_directions is None:
        n_directions = min(8, d)
    if not isinstance(n_directions, (int, np.integer)) or not 1 <= n_directions <= d:
        raise InputError(f"`n_directions` must be an integer in [1, {d}]; got {n_directions!r}.")
    red = reducer(distributed, group)
    offset, N = red.offset_and_total(N_local)
    # Held-out tokens are drawn per global token index: the split does not depend on sharding.
    te_mask = uniforms(offset, N_local, seed, 0) < holdout
    n_test = int(red.sum(te_mask.sum()))
    n_train = N - n_test
    if n_test < 3 or n_train < 16:
        raise InputError(
            f"`activations` has {N} tokens; with holdout={holdout} that leaves {n_train} to fit and "
            f"{n_test} to test (need ≥ 16 and ≥ 3). Pass more tokens."
        )
    l0 = dead = math.nan
    if codes is not None:
        c = as_matrix(codes, "codes")
        if c.shape[0] != N_local:
            raise InputError(f"`codes` has {c.shape[0]} rows but `activations` has {N_local} ({describe(codes)}).")
        nz = c != 0
        l0 = float(red.sum(nz.sum())) / N
        dead = float(np.mean(red.sum(nz.any(axis=0).astype(float)) == 0))

    stages = _Stages(["metrics", "gaussian", "perturbative", "mardia", "predictability"], progress)
    try:
        anchors = anchor_metrics(x, xhat, reduce=red)
        r = x - xhat
        stages("metrics")

        r_tr, r_te = r[~te_mask], r[te_mask]
        m_tr = red.moments(Moments.from_data_or_empty(r_tr, d, name="residual"))
        if not np.any(m_tr.comoment):
            raise InputError(
                "the residual `activations − reconstruction` has zero variance on the training split "
                "(a constant offset or an exact reconstruction): there is nothing to score beyond `mse`."
            )
        gauss = GaussianBackground(shrinkage="ledoit-wolf").fit(m_tr)
        # shrinkage only moves eigenvalues: (1 − s)λ + sμ, so the sample spectrum is recovered exactly
        s_, mu_ = gauss.shrinkage_, float(np.trace(gauss.covariance_)) / d
        spectrum = np.clip((gauss.eigenvalues_ - s_ * mu_) / (1.0 - s_), 0.0, None) if s_ < 1 else np.zeros(d)
        var = float(np.trace(m_tr.covariance())) / d
        diff = r_te - m_tr.mean
        sums = red.sum([np.sum(gauss.logpdf(r_te)) if len(r_te) else 0.0, np.einsum("ij,ij->", diff, diff)])
        nll_g = -float(sums[0]) / n_test / _LN2
        nll_iso = 0.5 * (d * math.log(2 * math.pi * var) + float(sums[1]) / n_test / var) / _LN2
        stages("gaussian")

        pert = PerturbativeBackground(n_directions=int(n_directions), basis="ica", seed=seed, gaussian=gauss)
        tr_offset = _offset_of(red, len(r_tr))
        pert._fit(r_tr, red, tr_offset)
        gain = pert.gain(r_te) / _LN2 if len(r_te) else np.zeros(0)
        ng_bits = float(red.sum(gain.sum())) / n_test
        ng_se = math.sqrt(float(red.sum(np.sum((gain - ng_bits) ** 2))) / (n_test - 1) / n_test)
        y_te = gauss.whiten(r_te) @ pert.basis_.T if len(r_te) else np.zeros((0, pert.basis_.shape[0]))
        kurt = excess_kurtosis(y_te, reduce=red)
        z = kurt / math.sqrt(24.0 / n_test)
        order = np.argsort(-np.abs(z))
        stages("perturbative")

        mar = mardia(r_te, device=device, progress=progress, reduce=red)
        stages("mardia")

        lp_x = ridge_r2(x[~te_mask], r_tr, x[te_mask], r_te, seed=seed, reduce=red, offset=tr_offset)
        lp_xhat = ridge_r2(xhat[~te_mask], r_tr, xhat[te_mask], r_te, seed=seed, reduce=red, offset=tr_offset)
        stages("predictability")
    finally:
        stages.close()

    return ResidualReport(
        **anchors,
        gaussian_nll_bits=nll_g,
        isotropic_nll_bits=nll_iso,
        correlation_bits=nll_iso - nll_g,
        effective_rank=participation_ratio(spectrum),
        mardia_skewness=mar["mardia_skewness"],
        mardia_kurtosis=mar["mardia_kurtosis"],
        mardia_skewness_null=mar["mardia_skewness_null"],
        mardia_kurtosis_null=mar["mardia_kurtosis_null"],
        mardia_skewness_z=mar["mardia_skewness_z"],
        mardia_kurtosis_z=mar["mardia_kurtosis_z"],
        nongaussian_bits=ng_bits,
        nongaussian_bits_se=ng_se,
        nongaussian_directions=pert.directions_[order],
        nongaussian_kurtosis=kurt[order],
        nongaussian_z=z[order],
        linear_predictable_fraction=lp_x,
        linear_predictable_from_reconstruction=lp_xhat,
        spectrum=spectrum,
        n_tokens=N,
        n_train=n_train,
        n_test=n_test,
        d=d,
        holdout=float(holdout),
        seed=int(seed),
        shrinkage=gauss.shrinkage_,
        l0=l0,
        dead_fraction=dead,
    )
