"""score(): what an interpretation's residual carries beyond a Gaussian background."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._device import as_device_matrix, concat, host, like, resolve_device, rowsq
from pft._validate import as_matrix, describe
from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground
from pft.numeric._pursuit import HeldOutMoments
from pft.numeric._reduce import reducer, uniforms
from pft.residual._metrics import AnchorSums, RidgeSums, mardia, participation_ratio
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


# Mardia's skewness sums over all pairs of held-out tokens: at most this many flops (rows² · d);
# beyond it a random subset of the held-out tokens is used.
_MARDIA_FLOPS = 2e11


def _as_rows(a: Any, name: str) -> Any:
    """Something with .shape that slices by rows (arrays, memmaps, tensors); lists become arrays."""
    if hasattr(a, "shape") and hasattr(a, "__getitem__"):
        return a
    try:
        return np.asarray(a)
    except Exception as exc:
        raise InputError(f"`{name}` could not be read as an array ({describe(a)}): {exc}") from exc


def _rows_note(lo: int, hi: int, n: int) -> str:
    return "" if (lo, hi) == (0, n) else f" in rows {lo}–{hi - 1}"


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
    chunk_rows: int = 65536,
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
        Where every pass runs (e.g. ``"cuda"``, ``"cuda:1"``, ``"cpu"`` for torch on the host):
        each chunk of rows is copied there in its own dtype, upcast to float64 and checked
        there, and all O(N d²) products (moments, whitening, the direction search, ridge cross-products,
        Mardia's O(N² d) blocks) run there; only d-vectors, d × d sums and per-token numbers come
        back to the host, where they are accumulated in float64. Default: numpy on the host.
        The two give the same report up to rounding.
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
    chunk_rows : int, default 65536
        Rows processed at a time. Inputs are read one chunk at a time (pass a ``numpy.memmap``,
        e.g. from :func:`pft.io.load_array`, to score files larger than memory): memory stays
        O(d² + chunk_rows·d) plus the direction search's sample (at most ``max(2048, 2²¹/d)`` rows) and
        Mardia's (at most ``√(2·10¹¹/d)`` held-out rows).

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
    3. A :class:`~pft.numeric.PerturbativeBackground` (basis ``"features"``) is fitted on the
       training split: candidate missed features (sparse-coding atoms of the residual and
       skew-and-kurtosis pursuit optima, :func:`pft.numeric.feature_directions`) searched on
       three eighths of it and selected on one eighth, cumulants from a quarter, their overall
       amplitude by maximum likelihood on the last quarter.
       ``nongaussian_bits`` is its mean held-out log-likelihood gain over the Gaussian. Since no
       row that shaped the correction is scored, noise cannot read as structure in either
       direction (a Gaussian residual gets an amplitude near 0 and a gain within its error of 0).
       The standard error is ``std_t(gain_t)/√N_test``: held-out tokens' gains are independent
       given the fit, and their variance is finite (the gain is the log of a ratio of
       polynomials, growing only like ``log‖r‖``). A few tokens carrying a missed feature make
       the gains strongly skewed, and the sample variance includes exactly that; nothing is
       tuned. Tokens are assumed exchangeable: for strongly correlated tokens (long documents)
       the SE is optimistic — hold out whole documents instead.
    4. Mardia's statistics on the held-out residual, whitened with its own covariance (on a
       random subset of at most ``√(2·10¹¹/d)`` held-out tokens: ``b₁`` costs O(N²d)).
    5. The selected directions' held-out skewness and excess kurtosis with their null z-scores
       ``s/√(6/N_test)``, ``κ/√(24/N_test)``, and their share of the residual variance; they are
       ordered by ``|κ z-score|``, most significant first.
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
    x, xhat = _as_rows(activations, "activations"), _as_rows(reconstruction, "reconstruction")
    if tuple(xhat.shape) != tuple(x.shape):
        raise InputError(
            f"`reconstruction` has shape {tuple(xhat.shape)} but `activations` has shape {tuple(x.shape)}; "
            "they must match token for token."
        )
    if len(x.shape) != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        as_matrix(x, "activations")  # raises the precise message (1-D, empty, ...)
    N_local, d = int(x.shape[0]), int(x.shape[1])
    if not (isinstance(holdout, (float, int)) and 0 < holdout < 1):
        raise InputError(f"`holdout` must be a fraction in (0, 1); got {holdout!r}.")
    if n_directions is None:
        n_directions = min(8, d)
    if not isinstance(n_directions, (int, np.integer)) or not 1 <= n_directions <= d:
        raise InputError(f"`n_directions` must be an integer in [1, {d}]; got {n_directions!r}.")
    if not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise InputError(f"`chunk_rows` must be a positive integer; got {chunk_rows!r}.")
    c = None
    if codes is not None:
        c = _as_rows(codes, "codes")
        if len(c.shape) != 2 or c.shape[0] != N_local:
            raise InputError(f"`codes` has {c.shape[0]} rows but `activations` has {N_local} ({describe(codes)}).")
    dev = resolve_device(device)
    red = reducer(distributed, group)
    offset, N = red.offset_and_total(N_local)
    # Held-out tokens are drawn per global token index: the split does not depend on sharding.
    bounds = [(lo, min(N_local, lo + int(chunk_rows))) for lo in range(0, N_local, int(chunk_rows))]
    te_masks = [uniforms(offset + lo, hi - lo, seed, 0) < holdout for lo, hi in bounds]
    n_te_local = int(sum(m.sum() for m in te_masks))
    n_test = int(red.sum(n_te_local))
    n_train = N - n_test
    if n_test < 3 or n_train < 16:
        raise InputError(
            f"`activations` has {N} tokens; with holdout={holdout} that leaves {n_train} to fit and "
            f"{n_test} to test (need ≥ 16 and ≥ 3). Pass more tokens."
        )
    tr_offset = red.offset_and_total(N_local - n_te_local)[0]
    te_offset = red.offset_and_total(n_te_local)[0]

    def rows(a: Any, lo: int, hi: int, name: str) -> Any:
        where = {"row_offset": offset + lo, "of_rows": _rows_note(lo, hi, N_local)}
        return as_matrix(a[lo:hi], name, **where) if dev is None else as_device_matrix(a[lo:hi], name, dev, **where)

    def chunks():
        """(x, x̂, held-out mask, global train index of the first train row, same for test):
        numpy on the host, or float64 tensors on ``device``."""
        tr_seen = te_seen = 0
        for (lo, hi), te in zip(bounds, te_masks):
            xc, xh = rows(x, lo, hi, "activations"), rows(xhat, lo, hi, "reconstruction")
            yield xc, xh, like(te, xc), tr_offset + tr_seen, te_offset + te_seen
            tr_seen += int((~te).sum())
            te_seen += int(te.sum())

    stages = _Stages(["metrics", "gaussian", "perturbative", "held-out", "mardia", "predictability"], progress)
    try:
        # pass 1: reconstruction sums, training moments, codes
        anchors = AnchorSums(d)
        m_tr = Moments(d=d)
        l0 = dead = math.nan
        nz_rows = 0.0
        active = np.zeros(c.shape[1], dtype=bool) if c is not None else None
        for (lo, hi), (xc, xh, te, _, _) in zip(bounds, chunks()):
            anchors.add(xc, xh)
            m_tr = m_tr.merge(Moments.from_data_or_empty((xc - xh)[~te], d))
            if c is not None:
                nz = as_matrix(c[lo:hi], "codes", row_offset=offset + lo) != 0
                nz_rows += nz.sum()
                active |= nz.any(axis=0)
        if c is not None:
            l0 = float(red.sum(nz_rows)) / N
            dead = float(np.mean(red.sum(active.astype(float)) == 0))
        anchors.set_mean(red)
        m_tr = red.moments(m_tr)
        if not np.any(m_tr.comoment):
            raise InputError(
                "the residual `activations − reconstruction` has zero variance on the training split "
                "(a constant offset or an exact reconstruction): there is nothing to score beyond `mse`."
            )
        gauss = GaussianBackground(shrinkage="ledoit-wolf", device=dev).fit(m_tr)
        # shrinkage only moves eigenvalues: (1 − s)λ + sμ, so the sample spectrum is recovered exactly
        s_, mu_ = gauss.shrinkage_, float(np.trace(gauss.covariance_)) / d
        spectrum = np.clip((gauss.eigenvalues_ - s_ * mu_) / (1.0 - s_), 0.0, None) if s_ < 1 else np.zeros(d)
        var = float(np.trace(m_tr.covariance())) / d
        stages("metrics")

        # pass 2: legacy ratio, held-out NLL, ridge means
        ridges = [RidgeSums(d, d), RidgeSums(d, d)]  # r on x, r on x̂
        nll = np.zeros(2)
        for xc, xh, te, tr_off, _ in chunks():
            anchors.add2(xc, xh)
            r = xc - xh
            rt = r[te]
            if len(rt):
                nll += [float(gauss._logpdf(rt).sum()), float(rowsq(rt - like(m_tr.mean, rt)).sum())]
            val = uniforms(tr_off, int((~te).sum()), seed, 7) < 0.2
            for acc, reg in zip(ridges, (xc, xh)):
                acc.add_train(reg[~te], r[~te], val)
        anchors_out = anchors.result(red)
        nll = red.sum(nll)
        nll_g = -float(nll[0]) / n_test / _LN2
        nll_iso = 0.5 * (d * math.log(2 * math.pi * var) + float(nll[1]) / n_test / var) / _LN2
        for acc in ridges:
            acc.set_means(red)
        stages("gaussian")

        def train_chunks():
            for xc, xh, te, tr_off, _ in chunks():
                yield tr_off, (xc - xh)[~te]

        pert = PerturbativeBackground(
            n_directions=int(n_directions), basis="features", seed=seed, gaussian=gauss, device=dev
        )
        pert._fit_chunks(train_chunks, red, d)
        stages("perturbative")

        # pass 3: held-out gain and direction statistics, ridge cross-products, Mardia's sample
        k = pert.basis_.shape[0]
        sel = pert.selected_
        gsum = np.zeros(2)
        dirs = HeldOutMoments(len(sel))
        cap = max(1000, int(math.sqrt(_MARDIA_FLOPS / d)))
        keep = min(1.0, cap / n_test)
        sample = []
        for xc, xh, te, tr_off, te_off in chunks():
            r = xc - xh
            rt = r[te]
            if len(rt):
                w = gauss._whiten(rt)
                y = host(w @ like(pert.basis_.T, w))
                g = pert._gain_of_projection(y) / _LN2
                gsum += [g.sum(), (g * g).sum()]
                dirs.add(host(w @ like(sel.T, w)))
                sample.append(rt[like(uniforms(te_off, len(rt), seed, 5) < keep, rt)])
            val = uniforms(tr_off, int((~te).sum()), seed, 7) < 0.2
            for acc, reg in zip(ridges, (xc, xh)):
                acc.add_central(reg[~te], r[~te], val)
        gsum = red.sum(gsum)
        ng_bits = float(gsum[0]) / n_test
        ng_se = math.sqrt(max(float(gsum[1]) - n_test * ng_bits**2, 0.0) / (n_test - 1) / n_test)
        held = dirs.result(red)
        share = (sel * sel) @ gauss.eigenvalues_[: sel.shape[1]] / float(np.sum(gauss.eigenvalues_))
        order = np.argsort(-np.abs(held["kurtosis_z"]), kind="stable")
        patterns = gauss.pattern(sel)
        patterns /= np.linalg.norm(patterns, axis=1, keepdims=True)
        filters = gauss.filter(sel)
        for acc in ridges:
            acc.set_cross(red)
        stages("held-out")

        mar = mardia(concat(sample, d), device=dev, progress=progress, reduce=red)
        stages("mardia")

        # pass 4: ridge held-out errors (each penalty's validation error came from the sums)
        for acc in ridges:
            acc.set_fit()
        for xc, xh, te, _, _ in chunks():
            r = xc - xh
            for acc, reg in zip(ridges, (xc, xh)):
                acc.add_test(reg[te], r[te])
        lp_x, lp_xhat = (acc.r2(red) for acc in ridges)
        stages("predictability")
    finally:
        stages.close()

    return ResidualReport(
        **anchors_out,
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
        nongaussian_directions=patterns[order],
        nongaussian_kurtosis=held["kurtosis"][order],
        nongaussian_z=held["kurtosis_z"][order],
        nongaussian_skewness=held["skewness"][order],
        nongaussian_skewness_z=held["skewness_z"][order],
        nongaussian_filters=filters[order],
        nongaussian_variance_share=share[order],
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
