"""The statistics of :func:`pft.residual.patch_scores`: per-row loss and KL sums, ratios of means
with their delta-method standard errors, and the :class:`~pft.residual.PatchReport` built from them.

Every rung is run on the same rows, so each score is a ratio of mean losses over paired rows and
its standard error comes from the per-row differences (:func:`ratio`). A row contributes the sum
of its entries that count and their number (:func:`row_sums`): means are token-weighted.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from pft._validate import describe
from pft.errors import InputError, PatchError
from pft.residual._patch_masks import entry_weights
from pft.residual._patch_report import PatchReport

__all__ = ["row_sums", "ratio", "vocab_size", "logits_of", "no_logits_reason", "CleanDistribution", "kl_rows",
           "kl_rows_of", "assemble"]


def row_sums(loss: Any, what: str, keep: Any = None, label: str = "loss", check: bool = True):
    """Per-row ``(sums, counts)`` of a scalar, (B,) or (B, ...) loss over the entries that count
    (all of them without a mask; see :func:`entry_weights`)."""
    import torch

    if not isinstance(loss, torch.Tensor):
        try:
            loss = torch.as_tensor(loss, dtype=torch.float64)
        except Exception:
            raise InputError(f"`loss_fn` must return a tensor of losses; got {describe(loss)}.") from None
    loss = loss.detach().to(torch.float64)
    if keep is None:
        w = torch.ones(loss.shape, dtype=torch.bool, device=loss.device)
    else:
        source = "`loss_fn`'s loss" if label == "loss" else "the per-position KL (from the logits)"
        w = entry_weights(keep.to(loss.device), tuple(loss.shape), source)
    if loss.ndim == 0:
        loss, w = loss.reshape(1), w.reshape(1)
    flat = loss.reshape(loss.shape[0], -1)
    wf = w.reshape(loss.shape[0], -1)
    bad_rows = (wf & ~torch.isfinite(flat)).any(dim=1)
    if check and bool(bad_rows.any()):
        bad = int(bad_rows.sum())
        raise PatchError(
            f"the {label} is non-finite on {bad} row{'s' if bad != 1 else ''} in the "
            f"{what} run; "
            + (
                "the unpatched model already produces NaN/inf — check the inputs and the model."
                if what == "clean"
                else "the patched model overflows; check the interpretation's scale (or the background)."
            )
        )
    sums = torch.where(wf, flat, torch.zeros((), dtype=flat.dtype, device=flat.device)).sum(dim=1)
    return sums.cpu().numpy(), wf.sum(dim=1).cpu().numpy().astype(np.float64)


def ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """``mean(num)/mean(den)`` and its delta-method standard error from paired rows."""
    n = len(num)
    mden = float(np.mean(den))
    if n == 0 or mden == 0:
        return math.nan, math.nan
    R = float(np.mean(num)) / mden
    if n < 2:
        return R, math.nan
    return R, float(np.std(num - R * den, ddof=1) / (math.sqrt(n) * abs(mden)))


def vocab_size(model: Any) -> int | None:
    """The model's vocabulary size when it declares one (TransformerLens ``cfg.d_vocab_out`` /
    ``cfg.d_vocab``, transformers ``config.vocab_size``)."""
    for holder, names in ((getattr(model, "cfg", None), ("d_vocab_out", "d_vocab")),
                          (getattr(model, "config", None), ("vocab_size",))):
        for n in names:
            v = getattr(holder, n, None)
            if isinstance(v, (int, np.integer)) and v > 1:
                return int(v)
    return None


def logits_of(out: Any, logits: Any, vocab: int | None = None):
    """The logits in a model output (None when there are none to find)."""
    import torch

    if logits is None or logits is False:
        return None
    if callable(logits):
        return logits(out)
    if logits == "auto":
        lg = getattr(out, "logits", None)
        if lg is None and isinstance(out, Mapping):
            lg = out.get("logits")
        if lg is None and isinstance(out, torch.Tensor) and vocab is not None and out.ndim >= 2 \
                and out.shape[-1] == vocab and out.is_floating_point():
            lg = out  # a bare logits tensor (TransformerLens' HookedTransformer)
        return lg if isinstance(lg, torch.Tensor) else None
    raise InputError(f"`logits` must be 'auto', None or a callable output -> logits; got {logits!r}.")


def no_logits_reason(out: Any, logits: Any, vocab: int | None) -> str:
    if logits is None or logits is False:
        return "logits=None was passed: no KL is computed"
    shape = f" of shape {tuple(out.shape)}" if hasattr(out, "shape") else ""
    voc = f" (the model's vocabulary is {vocab})" if vocab else " (the model declares no vocabulary size)"
    return (f"logits='auto' found no logits in the model's output ({type(out).__name__}{shape}): no `.logits`, no "
            f"'logits' key, and not a tensor whose last axis is the vocabulary{voc}; pass logits=lambda out: ...")


def kl_rows(logp_clean, out, logits, what: str, keep: Any = None, vocab: int | None = None):
    """Per-row ``(sums, counts)`` of ``KL(p_clean ‖ p)`` per position (None without logits)."""
    lg = logits_of(out, logits, vocab)
    if lg is None or logp_clean is None:
        return None
    return kl_rows_of(logp_clean, lg, what, keep)


class CleanDistribution:
    """The clean distribution of one batch, for ``KL(p_clean ‖ p)`` against any rung: the clean
    logits ``ℓ_c``, ``p_c = softmax ℓ_c`` and ``log Σ_v p_c`` (≈ 0), in the logits' dtype
    (float32 at least), computed once per batch."""

    def __init__(self, lg) -> None:
        import torch

        self.dtype = torch.float64 if lg.dtype == torch.float64 else torch.float32
        self.l = lg.detach().to(self.dtype)
        self.p = torch.softmax(self.l, dim=-1)
        self.logz = torch.log(self.p.sum(dim=-1))


def kl_rows_of(clean: CleanDistribution, lg, what: str, keep: Any = None):
    """Per-row ``(sums, counts)`` of ``KL(p_c ‖ p)`` per position, with ``Δ = ℓ_c − ℓ``:
    ``KL = Σ_v p_c Δ + log Σ_v p_c e^{−Δ}`` (``log Σ p_c`` subtracted). Each term is small when
    the rung is close to clean, so there is no cancellation of large numbers and the per-position
    values can be evaluated in float32 (float64 logits stay float64); positions are summed in
    float64. Where an exponent underflows, the batch is redone in float64."""
    import torch

    delta = clean.l - lg.detach().to(clean.dtype)
    lin = torch.linalg.vecdot(clean.p, delta)
    delta.neg_()
    m = delta.amax(dim=-1, keepdim=True)
    delta.sub_(m).exp_()
    kl = lin + m.squeeze(-1) + torch.log(torch.linalg.vecdot(clean.p, delta)) - clean.logz
    if not bool(torch.isfinite(kl).all()) and clean.dtype != torch.float64:
        lc = clean.l.double()
        logp_c = torch.log_softmax(lc, dim=-1)
        logp = torch.log_softmax(lg.detach().double(), dim=-1)
        kl = (logp_c.exp() * (logp_c - logp)).sum(dim=-1)
    return row_sums(kl, what, keep, label="KL", check=False)


def _joined(parts: list) -> tuple[np.ndarray, np.ndarray]:
    """One rung's per-batch ``(sums, counts)`` concatenated over batches."""
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _live_rows(want, per_loss, per_kl, no_kl: str, excluded: str):
    """Per-row loss (and KL) sums of every rung, over the rows that have an entry that counts,
    with those rows' entry counts: ``(loss, n_w, kl, k_w, no_kl, n_rows)``; ``kl`` is ``{}``
    and ``no_kl`` says why when there is no KL. Rows masked throughout are left out of every
    average."""
    loss = {k: _joined(v) for k, v in per_loss.items()}
    n_all_rows = len(loss["clean"][0])
    for k, (v, _) in loss.items():
        if len(v) != n_all_rows:
            raise InputError(f"`loss_fn` returned {len(v)} rows for rung {k!r} but {n_all_rows} for the clean run.")
    has_kl = not no_kl and all(all(p is not None for p in per_kl[k]) for k in want)
    kl = {k: _joined(per_kl[k]) for k in want} if has_kl else {}
    n_w = loss["clean"][1]
    live = n_w > 0
    if not np.any(live):
        raise InputError(
            f"no entry of `loss_fn`'s loss counts: every row's scored positions are masked ({excluded}); "
            "see patch_scores' Notes for how loss entries are matched to the mask."
        )
    loss = {k: v[0][live] for k, v in loss.items()}
    n_w = n_w[live]
    k_w = None
    if has_kl:
        k_w = kl["clean"][1]
        k_live = k_w > 0
        kl = {k: v[0][k_live] for k, v in kl.items()}
        k_w = k_w[k_live]
        if not bool(np.any(k_live)):
            kl, no_kl = {}, "every KL entry is masked"
    return loss, n_w, kl, k_w, no_kl, int(np.sum(live))


