"""score(): what an interpretation's residual carries beyond a Gaussian background."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._validate import as_matrix, describe
from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground
from pft.numeric._ica import excess_kurtosis
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

    Returns
    -------
    ResidualReport

    Notes
    -----
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
    N, d = x.shape
    if not (isinstance(holdout, (float, int)) and 0 < holdout < 1):
        raise InputError(f"`holdout` must be a fraction in (0, 1); got {holdout!r}.")
    n_test = int(round(holdout * N))
    n_train = N - n_test
    if n_test < 3 or n_train < 8:
        raise InputError(
            f"`activations` has {N} tokens; with holdout={holdout} that leaves {n_train} to fit and "
            f"{n_test} to test (need ≥ 8 and ≥ 3). Pass more tokens."
        )
    if n_directions is None:
        n_directions = min(8, d)
    if not isinstance(n_directions, (int, np.integer)) or not 1 <= n_directions <= d:
        raise InputError(f"`n_directions` must be an integer in [1, {d}]; got {n_directions!r}.")
    l0 = dead = math.nan
    if codes is not None:
        c = as_matrix(codes, "codes")
        if c.shape[0] != N:
            raise InputError(f"`codes` has {c.shape[0]} rows but `activations` has {N} ({describe(codes)}).")
        nz = c != 0
        l0 = float(nz.sum(axis=1).mean())
        dead = float(np.mean(~nz.any(axis=0)))

    stages = _Stages(["metrics", "gaussian", "perturbative", "mardia", "predictability"], progress)
    try:
        anchors = anchor_metrics(x, xhat)
        r = x - xhat
        stages("metrics")

        perm = np.random.default_rng(seed).permutation(N)
        tr, te = np.sort(perm[n_test:]), np.sort(perm[:n_test])
        r_tr, r_te = r[tr], r[te]

        m_tr = Moments.from_array(r_tr, name="residual")
        if not np.any(m_tr.comoment):
            raise InputError(
                "the residual `activations − reconstruction` has zero variance on the training split "
                "(a constant offset or an exact reconstruction): there is nothing to score beyond `mse`."
            )
        gauss = GaussianBackground(shrinkage="ledoit-wolf").fit(m_tr)
        # shrinkage only moves eigenvalues: (1 − s)λ + sμ, so the sample spectrum is recovered exactly
        s_, mu_ = gauss.shrinkage_, float(np.trace(gauss.covariance_)) / d
        spectrum = np.clip((gauss.eigenvalues_ - s_ * mu_) / (1.0 - s_), 0.0, None) if s_ < 1 else np.zeros(d)
        nll_g = -float(np.mean(gauss.logpdf(r_te))) / _LN2
        var = float(np.trace(m_tr.covariance())) / d
        diff = r_te - m_tr.mean
        nll_iso = 0.5 * float(np.mean(d * math.log(2 * math.pi * var) + np.einsum("ij,ij->i", diff, diff) / var)) / _LN2
        stages("gaussian")

        pert = PerturbativeBackground(n_directions=int(n_directions), basis="ica", seed=seed, gaussian=gauss).fit(r_tr)
        gain = pert.gain(r_te) / _LN2
        ng_bits = float(np.mean(gain))
        ng_se = float(np.std(gain, ddof=1) / math.sqrt(n_test))
        y_te = gauss.whiten(r_te) @ pert.basis_.T
        kurt = excess_kurtosis(y_te)
        z = kurt / math.sqrt(24.0 / n_test)
        order = np.argsort(-np.abs(z))
        stages("perturbative")

        mar = mardia(r_te, device=device, progress=progress)
        stages("mardia")

        lp_x = ridge_r2(x[tr], r_tr, x[te], r_te, seed=seed)
        lp_xhat = ridge_r2(xhat[tr], r_tr, xhat[te], r_te, seed=seed)
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
