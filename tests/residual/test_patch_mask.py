"""patch_scores' token mask (`mask`, `exclude_positions`) against a naive numpy twin of the
masked computation, closed forms, and bad input."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.numeric import GaussianBackground
from pft.residual import patch_scores


class CausalReadout(torch.nn.Module):
    """u (B, L, k) -> h = A u (the hooked layer) -> tap -> out_t = b + Σ_{s ≤ t} w·h_s.

    Causal: the output at t sees every position up to t, so a splice at s changes every output
    at t ≥ s, masked or not. ``tap`` records what reaches the rest of the model."""

    def __init__(self, A, w, b):
        super().__init__()
        self.layer = torch.nn.Linear(A.shape[1], A.shape[0], bias=False, dtype=torch.float64)
        self.tap = torch.nn.Identity()
        self.w = torch.as_tensor(w)
        self.b = float(b)
        with torch.no_grad():
            self.layer.weight.copy_(torch.as_tensor(A))

    def forward(self, u):
        h = self.tap(self.layer(u))
        return self.b + torch.cumsum(h @ self.w, dim=1)


def sq_loss(out, batch):
    return (out - batch[1]) ** 2  # (B, L): one loss per position


@pytest.fixture(scope="module")
def setup():
    rng = np.random.default_rng(0)
    B, L, k, d = 240, 6, 5, 4
    A = rng.normal(size=(d, k))
    w = rng.normal(size=d) * 0.5
    b = 0.2
    U = rng.normal(size=(B, L, k)) + 0.3
    U[:, 0] *= 200.0  # position 0 is a "sink": a massive activation that would swamp every mean
    H = U @ A.T
    y = np.cumsum(H @ w, axis=1) + b + rng.normal(size=(B, L))
    y[:, 0] = rng.normal(size=B)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    P = Q[:, :3] @ Q[:, :3].T
    c = rng.normal(size=d) * 0.1
    mask = rng.random((B, L)) > 0.25
    mask[7] = False  # a row with nothing that counts
    batches = [(torch.as_tensor(U[i : i + 60]), torch.as_tensor(y[i : i + 60])) for i in range(0, B, 60)]
    return dict(A=A, w=w, b=b, U=U, H=H, y=y, P=P, c=c, mask=mask, batches=batches)


def _interp(P, c):
    Pt, ct = torch.as_tensor(P), torch.as_tensor(c)
    return lambda h: h @ Pt + ct


def _twin_losses(s, keep, Hprime_kept):
    """Naive twin: per-position losses when the kept tokens' activations become Hprime_kept and
    the masked ones stay clean; the token-weighted mean over kept positions, and per-row sums."""
    H2 = s["H"].copy()
    H2[keep] = Hprime_kept
    pred = s["b"] + np.cumsum(H2 @ s["w"], axis=1)
    loss = (pred - s["y"]) ** 2
    sums = np.where(keep, loss, 0.0).sum(1)
    n = keep.sum(1)
    return sums[n > 0], n[n > 0]


def _mean_se(sums, n):
    R = sums.sum() / n.sum()
    return R, np.std(sums - R * n, ddof=1) / (math.sqrt(len(n)) * n.mean())


def test_masked_scores_equal_the_closed_form_on_the_tokens_that_count(setup):
    s = setup
    keep = s["mask"].copy()
    keep[:, 0] = False  # what exclude_positions=(0,) adds
    seen = []

    class Recording(GaussianBackground):
        def fit(self, X, *args, **kwargs):
            seen.append(self)
            return super().fit(X, *args, **kwargs)

    model = CausalReadout(s["A"], s["w"], s["b"])
    rep = patch_scores(
        model, "layer", s["batches"], interpretation=_interp(s["P"], s["c"]), loss_fn=sq_loss,
        background=Recording(shrinkage=None, singular="project"), n_resamples=4, seed=1, progress=False,
        mask=s["mask"], exclude_positions=(0,),
    )
    H, w = s["H"], s["w"]
    Hk = H[keep]  # (n_kept, d): the tokens that count, in token order
    Xk = Hk @ s["P"] + s["c"]
    Rk = Hk - Xk
    mu = Rk.mean(0)
    Sigma = (Rk - mu).T @ (Rk - mu) / len(Rk)
    twin = {
        "clean": Hk,
        "zero_ablation": np.zeros_like(Hk),
        "mean_ablation": np.broadcast_to(Hk.mean(0), Hk.shape),
        "recon": Xk,
        "recon+mean": Xk + mu,
        "recon+residual": Hk,
    }
    rows = {k: _twin_losses(s, keep, v) for k, v in twin.items()}
    for k, (sums, n) in rows.items():
        R, se = _mean_se(sums, n)
        assert rep.loss_of(k) == pytest.approx(R, rel=1e-10), k
        assert rep.loss_se[rep.rungs.index(k)] == pytest.approx(se, rel=1e-8), k
    L = {k: _mean_se(*v)[0] for k, v in rows.items()}
    assert rep.ce_loss_recovered == pytest.approx(
        (L["zero_ablation"] - L["recon"]) / (L["zero_ablation"] - L["clean"]), rel=1e-10)
    assert rep.mean_ablation_recovered == pytest.approx(
        (L["mean_ablation"] - L["recon"]) / (L["mean_ablation"] - L["clean"]), rel=1e-10)
    # E over iid z_s ~ N(μ, Σ) at the kept s ≤ t: (mean prediction − y_t)² + #{kept s ≤ t}·wᵀΣw.
    sums_m, n = rows["recon+mean"]
    n_upto = np.cumsum(keep, axis=1)
    extra = np.where(keep, n_upto, 0).sum(1)[keep.sum(1) > 0] * (w @ Sigma @ w)
    truth = (sums_m + extra).sum() / n.sum()
    i = rep.rungs.index("recon+gaussian")
    assert abs(rep.loss[i] - truth) < 4 * rep.loss_se[i] and rep.loss_se[i] < 0.05 * truth
    assert rep.n_tokens == keep.sum() and rep.n_excluded == keep.size - keep.sum()
    assert rep.n_rows == int((keep.sum(1) > 0).sum()) == 239 and rep.excluded == "mask, positions (0,)"
    # The background was fitted on the rows that count, and only on them.
    (bg,) = seen
    ref = GaussianBackground(shrinkage=None, singular="project").fit(Rk)
    np.testing.assert_allclose(bg.mean_, ref.mean_, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(bg.covariance_, ref.covariance_, rtol=1e-10, atol=1e-14)
    assert "left clean: mask, positions (0,)" in str(rep)
    assert not model.layer._forward_hooks


def test_masked_tokens_reach_the_model_bit_for_bit_clean(setup):
    s = setup
    keep = s["mask"].copy()
    keep[:, 0] = False
    model = CausalReadout(s["A"], s["w"], s["b"])
    seen, shapes = [], []
    model.tap.register_forward_hook(lambda mod, inp, out: seen.append(out.detach().clone()))

    def interp(h):  # sees only the tokens that count
        shapes.append(h.shape[0])
        return 0.5 * h

    one = s["batches"][:1]
    k0 = torch.as_tensor(keep[:60])
    patch_scores(model, "layer", one, interpretation=interp, loss_fn=sq_loss, progress=False, n_resamples=2,
                 mask=s["mask"][:60], exclude_positions=(0,), batch_resamples=False)
    # The clean forward captures the hooked output; then one forward per rung (2 Gaussian draws).
    assert len(seen) == 8
    clean = seen[0]
    for out in seen[1:]:
        assert torch.equal(out[~k0], clean[~k0])  # bit-identical where nothing counts
    assert torch.equal(seen[1][k0], torch.zeros_like(clean[k0]))  # zero ablation where it does
    assert set(shapes) == {int(k0.sum())}


def test_all_true_mask_and_empty_exclusion_equal_no_mask_exactly(setup):
    s = setup
    model = CausalReadout(s["A"], s["w"], s["b"])
    kw = dict(interpretation=_interp(s["P"], s["c"]), loss_fn=sq_loss, progress=False, n_resamples=2, seed=3)
    bs = s["batches"][:2]
    ref = patch_scores(model, "layer", bs, **kw)
    ones = np.ones((120, 6), dtype=bool)
    assert patch_scores(model, "layer", bs, mask=ones, **kw) == ref
    assert patch_scores(model, "layer", bs, mask=[torch.ones(60, 6, dtype=torch.int64)] * 2, **kw) == ref
    assert patch_scores(model, "layer", bs, exclude_positions=(), **kw) == ref
    assert ref.n_excluded == 0 and ref.excluded == ""


def test_mask_forms_agree_and_inputs_are_not_mutated(setup):
    s = setup
    model = CausalReadout(s["A"], s["w"], s["b"])
    kw = dict(interpretation=_interp(s["P"], s["c"]), loss_fn=sq_loss, progress=False, n_resamples=1, seed=0)
    bs = s["batches"][:2]
    m = s["mask"][:120].copy()
    m_before = m.copy()
    t = torch.as_tensor(m)
    u_before = [b[0].clone() for b in bs]
    a = patch_scores(model, "layer", bs, mask=m, exclude_positions=(-6,), **kw)
    b = patch_scores(model, "layer", bs, mask=[t[:60], t[60:].to(torch.int32)], exclude_positions=[0], **kw)
    # the mask travels with its batch (as an attention_mask would): (inputs, targets, mask)
    bs3 = [(u, y, t[i * 60 : (i + 1) * 60]) for i, (u, y) in enumerate(bs)]
    c = patch_scores(model, "layer", bs3, mask=lambda batch: batch[2], exclude_positions=(0,), **kw)
    assert a.excluded == "mask, positions (-6,)" and b.excluded == c.excluded == "mask, positions (0,)"
    assert b == c and dataclasses.replace(a, excluded=b.excluded) == b
    np.testing.assert_array_equal(m, m_before)
    assert torch.equal(t, torch.as_tensor(m_before))
    for before, batch in zip(u_before, bs):
        assert torch.equal(before, batch[0])


def test_kl_and_next_token_loss_count_the_positions_that_count(logits_model):
    # The hooked output is the logits: zero ablation gives the uniform distribution, so at each
    # kept position KL(p‖u) = Σ p log p + log V exactly. The (B, L − 1) loss on logits[:, :-1]
    # is matched to positions 0 … L − 2 (entry t: the prediction made at t).
    rng = np.random.default_rng(1)
    Z = rng.normal(size=(24, 5, 3)) * 2
    keep = rng.random((24, 5)) > 0.3
    keep[:, 0] = False
    Zt = torch.as_tensor(Z)
    batches = [(Zt[i : i + 8], None) for i in range(0, 24, 8)]
    rep = patch_scores(
        logits_model, "layer", batches, interpretation=lambda x: 0.5 * x, exclude_positions=(0,), mask=keep | (rng.random((24, 5)) > 2),
        loss_fn=lambda out, b: torch.logsumexp(out.logits[:, :-1], -1), progress=False,
    )
    p = np.exp(Z - np.log(np.exp(Z).sum(-1, keepdims=True)))
    kl_u = np.sum(p * np.log(p), -1) + np.log(3)
    assert rep.kl[rep.rungs.index("zero_ablation")] == pytest.approx(kl_u[keep].mean(), rel=1e-10)
    lse = np.log(np.exp(Z).sum(-1))[:, :-1]
    assert rep.loss_of("clean") == pytest.approx(lse[keep[:, :-1]].mean(), rel=1e-10)
    # zero ablation: logsumexp of zeros = log 3 where the token counts, clean elsewhere (dropped)
    assert rep.loss_of("zero_ablation") == pytest.approx(math.log(3), rel=1e-12)


def test_precomputed_reconstruction_has_a_row_per_token_and_masked_rows_are_ignored(setup):
    s = setup
    model = CausalReadout(s["A"], s["w"], s["b"])
    bs = s["batches"][:2]
    H = s["H"][:120]
    Xhat = H @ s["P"] + s["c"]
    keep = s["mask"][:120].copy()
    keep[:, 0] = False
    arr = Xhat.reshape(-1, 4).copy()
    arr[~keep.reshape(-1)] = np.nan  # never read
    kw = dict(loss_fn=sq_loss, progress=False, n_resamples=1, mask=s["mask"][:120], exclude_positions=(0,))
    a = patch_scores(model, "layer", bs, interpretation=arr, **kw)
    b = patch_scores(model, "layer", bs, interpretation=_interp(s["P"], s["c"]), **kw)
    # The residual spans one direction: the Gaussian rung's draws in the degenerate eigenspace
    # depend on rounding, so that rung agrees in distribution; the rest to rounding.
    i = a.rungs.index("recon+gaussian")
    det = [j for j in range(len(a.rungs)) if j != i]
    np.testing.assert_allclose(a.loss[det], b.loss[det], rtol=1e-10)
    assert abs(a.loss[i] - b.loss[i]) < 4 * math.hypot(a.loss_se[i], b.loss_se[i])
    with pytest.raises(InputError, match=r"has 5 rows but `batches` give at least 360 tokens.*masked tokens included"):
        patch_scores(model, "layer", bs, interpretation=arr[:5], **kw)


# ---------------------------------------------------------------------- bad input
def _hooks(m):
    return sum(len(mod._forward_hooks) for mod in m.modules())


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(mask=np.ones((120, 5), bool)), r"`mask` has shape \(120, 5\); one array .* shape \(120, 6\)"),
        (dict(mask=np.ones((120, 6))), r"`mask` must be boolean .* got dtype float64"),
        (dict(mask=np.full((120, 6), 2)), r"`mask` has integer values other than 0 and 1"),
        (dict(mask=[np.ones((60, 6), bool)]), r"`mask` is a list of 1 masks but there are 2 batches"),
        (dict(mask=[np.ones((60, 6), bool), np.ones((6, 60), bool)]), r"`mask` for batch 1 has shape \(6, 60\)"),
        (dict(mask="attention_mask"), r"`mask` must be None, a boolean"),
        (dict(mask=lambda b: b[0][..., 0]), r"`mask`\(batch 0\) .* must be boolean"),
        (dict(mask=np.zeros((120, 6), bool)), r"exclude every one of the 720 tokens.*polarity"),
        (dict(exclude_positions=tuple(range(6))), r"exclude every one of the 720 tokens"),
        (dict(exclude_positions=(6,)), r"`exclude_positions` \[6\] out of range for batch 0, whose sequences have 6"),
        (dict(exclude_positions=0), r"`exclude_positions` must be a tuple of integer positions"),
        (dict(exclude_positions=(0.5,)), r"`exclude_positions` must hold integers"),
    ],
)
def test_bad_masks_name_the_argument_and_remove_the_hook(setup, kwargs, match):
    s = setup
    model = CausalReadout(s["A"], s["w"], s["b"])
    with pytest.raises(InputError, match=match):
        patch_scores(model, "layer", s["batches"][:2], interpretation=_interp(s["P"], s["c"]), loss_fn=sq_loss,
                     progress=False, **kwargs)
    assert _hooks(model) == 0


def test_mask_needs_matching_losses_and_positions():
    m = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(3, 1))
    x = torch.randn(32, 3, generator=torch.Generator().manual_seed(0))
    flat = [(x, torch.zeros(32))]
    with pytest.raises(InputError, match="`exclude_positions` needs a sequence axis"):
        patch_scores(m, "0", flat, interpretation=lambda h: 0.5 * h, loss_fn=lambda o, b: o[:, 0] ** 2,
                     progress=False, exclude_positions=(0,))
    seq = [(x.reshape(4, 8, 3), None)]
    with pytest.raises(InputError, match=r"loss has shape \(4, 5\) but `mask` has shape \(4, 8\): axis 1 must have 8"):
        patch_scores(m, "0", seq, interpretation=lambda h: 0.5 * h, loss_fn=lambda o, b: o[:, :5, 0] ** 2,
                     progress=False, exclude_positions=(0,))
    with pytest.raises(InputError, match=r"loss has 8 rows but `mask` has 4"):
        patch_scores(m, "0", seq, interpretation=lambda h: 0.5 * h, loss_fn=lambda o, b: o[..., 0].T ** 2,
                     progress=False, exclude_positions=(0,))
    # a 2-D hooked output: one mask entry per row, and a (B,) loss drops the masked rows
    keep = np.arange(32) % 3 != 0
    rep = patch_scores(m, "0", flat, interpretation=lambda h: 0.5 * h, loss_fn=lambda o, b: o[:, 0] ** 2,
                       progress=False, mask=keep)
    with torch.no_grad():
        truth = float((m(x)[keep, 0] ** 2).double().mean())
    assert rep.n_rows == keep.sum() and rep.loss_of("clean") == pytest.approx(truth, rel=1e-6)
    assert _hooks(m) == 0