def _sanity_delta(loss, n_w, sanity_rows, check_rtol: float, name: str) -> float:
    """``L_{recon+residual} − L_clean`` (on the first batch when ``sanity_rows`` holds its
    ``(clean, recon+residual)`` rows: the rung was not asked for), checked against
    ``check_rtol · (|L_clean| + 1)``; :class:`~pft.errors.PatchError` otherwise."""
    L_clean = ratio(loss["clean"], n_w)[0]
    if sanity_rows:
        (cs, cw), (ss, _) = sanity_rows[0]
        ok = cw > 0
        delta = float(np.sum(ss[ok]) / np.sum(cw[ok]) - np.sum(cs[ok]) / np.sum(cw[ok])) if np.any(ok) else 0.0
        ref = float(np.sum(cs[ok]) / np.sum(cw[ok])) if np.any(ok) else L_clean
        where = " (first batch)"
    else:
        delta = ratio(loss["recon+residual"], n_w)[0] - L_clean
        ref, where = L_clean, ""
    tol = float(check_rtol) * (abs(ref) + 1.0)
    if not abs(delta) <= tol:
        raise PatchError(
            f"sanity check failed{where}: splicing x̂ + (x − x̂) back into {name!r} gives mean loss "
            f"{ref + delta:.6g}, but the clean model gives {ref:.6g} (difference {delta:.3g} > {tol:.3g}). "
            "The model is not deterministic (call model.eval() to turn off dropout) or the hooked module's "
            "output is not what reaches the rest of the model."
        )
    return delta


