"""patch_scores(): what the model does when a module's output is replaced by the interpretation
plus each candidate model of its residual.

The public function is a short pipeline of named stages, each a function below it:
:func:`_plan` (read and check the arguments), :func:`_first_pass` (per batch: the clean forward
that captures the module's output, then the rungs that need nothing from other batches),
:func:`_count_tokens`, :func:`_fit_noise` (means and the residual's background, from every
batch's tokens), :func:`_second_pass` (the rungs that need them) and
:func:`pft.residual._patch_stats.assemble` (the report). The model plumbing is in
:mod:`pft.residual.hooks`, the token masks in :mod:`pft.residual._patch_masks`, the splices,
backgrounds and forwards in :mod:`pft.residual._patch_rungs`, the statistics in
:mod:`pft.residual._patch_stats`.

Why one file: it is over 500 lines because ``patch_scores``' docstring (the rungs, the scores, the masking rules, two examples) is 200 of them and
the stages read best beside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import numpy as np

from pft._device import to_device, torch_device
from pft._validate import check_choice, check_float, check_int, check_seed, describe
from pft.errors import InputError, PatchError
from pft.numeric import Moments
from pft.residual._interpretation import Interpretation, as_interpretation
from pft.residual._patch_inputs import GLOBAL_RUNGS, NOISE_RUNGS, batch_list, requested_rungs
from pft.residual._patch_masks import TokenMasks
from pft.residual._patch_report import PatchReport
from pft.residual._patch_resume import resume_layer, token_batch
from pft.residual._patch_rungs import (
    Constant,
    GaussianDraws,
    ReconPlus,
    Runner,
    Splice,
    background_needs_rows,
    checked_recon,
    fit_background,
)
from pft.residual._patch_stats import CleanDistribution, assemble, logits_of, no_logits_reason, row_sums, vocab_size
from pft.residual.hooks import hooked, resolve_module

__all__ = ["patch_scores", "PatchError"]

#: Clean logits kept from pass 1 for the KL of the pass-2 rungs; beyond this the clean forward
#: is run again in pass 2 instead.
_CLEAN_LOGITS_BYTES = 1 << 30
#: Clean module outputs kept from pass 1 for the pass-2 rungs of a model that can be entered at
#: the module (see pft.residual._patch_resume); beyond this those batches run the whole model.
_RESUME_BYTES = 1 << 30


def patch_scores(
    model: Any,
    module: Any,
    batches: Any,
    *,
    interpretation: Any,
    loss_fn: Callable[[Any, Any], Any],
    background: Any = None,
    n_resamples: int = 4,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
    logits: Any = "auto",
    check_rtol: float = 1e-4,
    loss_name: str = "loss",
    mask: Any = None,
    exclude_positions: Any = None,
    rungs: Any = None,
    batch_size: int | None = None,
    convention: str = "pft",
    batch_resamples: bool = True,
) -> PatchReport:
    """Run ``model`` with ``module``'s output replaced, rung by rung, and score the interpretation
    by what the model does.

    Parameters
    ----------
    model : torch.nn.Module
        Called once per batch per rung, under ``torch.no_grad()``; put it in ``eval()`` mode
        (dropout makes the sanity check fail, on purpose).
    module : str or torch.nn.Module
        The submodule (or its dotted path, e.g. ``"model.layers.6"``) whose output is replaced.
        Its output is a tensor ``(..., d)`` or a tuple whose first element is one (transformers
        4.x layers); leading axes are tokens.
    batches : iterable
        Each batch is a Mapping (passed as ``model(**batch)``), a tuple/list whose first element
        is the model input (``model(batch[0])``, or ``model(**batch[0])`` for a Mapping) and whose
        rest is for the loss, or a tensor (``model(batch)``). Read into a list (iterated twice).
    interpretation : see :func:`as_interpretation`
        Maps the module's (n, d) output ``x`` to ``x̂``.
    loss_fn : callable ``(output, batch) -> losses``
        A scalar, (B,) or (B, ...) tensor; trailing axes are averaged, giving one loss per row.
    background : None, "gaussian", "perturbative", GaussianBackground or PerturbativeBackground
        The residual's noise model. ``None``/``"gaussian"``: a Ledoit–Wolf Gaussian fitted on the
        residuals ``r = x − x̂`` of these batches. ``"perturbative"`` fits a
        :class:`~pft.numeric.PerturbativeBackground` on them (and adds its rung). Unfitted
        instances are copied and fitted on them; fitted ones are used as they are.
    n_resamples : int, default 4
        Noise draws per row for the two stochastic rungs (their losses are averaged per row).
    seed : int, default 0
        Seeds the noise draws (batch ``i`` draws from ``default_rng([seed, i, ...])``) and a
        perturbative background's fit.
    device : str or torch.device, optional
        Where batches are moved (default: the model's own device, that of its first parameter;
        a device that is given is checked first). The model itself is not moved.
    progress : bool, default True
    logits : "auto", None or callable ``output -> logits``, default "auto"
        How to find logits for the KL columns; ``"auto"`` uses ``output.logits`` when present.
    check_rtol : float, default 1e-4
        The ``recon+residual`` rung must reproduce the clean loss within
        ``check_rtol · (|L_clean| + 1)``.
    loss_name : str
        Label of the loss in the table.
    mask : None, array or tensor, list of them, or callable ``batch -> mask``
        Which tokens count (True) and which are left alone (False), with the hooked output's
        leading shape: ``(B, L)`` for a ``(B, L, d)`` output. One boolean array for all of
        ``batches`` (their rows stacked: ``(ΣB, L)``), a list with one per batch, or a callable
        called on each batch, e.g. ``lambda b: b["attention_mask"]``; integer 0/1 masks (an
        ``attention_mask``) are read as booleans. See Notes for what a masked token does.
    exclude_positions : tuple of int, optional
        Positions along the sequence axis (the second axis of a ``(B, L, ..., d)`` output;
        negative ones count from the end) that never count, e.g. ``(0,)`` for a causal LM's
        attention-sink/BOS position. Combined with ``mask`` (a token counts when both allow it).
    rungs : list of str, optional
        Run only these rungs (default: all; ``recon+perturbative`` only with a perturbative
        background). ``clean`` is always run: it is the pass that captures the module's output.
        SAELens' ``run_evals`` rungs are ``["clean", "zero_ablation", "recon"]``. Scores whose
        rungs were not run are NaN and say so in :attr:`PatchReport.nan_reasons`. Without
        ``recon+residual`` the sanity check runs on the first batch only.
    batch_size : int, optional
        Cut ``batches``, then one tensor or array of inputs (or a Mapping or tuple of them that
        share their first axis, e.g. ``{"input_ids": ids, "attention_mask": am}``), into batches
        of this many rows.
    convention : "pft" or "saelens", default "pft"
        ``"saelens"``: the ablation rungs replace every token, masked ones included, as
        SAELens' ``run_evals`` zero-ablates all of them; everything else is unchanged. With no
        mask the two conventions are the same.
    batch_resamples : bool, default True
        Run the ``n_resamples`` draws of a noise rung as one forward on the batch repeated
        ``n_resamples`` times along its first axis (each copy spliced with its own draws; the
        same draws as one forward per draw). The repeated batch is capped by the size of its
        output (logits, or the hooked activations): 8 MiB on a CPU, where larger tensors only
        add memory traffic, and 1 GiB on an accelerator; past that the draws run in groups
        (down to one forward per draw). Falls back to one forward per draw when the batch
        holds a tensor with another first axis, or the hooked output or the loss does not keep
        the copies along the first axis.

    Returns
    -------
    PatchReport

    Notes
    -----
    Forward passes per batch: the clean one (it also captures the module's output), then
    ``zero_ablation``, ``recon`` and ``recon+residual`` right away; once every batch has been
    seen (means and the background need all tokens), ``mean_ablation``, ``recon+mean`` and the
    noise rungs (one forward each with ``batch_resamples``). The clean logits are kept for the
    second group's KL up to 1 GiB; past that the clean forward is run again for it.

    A TransformerLens ``HookedTransformer`` hooked at a block's ``hook_resid_pre``,
    ``hook_resid_post`` (or the block itself) and called on token ids runs its patched rungs
    from that block on (``start_at_layer``), on the clean pass's activations spliced: the same
    numbers, without recomputing the blocks before the splice (their clean outputs are kept up
    to 1 GiB for the second group). ``recon+residual``, the sanity check, always runs the whole
    model. The conditions under which this is exact are listed in
    ``pft.residual._patch_resume``; anything else runs the whole model with a hook.

    Rungs, with ``x`` the module's output and ``r = x − x̂``:

    ======================  =====================================================
    clean                   ``x``
    zero_ablation           ``0``
    mean_ablation           ``mean_t x_t`` over every token of ``batches``
    recon                   ``x̂``
    recon+mean              ``x̂ + mean_t r_t``
    recon+gaussian          ``x̂ + z``, ``z ~ N(μ, Σ)`` of the background, drawn per token
                            independently of the token (a noise model)
    recon+perturbative      ``x̂ + z``, ``z`` from the perturbative background (when given)
    recon+residual          ``x̂ + r`` — must give the clean loss; raises otherwise
    ======================  =====================================================

    Scores are ratios of mean losses (the SAELens convention, not means of ratios):
    ``ce_loss_recovered = (L_zero − L_recon) / (L_zero − L_clean)`` (SAELens' "CE loss
    recovered", with zero ablation; ``mean_ablation_recovered`` uses mean ablation) and
    ``gaussian_recovered = (L_recon − L_gauss) / (L_recon − L_clean)``. Standard errors treat
    rows (the first axis of the loss) as independent: every rung is run on the same rows, so
    the ratios' errors come from the paired per-row differences by the delta method,
    ``SE(Ā/B̄) = std(a_i − R b_i) / (√n |B̄|)``. Tokens within a row are correlated and are
    never treated as independent. KL is ``KL(p_clean ‖ p_rung)`` per position, averaged.

    **SAELens.** With nothing masked, ``ce_loss_recovered`` and ``kl_score`` are SAELens'
    ``ce_loss_score`` and ``kl_div_score`` (with a next-token loss, see
    :func:`pft.interop.next_token_loss`), and the clean / recon / zero_ablation losses and KLs its
    ``ce_loss_without_sae`` / ``ce_loss_with_sae`` / ``ce_loss_with_ablation`` /
    ``kl_div_with_sae`` / ``kl_div_with_ablation`` (aliases on the report). With masked tokens
    (SAELens masks special tokens by default) they differ in one place: SAELens zero-ablates
    masked tokens too, pft keeps them clean in every rung. ``convention="saelens"`` reproduces
    SAELens exactly; the default keeps the rungs comparable token for token.

    Losses and KLs with trailing axes are averaged over all their entries, pooled across rows
    (token-weighted, like a language model's mean cross-entropy): a row contributes the sum of
    its entries and their count, so the means and ratios above are ratios of sums, and their
    standard errors the delta method over rows as stated. Without a mask every row has the same
    count and this is the plain mean of per-row means.

    **Masked tokens** (``mask`` False, or a position in ``exclude_positions``):

    - are *never spliced*: in every rung, ablations included, they keep their clean activation
      (bit for bit), so the rungs differ only at tokens that count;
    - are left out of everything fitted or averaged at the hooked module: ``mean_t x_t`` and
      ``mean_t r_t``, the Gaussian/perturbative background, ``n_tokens``; the interpretation is
      evaluated on the tokens that count only (a precomputed array still has one row per token
      of ``batches``, masked ones included; those rows are ignored);
    - are left out of the loss and KL averages *as the position whose output is scored*: the
      entries of a ``(B, L)`` loss/KL are matched to the mask position by position, and a
      ``(B, L − 1)`` loss to its first ``L − 1`` positions (a next-token loss on
      ``logits[:, :-1]``: entry ``t`` is the prediction made at position ``t``, of token
      ``t + 1``). So ``exclude_positions=(0,)`` drops the prediction made at the sink, which no
      rung can change in a causal model (position 0 sees only itself, and it is not spliced).
      The prediction *of* a masked token, made at the position before it, is kept: if it
      should not count (a padding target), leave it out in ``loss_fn`` and return a (B,) loss
      averaged as you wish. A (B,) loss is one number per row, used as is; a row counts when
      any of its tokens does, and rows with nothing that counts are left out of every average
      (``n_rows``).

    In a causal model a masked token is not isolated: its activation stays clean, but its
    output still sees the spliced tokens before it, and the tokens after it see its clean
    activation. The mask decides what is replaced and what is averaged, not what attends to
    what; use the model's own ``attention_mask`` for that.

    ``mask=None`` and an all-True mask give the same report, number for number.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 1))
    >>> x = torch.randn(512, 4)
    >>> batches = [(x[i:i + 128], model(x[i:i + 128]).detach()) for i in range(0, 512, 128)]
    >>> rep = patch_scores(model, "0", batches, interpretation=lambda h: 0.5 * h,
    ...                    loss_fn=lambda out, b: ((out - b[1]) ** 2).sum(-1), progress=False)
    >>> rep.loss_of("clean"), rep.loss_of("recon+residual")
    (0.0, 0.0)
    >>> bool(rep.loss_of("recon+gaussian") > rep.loss_of("recon"))   # noise is not the signal
    True

    Sequences: a (B, L, d) hooked output and one loss per position; position 0 left alone.

    >>> u = torch.randn(16, 8, 4)
    >>> seq = [(u[i:i + 8], model(u[i:i + 8]).detach()) for i in (0, 8)]
    >>> rep = patch_scores(model, "0", seq, interpretation=lambda h: 0.5 * h, exclude_positions=(0,),
    ...                    loss_fn=lambda out, b: ((out - b[1]) ** 2)[..., 0], progress=False)
    >>> rep.n_tokens, rep.n_excluded, rep.excluded          # 16 windows x 7 positions spliced
    (112, 16, 'positions (0,)')
    """
    import torch

    plan = _plan(model, module, batches, interpretation=interpretation, loss_fn=loss_fn, background=background,
                 n_resamples=n_resamples, seed=seed, device=device, logits=logits, check_rtol=check_rtol,
                 mask=mask, exclude_positions=exclude_positions, rungs=rungs, batch_size=batch_size,
                 convention=convention)
    bar = _progress_bar(plan) if progress else None
    try:
        with torch.no_grad(), hooked(plan.module, plan.name, width=plan.interp.d_in) as hook:
            runner = Runner(plan.model, hook, loss_fn=plan.loss_fn, logits=plan.logits, vocab=plan.vocab,
                            resume_at=plan.resume_at, n_resamples=plan.n_resamples,
                            batch_resamples=batch_resamples, device=plan.device, bar=bar)
            acc = _first_pass(plan, runner)
            n_all, n_tokens = _count_tokens(plan, acc)
            if plan.global_rungs:
                noise = _fit_noise(plan, acc, n_tokens)
                _second_pass(plan, runner, acc, noise)
    finally:
        if bar is not None:
            bar.close()
    return assemble(
        plan.want, acc.per_loss, acc.per_kl, acc.sanity_rows, no_kl=acc.no_kl, check_rtol=plan.check_rtol,
        name=plan.name, n_tokens=n_tokens, n_all=n_all, d=acc.d, n_resamples=plan.n_resamples, seed=plan.seed,
        bg_label=acc.bg_label, pert=acc.pert, loss_name=loss_name, excluded=plan.masks.description,
        convention=plan.convention,
    )


# ---------------------------------------------------------------------- the stages
@dataclass
class _Plan:
    """What one :func:`patch_scores` call runs, read and checked once (see :func:`_plan`)."""

    model: Any
    module: Any
    name: str
    interp: Interpretation
    loss_fn: Callable
    logits: Any
    vocab: int | None
    device: Any
    batches: list
    want: list
    global_rungs: list
    noise: bool
    sanity_all: bool
    masks: TokenMasks
    saelens: bool
    convention: str
    background: Any
    n_resamples: int
    seed: int
    check_rtol: float
    resume_at: int | None


@dataclass
class _Pass1:
    """What the first pass leaves for the others: per-rung ``(sums, counts)`` of loss and KL per
    batch, and per batch its leading shape, token mask, first token, spliceable copy size,
    reconstruction and (for a resumable model) clean output; the residual's running moments."""

    per_loss: dict
    per_kl: dict
    sanity_rows: list = field(default_factory=list)  # (clean, recon+residual) loss rows of the batches checked
    no_kl: str = ""
    d: int | None = None
    leads: list = field(default_factory=list)
    keeps: list = field(default_factory=list)
    token_masks: list = field(default_factory=list)
    counts: list = field(default_factory=list)
    starts: list = field(default_factory=lambda: [0])
    copy_bytes: list = field(default_factory=list)
    R_parts: list = field(default_factory=list)
    xh_store: list = field(default_factory=list)
    x_store: list = field(default_factory=list)
    clean_logits: list = field(default_factory=list)
    cache_bytes: int = 0
    x_bytes: int = 0
    sum_x: Any = None
    moments_r: Any = None
    first_r: Any = None
    varies: bool = False  # whether r = x − x̂ differs between two tokens that count
    rows_needed: bool = False
    bg_label: str = "not fitted: no noise rung was run"
    pert: Any = None


@dataclass
class _Batch:
    """One batch in the first pass: its index, inputs, hooked rows ``x`` (flat) and those that
    count ``xk``, token mask (``tm`` of the leading shape, ``keep`` flat), leading shape, first
    token, clean distribution (None without logits), reconstruction ``xh`` of the rows that
    count, and ``xr``: ``x`` when the patched rungs can resume the model from it."""

    i: int
    b: Any
    x: Any
    xk: Any
    tm: Any
    keep: Any
    lead: tuple
    start: int
    lp_clean: Any = None
    xh: Any = None
    xr: Any = None


@dataclass
class _Noise:
    """What the second pass splices: the mean of ``x`` and of ``r`` over every token that
    counts, and the Gaussian draws (None unless ``recon+gaussian`` runs) and perturbative
    background (None unless fitted)."""

    mean_x: Any
    mean_r: Any
    draws: Any = None
    pert: Any = None


def _plan(model, module, batches, *, interpretation, loss_fn, background, n_resamples, seed, device, logits,
          check_rtol, mask, exclude_positions, rungs, batch_size, convention) -> _Plan:
    """Stage 1: check the arguments and resolve what the call runs (the module, the rungs, the
    batches on the device, the masks). Nothing runs the model yet."""
    mod, name = resolve_module(model, module)
    interp = as_interpretation(interpretation)
    if not callable(loss_fn):
        raise InputError(f"`loss_fn` must be a callable (output, batch) -> losses; got {describe(loss_fn)}.")
    n_resamples = check_int(n_resamples, "n_resamples", minimum=1)
    convention = check_choice(convention, "convention", ("pft", "saelens"))
    seed = check_seed(seed)
    check_rtol = check_float(check_rtol, "check_rtol", minimum=0)
    batches = batch_list(batches, batch_size)
    device = torch_device(device, default=model)
    batches = [to_device(b, device) for b in batches]
    want = requested_rungs(rungs, background)
    return _Plan(
        model=model, module=mod, name=name, interp=interp, loss_fn=loss_fn, logits=logits,
        vocab=vocab_size(model), device=device, batches=batches, want=want,
        global_rungs=[r for r in want if r in GLOBAL_RUNGS], noise=any(r in NOISE_RUNGS for r in want),
        sanity_all="recon+residual" in want, masks=TokenMasks(mask, exclude_positions, len(batches)),
        saelens=convention == "saelens", convention=convention, background=background,
        n_resamples=n_resamples, seed=seed, check_rtol=check_rtol, resume_at=resume_layer(model, name),
    )


def _progress_bar(plan: _Plan):
    """A tqdm bar counting the forward passes the call will run."""
    from tqdm.auto import tqdm

    per_batch = sum(plan.n_resamples if r in NOISE_RUNGS else 1 for r in plan.want)
    total = len(plan.batches) * per_batch + (0 if plan.sanity_all else 1)
    return tqdm(total=total, desc="pft patch", unit="fwd")


def _first_pass(plan: _Plan, runner: Runner) -> _Pass1:
    """Stage 2, per batch: the clean forward (capturing the module's output), the
    reconstruction and the residual's running moments, then the rungs that need nothing from
    other batches, while the clean distribution is at hand."""
    acc = _Pass1(per_loss={k: [None] * len(plan.batches) for k in plan.want},
                 per_kl={k: [None] * len(plan.batches) for k in plan.want},
                 rows_needed=plan.noise and background_needs_rows(plan.background))
    for i, b in enumerate(plan.batches):
        bt = _clean_batch(plan, runner, acc, i, b)
        _reconstruct(plan, acc, bt)
        _local_rungs(plan, runner, acc, bt)
        del bt
    plan.masks.finish()
    return acc


def _clean_batch(plan: _Plan, runner: Runner, acc: _Pass1, i: int, b: Any) -> _Batch:
    """The clean forward on batch ``i``: captures the hooked rows, reads the batch's token mask,
    records the clean loss (and the zero KL of the clean rung) and keeps the clean logits for
    the second pass within :data:`_CLEAN_LOGITS_BYTES`."""
    import torch

    cap: list = []
    out = runner.hook.run(plan.model, b, capture=cap)
    xb = cap[0]
    lead = runner.hook.shape
    if acc.d is None:
        acc.d = int(xb.shape[1])
    elif xb.shape[1] != acc.d:
        raise InputError(f"the hooked output has width {xb.shape[1]} on batch {i} but {acc.d} on batch 0.")
    tm = plan.masks.for_batch(i, b, lead)
    tm = None if tm is None else tm.to(plan.device)
    keep = None if tm is None else tm.reshape(-1)
    acc.leads.append(lead)
    acc.token_masks.append(tm)
    acc.keeps.append(keep)
    acc.starts.append(acc.starts[-1] + int(xb.shape[0]))
    acc.counts.append(int(xb.shape[0]) if keep is None else int(keep.sum()))
    xk = xb if keep is None else xb[keep]
    if not torch.all(torch.isfinite(xk)):
        raise PatchError(f"`module` {plan.name!r} outputs NaN/inf on batch {i} of the clean model; check the inputs.")
    interp = plan.interp
    if interp.n_tokens is not None and interp.n_tokens < acc.starts[-1]:
        raise InputError(
            f"the precomputed `interpretation` has {interp.n_tokens} rows but `batches` give at least "
            f"{acc.starts[-1]} tokens at the hooked module; pass one reconstruction per token"
            + (" (masked tokens included: their rows are ignored)." if plan.masks.active else ".")
        )
    acc.per_loss["clean"][i] = row_sums(plan.loss_fn(out, b), "clean", tm)
    runner.tick()
    lg = logits_of(out, plan.logits, plan.vocab)
    lg_bytes = 0 if lg is None else lg.numel() * lg.element_size()
    acc.copy_bytes.append(max(xb.numel() * xb.element_size(), lg_bytes))
    lp_clean = None
    if lg is None:
        acc.no_kl = acc.no_kl or no_logits_reason(out, plan.logits, plan.vocab)
    else:
        if not torch.all(torch.isfinite(lg)):
            raise PatchError("the clean model's logits contain NaN/inf; check the inputs.")
        lp_clean = CleanDistribution(lg)
        # KL(p_clean ‖ p_clean) = 0 exactly; only which entries count is needed
        zero_kl = torch.zeros(lg.shape[:-1], dtype=torch.float64, device=lg.device)
        acc.per_kl["clean"][i] = row_sums(zero_kl, "clean", tm, label="KL", check=False)
        if plan.global_rungs:
            acc.cache_bytes += lg_bytes
            acc.clean_logits.append(lg.detach() if acc.cache_bytes <= _CLEAN_LOGITS_BYTES else None)
    return _Batch(i=i, b=b, x=xb, xk=xk, tm=tm, keep=keep, lead=lead, start=acc.starts[i], lp_clean=lp_clean)


def _reconstruct(plan: _Plan, acc: _Pass1, bt: _Batch) -> None:
    """The batch's reconstruction (``bt.xh``), whether the patched rungs can resume the model from
    its clean output (``bt.xr``), and, when rungs need every batch, the residual's running sum,
    moments (O(d²) memory: its mean and the default Gaussian background need nothing else) and
    rows (only for a background fitted on rows)."""
    bt.xh = checked_recon(plan.interp, bt.x, bt.start, plan.name, bt.keep)
    # the patched rungs run the model from the module on, from x, where that is exact
    bt.xr = bt.x if plan.resume_at is not None and token_batch(bt.b, bt.lead) else None
    if not plan.global_rungs:
        return
    xk64 = bt.xk.double()
    if xk64.shape[0]:
        rb = xk64 - bt.xh.double()
        acc.sum_x = xk64.sum(dim=0) if acc.sum_x is None else acc.sum_x + xk64.sum(dim=0)
        mb = Moments.from_array(rb, name="x − x̂")
        acc.moments_r = mb if acc.moments_r is None else acc.moments_r.merge(mb)
        if acc.first_r is None:
            acc.first_r = rb[:1]
        acc.varies = acc.varies or bool((rb != acc.first_r).any())
        if acc.rows_needed:
            acc.R_parts.append(rb.cpu())
    acc.xh_store.append(bt.xh)  # reused by every pass-2 rung of this batch (x is the same)
    if bt.xr is not None:
        acc.x_bytes += bt.xr.numel() * bt.xr.element_size()
    acc.x_store.append(bt.xr if acc.x_bytes <= _RESUME_BYTES else None)


def _local_transform(plan: _Plan, rung: str, bt: _Batch) -> Splice:
    """The splice of a first-pass rung on one batch."""
    if rung == "zero_ablation":
        return Splice(bt.keep, Constant(np.zeros(bt.x.shape[1])), every=plan.saelens)
    return Splice(bt.keep, ReconPlus(bt.xh, residual=rung == "recon+residual"))


def _local_rungs(plan: _Plan, runner: Runner, acc: _Pass1, bt: _Batch) -> None:
    """``zero_ablation``, ``recon`` and ``recon+residual`` on one batch (resumed from the module
    where possible, except the sanity rung: it checks that the splice reaches the whole model);
    without ``recon+residual``, the sanity check on the first batch."""
    i = bt.i
    for rung in plan.want:
        if rung in ("zero_ablation", "recon", "recon+residual"):
            xs = None if rung == "recon+residual" else bt.xr
            lr, kr = runner.run_once(bt.b, _local_transform(plan, rung, bt), bt.tm, bt.lp_clean, rung, xs, bt.lead)
            acc.per_loss[rung][i], acc.per_kl[rung][i] = lr, kr
    if not plan.sanity_all and i == 0:
        lr, _ = runner.run_once(bt.b, _local_transform(plan, "recon+residual", bt), bt.tm, None, "recon+residual")
        acc.sanity_rows.append((acc.per_loss["clean"][0], lr))


def _count_tokens(plan: _Plan, acc: _Pass1) -> tuple[int, int]:
    """Stage 3: ``(n_all, n_tokens)``, the tokens at the hooked module and those that count,
    checked against a precomputed interpretation and against the two a background needs."""
    masks, interp = plan.masks, plan.interp
    n_all = acc.starts[-1]
    n_tokens = int(sum(acc.counts))
    if interp.n_tokens is not None and interp.n_tokens != n_all:
        raise InputError(
            f"the precomputed `interpretation` has {interp.n_tokens} rows but `batches` give {n_all} tokens "
            "at the hooked module; pass one reconstruction per token"
            + (" (masked tokens included: their rows are ignored)." if masks.active else ".")
        )
    if masks.active and n_tokens == 0:
        raise InputError(
            f"`mask`/`exclude_positions` ({masks.description}) exclude every one of the {n_all} tokens of "
            "`batches`; True marks a token that counts — check the mask's polarity."
        )
    if n_tokens < 2:
        raise InputError(
            f"`batches` give {n_tokens} token{'s' if n_tokens != 1 else ''} "
            f"{'that count ' if masks.active else ''}at the hooked module; a background needs at least 2."
        )
    return n_all, n_tokens


def _fit_noise(plan: _Plan, acc: _Pass1, n_tokens: int) -> _Noise:
    """Stage 4: the means of ``x`` and ``r`` over every token that counts and, for the noise
    rungs, the residual's background (``acc.bg_label`` and ``acc.pert`` say which)."""
    import torch

    R = torch.cat(acc.R_parts).numpy() if acc.rows_needed else None
    acc.R_parts = []
    noise = _Noise(mean_x=acc.sum_x / n_tokens, mean_r=torch.as_tensor(acc.moments_r.mean, device=acc.sum_x.device))
    if not plan.noise:
        return noise
    if not acc.varies:
        raise InputError(
            "the residual x − x̂ is constant over every token of `batches` (an exact interpretation, "
            "or one off by a constant): there is no noise to model; compare rungs with a plain "
            "forward instead."
        )
    gauss, pert, acc.bg_label = fit_background(plan.background, acc.moments_r, R, plan.seed, plan.device)
    if gauss.n_features_in_ != acc.d:
        raise InputError(f"`background` was fitted on {gauss.n_features_in_} features but the hooked output has {acc.d}.")
    if "recon+perturbative" in plan.want and pert is None:
        raise InputError(
            "`rungs` asks for 'recon+perturbative' but `background` is Gaussian; pass "
            "background='perturbative' (or a PerturbativeBackground)."
        )
    acc.pert = noise.pert = pert
    noise.draws = GaussianDraws(gauss, plan.device) if "recon+gaussian" in plan.want else None
    return noise


def _global_transform(plan: _Plan, noise: _Noise, rung: str, keep: Any, xh: Any, rng: np.random.Generator) -> Splice:
    """The splice of a second-pass rung on one batch (the noise rungs draw from ``rng``)."""
    if rung == "mean_ablation":
        return Splice(keep, Constant(noise.mean_x), every=plan.saelens)
    if rung == "recon+mean":
        return Splice(keep, ReconPlus(xh, extra=noise.mean_r))
    if rung == "recon+gaussian":
        return Splice(keep, ReconPlus(xh, sampler=partial(noise.draws, rng=rng)))
    return Splice(keep, ReconPlus(xh, sampler=partial(noise.pert.sample, seed=rng)))


def _second_pass(plan: _Plan, runner: Runner, acc: _Pass1, noise: _Noise) -> None:
    """Stage 5, per batch: the rungs that need every batch's tokens (means, backgrounds), with
    the clean distribution kept from the first pass (or computed again past its budget). Batch
    ``i``'s draws come from ``default_rng([seed, i, 0x9A7C])``."""
    for i, b in enumerate(plan.batches):
        rng = np.random.default_rng([int(plan.seed), i, 0x9A7C])
        lp_clean = None
        if not acc.no_kl:
            lg = acc.clean_logits[i] if i < len(acc.clean_logits) else None
            if lg is None:  # over the cache budget: the clean logits are computed again
                out = runner.hook.run(plan.model, b)
                lg = logits_of(out, plan.logits, plan.vocab)
                del out
            lp_clean = CleanDistribution(lg)
            acc.clean_logits[i] = None
        keep, tm, xh, xr, lead = acc.keeps[i], acc.token_masks[i], acc.xh_store[i], acc.x_store[i], acc.leads[i]
        for rung in plan.global_rungs:
            transform = _global_transform(plan, noise, rung, keep, xh, rng)
            if rung in NOISE_RUNGS:
                lr, kr = runner.run_resampled(b, lead, transform, tm, lp_clean, rung, rng, xr, acc.copy_bytes[i])
            else:
                lr, kr = runner.run_once(b, transform, tm, lp_clean, rung, xr, lead)
            acc.per_loss[rung][i], acc.per_kl[rung][i] = lr, kr
        del lp_clean, xr
        acc.xh_store[i] = acc.x_store[i] = None
