"""score(): what an interpretation's residual carries beyond a Gaussian background."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._device import as_device_matrix, concat, host, is_tensor, like, resolve_device
from pft._validate import as_matrix, check_bool, check_choice, check_float, check_int, check_seed, describe
from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground
from pft.numeric.projections import HeldOutMoments
from pft.distributed import reducer, uniforms
from pft.residual._metrics import (
    AnchorSums, Ridge, check_residual_scale, joint_moments, mardia, on_reconstruction, participation_ratio,
)
from pft.residual._report import ResidualReport
from pft.residual._score_inputs import prepare

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


# Mardia's skewness sums over all pairs of its rows (O(S² d)): it runs on a random subset of
# S = max(4096, √(N d / 4)) held-out tokens (all of them when fewer), so that it costs at most
# about a quarter of the one O(N d²) pass, and its null is that of S rows.
_MARDIA_MIN_ROWS = 4096


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
    chunk_rows: int | None = None,
    mask: Any = None,
    exclude_positions: Any = None,
    saelens_batch: int | None = None,
    precision: str = "float64",
) -> ResidualReport:
    """Score an interpretation by what its residual ``r = activations − reconstruction`` carries.

    Parameters
    ----------
    activations : (N, d) array or tensor, or (B, L, ..., d)
        The model's activations ``x``. Integer, float16 and bfloat16 inputs are upcast; all
        arithmetic is float64. Leading axes are tokens; for an interpretation that declares
        ``d_in`` (an SAE), the trailing axes that multiply to ``d_in`` make one row (a SAELens
        ``hook_z`` SAE reads ``(B, L, n_heads, d_head)`` as rows of ``n_heads·d_head``).
    reconstruction : (N, d) array or tensor, or an interpretation object
        The interpretation's reconstruction ``x̂`` (an SAE's output, a circuit's prediction), or
        the interpretation itself (a SAELens ``SAE``, anything :func:`as_interpretation` takes):
        its reconstruction and codes are then computed ``chunk_rows`` at a time.
    codes : (N, m) array or tensor, optional
        The interpretation's codes (SAE feature activations), for ``l0`` and ``dead_fraction``
        (read from an interpretation object when one is given; without either they are NaN and
        ``nan_reasons`` says so).
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
        report, equal to a one-process score of the concatenated tokens up to summation order
        (1e-10 relative; the fields along the selected directions 1e-8, the direction search
        being an iteration that stops at a tolerance). Mardia's skewness
        needs all pairs of held-out tokens, so each rank gathers the held-out whitened rows.
    group : torch.distributed process group, optional
    chunk_rows : int, optional
        Rows processed at a time (default ``2²³/d``: 64 MiB per float64 copy of a chunk; the
        report does not depend on it beyond rounding). Inputs are read one chunk at a time (pass a ``numpy.memmap``,
        e.g. from :func:`pft.io.load_array`, to score files larger than memory): memory stays
        O(d² + chunk_rows·d) plus the direction search's sample (at most ``max(2048, 2²¹/d)`` rows) and
        Mardia's (at most ``max(4096, √(N d / 4))`` held-out rows).
    mask : bool array of the activations' leading shape, optional
        Which tokens count (True); the others are left out of everything (SAELens leaves out
        special tokens). Integer 0/1 masks (an ``attention_mask``) are read as booleans.
    exclude_positions : tuple of int, optional
        Sequence positions (the second axis of ``(B, L, ..., d)`` activations) that never count,
        e.g. ``(0,)`` for the BOS/attention-sink position. With a mask, the kept rows are copied.
    saelens_batch : int, optional
        Compute ``explained_variance_legacy`` as SAELens does: each batch of this many sequences
        (SAELens' ``eval_batch_size_prompts``; tokens for 2-D input) is centred on its own mean
        of the tokens that count. Default: one mean over all tokens.
    precision : {"float64", "float32", "tf32"}, default "float64"
        Arithmetic of the one O(N d²) product, the Gram matrix of ``[x | r]`` (as in
        :class:`pft.numeric.GaussianBackground`): each block of rows is centred in float64 and
        only its within-block sums are taken in float32, then merged in float64.
        ``"float32"`` halves that pass's time on a CPU; the report's fields move by less than
        1e-4 relative (about 1e-6 for most), the directions and filters the iterative search
        returns by less than 1e-3 (6.6e-4 measured on ``pft.toy``); every other statistic stays
        float64. ``"tf32"``: TF32 tensor cores on CUDA (products accurate to about 1e-3, so
        the fields move by more); float32 elsewhere. (The missed-feature search takes its own
        products in float32 at every precision, with float64 sums, and scores its candidates
        in float64: see :func:`pft.numeric.feature_directions`.)

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
    4. Mardia's statistics on the held-out residual, whitened with its own covariance, on a
       random subset of ``S = max(4096, √(N d / 4))`` held-out tokens (all of them when fewer):
       ``b₁`` costs O(S² d), at most about a quarter of the one O(N d²) pass, and the null
       means and z-scores are those of ``S`` rows.
    5. The selected directions' held-out skewness and excess kurtosis with their null z-scores
       ``s/√(6/N_test)``, ``κ/√(24/N_test)``, and their share of the residual variance; they are
       ordered by ``|κ z-score|``, most significant first.
    6. Ridge regressions of ``r`` on ``x`` and on ``x̂`` (held-out R²).

    Cost: one O(N d²) pass (the centred co-moment of ``[x | r]`` on each block of tokens: ridge
    fit, ridge validation, held out), from which the Gaussian background, both ridge
    regressions (every penalty) and the held-out Gaussian likelihoods follow in closed form;
    the perturbative fit's passes (the direction search on a bounded sample, then projections
    on ``n_directions`` filters); one O(N d k) pass over the held-out tokens; and Mardia's
    bounded sample.

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
    >>> best = np.abs(bad.nongaussian_directions @ missed.T).max(axis=0)  # best of the 8 reported
    >>> bool(np.all(best > 0.9))
    True
    """
    check_seed(seed)
    check_bool(progress, "progress")
    check_bool(distributed, "distributed")
    check_choice(precision, "precision", ("float64", "float32", "tf32"))
    pre = prepare(activations, reconstruction, codes=codes, mask=mask, exclude_positions=exclude_positions,
                  saelens_batch=saelens_batch, chunk_rows=chunk_rows, distributed=distributed)
    activations, reconstruction, codes = pre.x, pre.xhat, pre.codes
    x, xhat = _as_rows(activations, "activations"), _as_rows(reconstruction, "reconstruction")
    if tuple(xhat.shape) != tuple(x.shape):
        raise InputError(
            f"`reconstruction` has shape {tuple(xhat.shape)} but `activations` has shape {tuple(x.shape)}; "
            "they must match token for token."
        )
    if len(x.shape) != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        as_matrix(x, "activations")  # raises the precise message (1-D, empty, ...)
    N_local, d = int(x.shape[0]), int(x.shape[1])
    check_float(holdout, "holdout", minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True)
    n_directions = check_int(min(8, d) if n_directions is None else n_directions, "n_directions", minimum=1, maximum=d)
    if chunk_rows is None:
        chunk_rows = max(256, 2**23 // d)  # 64 MiB per float64 copy of a chunk
    chunk_rows = check_int(chunk_rows, "chunk_rows", minimum=1)
    c = None
    if codes is not None:
        c = _as_rows(codes, "codes")
        if len(c.shape) != 2 or c.shape[0] != N_local:
            what = f"is {len(c.shape)}-D; it must be 2-D (tokens x codes)" if len(c.shape) != 2 else f"has {c.shape[0]} rows"
            raise InputError(f"`codes` {what} and match `activations`' {N_local} rows ({describe(codes)}).")
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

    validated = [False]  # every chunk is checked (shape, dtype, NaN/inf) on the first pass only

    def rows(a: Any, lo: int, hi: int, name: str, block: Any = None) -> Any:
        """Rows lo:hi of ``a`` (or the ``block`` already read from there) as float64, checked
        on the first pass."""
        block = a[lo:hi] if block is None else block
        where = {"row_offset": offset + lo, "of_rows": _rows_note(lo, hi, N_local)}
        if dev is not None:
            return as_device_matrix(block, name, dev, **where)
        return host(block) if validated[0] else as_matrix(block, name, **where)

    def chunks():
        """(x, x̂, held-out mask, global train index of the first train row, same for test),
        chunk by chunk: numpy on the host, or float64 tensors on ``device``."""
        tr_seen = te_seen = 0
        for (lo, hi), te in zip(bounds, te_masks):
            xc, xh = rows(x, lo, hi, "activations"), rows(xhat, lo, hi, "reconstruction")
            yield xc, xh, like(te, xc), tr_offset + tr_seen, te_offset + te_seen
            tr_seen += int((~te).sum())
            te_seen += int(te.sum())

    stages = _Stages(["moments", "gaussian", "perturbative", "held-out", "mardia", "predictability"], progress)
    try:
        # pass 1, the one O(N d²) pass: reconstruction sums, codes, and for each block of tokens
        # (ridge fit / ridge validation / held out) the joint statistics of [x | r], from which
        # the Gaussian background, both ridge regressions and the held-out Gaussian likelihoods
        # all follow in closed form.
        anchors = AnchorSums(d)
        joint = [Moments(d=2 * d) for _ in range(3)]
        rmom = [Moments(d=d) for _ in range(3)]
        l0 = dead = math.nan
        nz_rows = 0.0
        active = np.zeros(c.shape[1], dtype=bool) if c is not None else None
        for (lo, hi), (xc, xh, te, tr_off, _) in zip(bounds, chunks()):
            r = xc - xh
            anchors.add(xc, xh, r)
            te_h = te.cpu().numpy() if is_tensor(te) else te
            block = np.full(len(te_h), 2)  # 0: ridge fit, 1: ridge validation, 2: held out
            block[~te_h] = uniforms(tr_off, int((~te_h).sum()), seed, 7) < 0.2
            for b in range(3):
                m = like(block == b, xc)
                jm, rm = joint_moments(xc[m], r[m], precision=precision)
                joint[b], rmom[b] = joint[b].merge(jm), rmom[b].merge(rm)
            if c is not None:
                nz = as_matrix(c[lo:hi], "codes", row_offset=offset + lo) != 0
                nz_rows += nz.sum()
                active |= nz.any(axis=0)
        validated[0] = True
        if c is not None:
            l0 = float(red.sum(nz_rows)) / N
            dead = float(np.mean(red.sum(active.astype(float)) == 0))
        anchors.set_mean(red)
        joint = [red.moments(m) for m in joint]
        rmom = [red.moments(m) for m in rmom]
        m_tr = rmom[0].merge(rmom[1])
        var = float(np.trace(m_tr.covariance())) / d
        check_residual_scale(var, anchors.mean_square / d, (x, xhat))  # rounding noise, under/overflow
        stages("moments")

        gauss = GaussianBackground(shrinkage="ledoit-wolf", device=dev).fit(m_tr)
        spectrum = gauss.sample_eigenvalues_
        # held-out NLL from the held-out block's sums about the training mean:
        # Σ_t (r_t − μ)ᵀ P (r_t − μ) = tr(P S) and Σ_t ‖r_t − μ‖² = tr S, S = C_te + n δδᵀ
        S_te = rmom[2].comoment + n_test * np.outer(rmom[2].mean - gauss.mean_, rmom[2].mean - gauss.mean_)
        quad = float(np.sum(gauss.precision_ * S_te))
        nll_g = 0.5 * (gauss.rank_ * math.log(2 * math.pi) + gauss.logdet_ + quad / n_test) / _LN2
        nll_iso = 0.5 * (d * math.log(2 * math.pi * var) + float(np.trace(S_te)) / n_test / var) / _LN2
        stages("gaussian")

        step = max(64, 2**20 // d)

        def train_chunks(keep=None):
            """The training rows of r = x − x̂, in blocks of at most 8 MiB (float64) — small enough
            that the allocator reuses their memory across the search's passes — as
            :meth:`PerturbativeBackground.fit` reads a chunk source: with ``keep``, each block's
            number of training rows goes to ``keep(n)`` first and only the rows it keeps are
            read and subtracted (none at all when it keeps none). Host float blocks (checked by
            pass 1) get the float64 upcast on the fly."""
            for (lo, hi), te_chunk in zip(bounds, te_masks):
                for a in range(lo, hi, step):
                    b = min(hi, a + step)
                    take = ~te_chunk[a - lo : b - lo]  # the block's training rows
                    if keep is not None:
                        take[take] = keep(int(take.sum()))
                    if not take.any():
                        yield np.zeros((0, d))
                        continue
                    xs, hs = x[a:b], xhat[a:b]
                    if dev is None and all(isinstance(v, np.ndarray) and v.dtype.kind == "f" for v in (xs, hs)):
                        if not take.all():
                            xs, hs = xs[take], hs[take]
                        yield np.subtract(xs, hs, dtype=np.float64)
                    else:
                        r = rows(x, a, b, "activations", xs) - rows(xhat, a, b, "reconstruction", hs)
                        yield r if take.all() else r[like(take, r)]

        pert = PerturbativeBackground(
            n_directions=int(n_directions), basis="features", seed=seed, gaussian=gauss, device=dev
        ).fit(train_chunks, distributed=distributed, group=group)
        stages("perturbative")

        # pass 2, O(N d k): the legacy ratio on every token; on held-out tokens the gain and the
        # selected directions' statistics (projections on filters: no whitening of the rows)
        # and Mardia's sample
        r_ = gauss.rank_
        whiten = gauss.eigenvectors_[:, :r_] / np.sqrt(gauss.eigenvalues_[:r_])
        k = pert.basis_.shape[0]
        sel = pert.selected_
        gsum = np.zeros(2)
        dirs = HeldOutMoments(len(sel))
        cap = min(n_test, max(_MARDIA_MIN_ROWS, int(math.sqrt(N * d / 4.0))))
        keep = min(1.0, cap / n_test)
        sample = []
        # the k basis and k selected filters in one product per chunk
        filters_both = np.concatenate([whiten @ pert.basis_.T, whiten @ sel.T], axis=1)
        for xc, xh, te, _, te_off in chunks():
            r = xc - xh
            anchors.add2(xc, xh, r)
            rt = r[te]
            if len(rt):
                y = host((rt - like(gauss.mean_, rt)) @ like(filters_both, rt))
                g = pert.gain_from_coordinates(y[:, :k]) / _LN2
                gsum += [g.sum(), (g * g).sum()]
                dirs.add(y[:, k:])
                sample.append(rt[like(uniforms(te_off, len(rt), seed, 5) < keep, rt)])
        anchors_out = anchors.result(red)
        gsum = red.sum(gsum)
        ng_bits = float(gsum[0]) / n_test
        ng_se = math.sqrt(max(float(gsum[1]) - n_test * ng_bits**2, 0.0) / (n_test - 1) / n_test)
        held = dirs.result(red)
        share = (sel * sel) @ gauss.eigenvalues_[: sel.shape[1]] / float(np.sum(gauss.eigenvalues_))
        order = np.argsort(-np.abs(held["kurtosis_z"]), kind="stable")
        patterns = gauss.pattern(sel)
        patterns /= np.linalg.norm(patterns, axis=1, keepdims=True)
        filters = gauss.filter(sel)
        stages("held-out")

        mar = mardia(concat(sample, d), device=dev, progress=progress, reduce=red)
        stages("mardia")

        # ridge regressions of r on x and on x̂, from the blocks' sums alone
        lp_x = Ridge(joint[0], joint[1], d).r2(joint[2])
        lp_xhat = Ridge(on_reconstruction(joint[0]), on_reconstruction(joint[1]), d).r2(on_reconstruction(joint[2]))
        stages("predictability")
    finally:
        stages.close()

    return pre.finish(ResidualReport(
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
    ), red)