#: Each recovered score: its field, the rungs ``(baseline, compared, reference)`` it reads, as
#: ``(L_baseline − L_compared) / (L_baseline − L_reference)``.
_RECOVERED = (
    ("ce_loss_recovered", ("zero_ablation", "recon", "clean")),
    ("mean_ablation_recovered", ("mean_ablation", "recon", "clean")),
    ("gaussian_recovered", ("recon", "recon+gaussian", "clean")),
    ("perturbative_recovered", ("recon", "recon+perturbative", "clean")),
)


def _recovered(field: str, rungs: tuple, want, loss, why: dict) -> tuple[float, float]:
    """One recovered score and its SE; NaN with the reason in ``why`` when a rung is missing or
    the denominator is 0."""
    missing = [r for r in rungs[:2] if r not in want]  # the clean rung is always run
    if missing:
        why[field] = f"rung{'s' if len(missing) > 1 else ''} {', '.join(missing)} not run (see `rungs`)"
        return math.nan, math.nan
    base, comp, ref = (loss[r] for r in rungs)
    v, se = ratio(base - comp, base - ref)
    if math.isnan(v):
        why[field] = "its denominator is 0 (the rungs it compares give the same loss)"
    return v, se


def _kl_score(want, kl, k_w, no_kl: str, why: dict) -> float:
    """SAELens' ``(KL_zero − KL_recon) / KL_zero`` (NaN with the reason in ``why``)."""
    if not kl:
        why["kl_score"] = why["kl"] = why["kl_se"] = no_kl
        return math.nan
    if "zero_ablation" not in want or "recon" not in want:
        why["kl_score"] = "rungs zero_ablation and recon are needed (see `rungs`)"
        return math.nan
    kz = ratio(kl["zero_ablation"], k_w)[0]
    if not kz > 0:
        why["kl_score"] = "the zero-ablation KL is 0"
        return math.nan
    return (kz - ratio(kl["recon"], k_w)[0]) / kz


def assemble(want, per_loss, per_kl, sanity_rows, *, no_kl, check_rtol, name, n_tokens, n_all, d, n_resamples,
             seed, bg_label, pert, loss_name, excluded, convention) -> PatchReport:
    """The report from each rung's per-batch ``(row sums, row counts)`` of loss and KL."""
    loss, n_w, kl, k_w, no_kl, n_rows = _live_rows(want, per_loss, per_kl, no_kl, excluded)
    delta = _sanity_delta(loss, n_w, sanity_rows, check_rtol, name)
    why: dict[str, str] = {}
    scores = {}
    for field, rungs in _RECOVERED:
        if field == "perturbative_recovered" and pert is None:
            scores[field] = (math.nan, math.nan)
            why[field] = "no perturbative background: pass background='perturbative' to run its rung"
        else:
            scores[field] = _recovered(field, rungs, want, loss, why)
    for field, _ in _RECOVERED:
        if field in why:
            why[field + "_se"] = why[field]
    kl_score = _kl_score(want, kl, k_w, no_kl, why)
    nan = np.full(len(want), math.nan)
    loss_stats = [ratio(loss[k], n_w) for k in want]
    kl_stats = [ratio(kl[k], k_w) for k in want] if kl else None
    return PatchReport(
        rungs=tuple(want),
        loss=np.array([v for v, _ in loss_stats]),
        loss_se=np.array([e for _, e in loss_stats]),
        kl=np.array([v for v, _ in kl_stats]) if kl else nan,
        kl_se=np.array([e for _, e in kl_stats]) if kl else nan.copy(),
        **{f: scores[f][0] for f, _ in _RECOVERED},
        **{f + "_se": scores[f][1] for f, _ in _RECOVERED},
        kl_score=kl_score,
        sanity_delta=delta,
        n_rows=n_rows,
        n_tokens=n_tokens,
        d=d,
        n_resamples=int(n_resamples),
        seed=int(seed),
        module=name,
        background=bg_label,
        loss_name=loss_name,
        n_excluded=n_all - n_tokens,
        excluded=excluded if n_all > n_tokens else "",
        convention=convention,
        nan_reasons=why,
    )
