"""score and patch_scores take what a SAELens user has (no sae-lens needed here): an SAE-shaped
object, masks, (B, L, H, d_head) outputs, a bare-logits model, one token tensor + batch_size."""

import json
import math

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.interop import next_token_loss
from pft.residual import patch_scores, score


class ReluSAE(torch.nn.Module):
    """The SAELens shape (encode/decode, W_dec, b_dec, cfg.d_in), float32."""

    def __init__(self, d, m, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.nn.Parameter(torch.randn(d, m, generator=g) / math.sqrt(d))
        self.W_dec = torch.nn.Parameter(self.W_enc.detach().T.clone())
        self.b_enc = torch.nn.Parameter(-0.3 * torch.ones(m))
        self.b_dec = torch.nn.Parameter(torch.zeros(d))
        self.cfg = type("Cfg", (), {"d_in": d})()

    def encode(self, x):
        return torch.relu((x - self.b_dec) @ self.W_enc + self.b_enc)

    def decode(self, f):
        return f @ self.W_dec + self.b_dec


def _acts(n=3000, d=12, seed=0):
    g = np.random.default_rng(seed)
    return (g.standard_normal((n, d)) * np.linspace(0.5, 2, d) + g.laplace(size=(n, 1)) * 0.5).astype(np.float32)


def test_score_takes_the_sae_object_and_computes_codes_in_chunks():
    x = _acts()
    sae = ReluSAE(12, 40)
    with torch.no_grad():
        f = sae.encode(torch.from_numpy(x))
        xh = sae.decode(f).numpy()
    ref = score(x, xh, codes=f.numpy(), progress=False)
    got = score(x, sae, chunk_rows=700, progress=False)  # several chunks
    # naive twins of the two code statistics
    nz = f.numpy() != 0
    assert got.l0 == pytest.approx(nz.sum(1).mean(), rel=1e-12)
    assert got.dead_fraction == pytest.approx(float(np.mean(~nz.any(0))), abs=0)
    for k in ("mse", "fvu", "cosine", "nongaussian_bits", "gaussian_nll_bits", "l0", "dead_fraction"):
        assert getattr(got, k) == pytest.approx(getattr(ref, k), rel=1e-6, abs=1e-9), k
    assert not got.nan_reasons


def test_score_without_codes_says_why_l0_is_nan_in_table_and_json():
    x = _acts()
    rep = score(x, 0.9 * x, progress=False)
    assert math.isnan(rep.l0) and "no codes" in rep.nan_reasons["l0"] and "no codes" in rep.nan_reasons["dead_fraction"]
    assert "why: no codes" in str(rep)
    d = json.loads(rep.to_json())
    assert "no codes" in d["nan_reasons"]["l0"]
    assert type(rep).from_json(rep.to_json()) == rep


def test_score_mask_and_exclude_positions_equal_cutting_the_rows_by_hand():
    x = _acts(n=40 * 50).reshape(40, 50, 12)
    sae = ReluSAE(12, 40)
    g = np.random.default_rng(1)
    mask = g.random((40, 50)) > 0.1
    keep = mask.copy()
    keep[:, 0] = False
    got = score(x, sae, mask=mask, exclude_positions=(0,), progress=False)
    rows = x.reshape(-1, 12)[keep.reshape(-1)]
    ref = score(rows, sae, progress=False)
    assert got.n_tokens == keep.sum() and got.n_excluded == keep.size - keep.sum()
    assert got.excluded == "mask, positions (0,)"
    for k in ("mse", "fvu", "l0", "nongaussian_bits", "mardia_kurtosis_z"):
        assert getattr(got, k) == pytest.approx(getattr(ref, k), rel=1e-9), k
    with pytest.raises(InputError, match="exclude every one"):
        score(x, sae, mask=np.zeros((40, 50), bool), progress=False)
    with pytest.raises(InputError, match=r"`mask` has shape \(50, 40\)"):
        score(x, sae, mask=np.ones((50, 40), bool), progress=False)


def test_saelens_batch_centres_each_batch_like_saelens():
    x = _acts(n=16 * 20).reshape(16, 20, 12) + 3.0 * np.arange(16)[:, None, None].astype(np.float32)  # batch means differ
    sae = ReluSAE(12, 40)
    keep = np.ones((16, 20), bool)
    keep[:, 0] = False
    rep = score(x, sae, exclude_positions=(0,), saelens_batch=4, progress=False)
    # the naive twin: SAELens' formula, batch of 4 sequences by batch
    with torch.no_grad():
        vals = []
        for b in range(0, 16, 4):
            xb = torch.from_numpy(x[b:b + 4][keep[b:b + 4]]).double()
            xh = sae.decode(sae.encode(xb.float())).double()
            vals.append(1 - ((xb - xh) ** 2).sum(1) / ((xb - xb.mean(0)) ** 2).sum(1))
    assert rep.explained_variance_legacy == pytest.approx(float(torch.cat(vals).mean()), rel=1e-6)
    glob = score(x, sae, exclude_positions=(0,), progress=False).explained_variance_legacy
    assert abs(glob - rep.explained_variance_legacy) > 1e-3  # the two conventions differ here


def test_ragged_input_gets_a_clear_error():
    with pytest.raises(InputError, match="ragged or nested"):
        score([np.zeros((3, 4)), np.zeros((5, 4))], ReluSAE(4, 8), progress=False)
    with pytest.raises(InputError, match="`codes` is read from the interpretation"):
        score(_acts(), ReluSAE(12, 40), codes=np.zeros((3000, 40)), progress=False)


# ---------------------------------------------------------------------- a tiny LM with bare logits
class TinyLM(torch.nn.Module):
    """Embedding -> 'attn' (B, L, H, dh) -> causal mean -> unembed; returns bare logits like
    a HookedTransformer, and declares cfg.d_vocab."""

    def __init__(self, V=20, H=2, dh=3, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.cfg = type("Cfg", (), {"d_vocab": V})()
        self.emb = torch.nn.Embedding(V, H * dh)
        self.z = torch.nn.Linear(H * dh, H * dh)
        self.hook_z = torch.nn.Identity()
        self.out = torch.nn.Linear(H * dh, V)
        self.H, self.dh = H, dh

    def forward(self, ids):
        e = self.emb(ids)
        z = self.hook_z(torch.tanh(self.z(e)).reshape(*ids.shape, self.H, self.dh))
        h = z.reshape(*ids.shape, -1).cumsum(1) / torch.arange(1, ids.shape[1] + 1)[None, :, None]
        return self.out(h + e)


@pytest.fixture(scope="module")
def lm():
    m = TinyLM().eval()
    for p in m.parameters():
        p.requires_grad_(False)
    ids = torch.randint(0, 20, (24, 10), generator=torch.Generator().manual_seed(0))
    sae = ReluSAE(6, 16)
    return m, ids, sae


def test_bare_logits_give_kl_and_hook_z_rows_are_heads_times_d_head(lm):
    m, ids, sae = lm
    kw = dict(batch_size=8, interpretation=sae, loss_fn=next_token_loss, progress=False, n_resamples=2)
    auto = patch_scores(m, "hook_z", ids, **kw)
    explicit = patch_scores(m, "hook_z", ids, logits=lambda out: out, **kw)
    assert auto.d == 6 and auto.n_tokens == 240  # (B·L) rows of H·d_head, not (B·L·H) of d_head
    assert not math.isnan(auto.kl_score) and "kl" not in auto.nan_reasons
    np.testing.assert_allclose(auto.kl, explicit.kl, rtol=1e-12)
    none = patch_scores(m, "hook_z", ids, logits=None, **kw)
    assert math.isnan(none.kl_score) and "logits=None" in none.nan_reasons["kl_score"]
    assert "KL to clean: n/a, why: logits=None" in str(none)
    # the KL of the recon rung is the naive twin's
    with torch.no_grad():
        lp0 = torch.log_softmax(m(ids).double(), -1)
        m.hook_z.register_forward_hook(lambda mod, i, o: sae.decode(sae.encode(o.reshape(*o.shape[:2], -1))).reshape(o.shape))
        lp1 = torch.log_softmax(m(ids).double(), -1)
        m.hook_z._forward_hooks.clear()
    assert auto.kl_div_with_sae == pytest.approx(float((lp0.exp() * (lp0 - lp1)).sum(-1).mean()), rel=1e-6)


def test_batch_size_equals_a_list_of_batches_and_bad_uses_are_named(lm):
    m, ids, sae = lm
    kw = dict(interpretation=sae, loss_fn=next_token_loss, progress=False, n_resamples=2)
    a = patch_scores(m, "hook_z", ids, batch_size=8, **kw)
    b = patch_scores(m, "hook_z", [ids[i:i + 8] for i in range(0, 24, 8)], **kw)
    assert a == b
    with pytest.raises(InputError, match="`batch_size` must be an integer >= 1; got 0"):
        patch_scores(m, "hook_z", ids, batch_size=0, **kw)
    with pytest.raises(InputError, match="already a list of batches"):
        patch_scores(m, "hook_z", [ids], batch_size=8, **kw)
    with pytest.raises(InputError, match="or pass batch_size="):
        patch_scores(m, "hook_z", ids, **kw)


def test_a_loss_fn_that_runs_the_model_again_is_named(lm):
    m, ids, sae = lm

    def rerun(out, b):
        return next_token_loss(m(b), b)

    with pytest.raises(InputError, match="`loss_fn` called the model"):
        patch_scores(m, "hook_z", ids, batch_size=8, interpretation=sae, loss_fn=rerun, progress=False)
    assert not m.hook_z._forward_hooks
