"""pft against SAELens' own run_evals on the same tokens: every shared metric at float32
tolerance, with and without masked special tokens (and the convention switch)."""

import math

import numpy as np
import pytest
import torch

pytest.importorskip("sae_lens", reason="sae-lens is not installed (pip install 'pft[interop]')")
pytest.importorskip("transformer_lens", reason="transformer-lens is not installed (pip install 'pft[interop]')")

from pft.interop import evaluate, next_token_loss
from pft.residual import patch_scores, score

BOS, EOS, BATCH, N_SEQ = 0, 1, 8, 24  # as in conftest.world (checked there)

RTOL, ATOL = 2e-5, 2e-6
SAELENS_RUNGS = ["clean", "zero_ablation", "recon"]


class Store:
    """What run_evals reads from an ActivationsStore: fixed token batches, in order."""

    def __init__(self, tokens, batch):
        self.tokens, self.i = tokens, 0
        self.context_size, self.store_batch_size_prompts = tokens.shape[1], batch

    def get_batch_tokens(self, n):
        b = self.tokens[self.i:self.i + n]
        self.i += n
        return b

    def reset_input_dataset(self):
        self.i = 0


def run_saelens(world, sae, exclude):
    assert (world["bos"], world["eos"], world["batch"], len(world["tokens"])) == (BOS, EOS, BATCH, N_SEQ)
    from sae_lens.evals import ActivationScaler, EvalConfig, run_evals

    cfg = EvalConfig(batch_size_prompts=BATCH, n_eval_reconstruction_batches=N_SEQ // BATCH,
                     n_eval_sparsity_variance_batches=N_SEQ // BATCH, compute_kl=True, compute_ce_loss=True,
                     compute_sparsity_metrics=True, compute_variance_metrics=True)
    m, _ = run_evals(sae, Store(world["tokens"], BATCH), world["model"], ActivationScaler(), cfg,
                     exclude_special_tokens=exclude)
    flat = {}
    for group in m.values():
        flat.update(group)
    return flat


def compare(ours, theirs, names):
    bad = {k: (ours[k], theirs[k]) for k in names if not math.isclose(ours[k], theirs[k], rel_tol=RTOL, abs_tol=ATOL)}
    assert not bad, f"pft vs SAELens differ: {bad}"


SHARED = ["ce_loss_score", "ce_loss_without_sae", "ce_loss_with_sae", "ce_loss_with_ablation", "kl_div_score",
          "kl_div_with_sae", "kl_div_with_ablation", "mse", "cossim", "explained_variance",
          "explained_variance_legacy", "l0"]


@pytest.mark.parametrize("kind", ["standard", "topk", "hook_z"])
def test_unmasked_every_shared_metric_matches_run_evals(world, kind):
    sae = world["saes"][kind]
    theirs = run_saelens(world, sae, False)
    res = evaluate(world["model"], sae, world["tokens"].numpy(), n_seqs=None, batch_size=BATCH, exclude_tokens=None,
                   rungs=SAELENS_RUNGS, progress=False)
    ours = res.saelens_metrics()
    compare(ours, theirs, SHARED)
    # the numbers are not degenerate: the comparison could fail
    assert 0.05 < theirs["ce_loss_score"] < 1.5 and theirs["kl_div_with_ablation"] > 2 * theirs["kl_div_with_sae"] > 0
    assert res.score.nan_reasons.get("l0") is None and not math.isnan(res.score.l0)
    if kind == "hook_z":
        assert res.hook == "blocks.0.attn.hook_z" and res.score.d == 32


def test_masked_with_the_saelens_convention_matches_and_pft_default_differs_where_documented(world):
    sae = world["saes"]["standard"]
    theirs = run_saelens(world, sae, [BOS, EOS])
    kw = dict(n_seqs=None, batch_size=BATCH, exclude_tokens=[BOS, EOS], rungs=SAELENS_RUNGS, progress=False)
    same = evaluate(world["model"], sae, world["tokens"].numpy(), convention="saelens", **kw)
    assert same.patch.n_excluded == int(np.isin(world["tokens"].numpy(), [BOS, EOS]).sum()) > N_SEQ
    compare(same.saelens_metrics(), theirs, SHARED)
    own = evaluate(world["model"], sae, world["tokens"].numpy(), **kw).saelens_metrics()
    # pft's default keeps masked tokens clean in the zero rung: the same clean and recon rungs,
    # a different ablation baseline (hence score)
    compare(own, theirs, ["ce_loss_without_sae", "ce_loss_with_sae", "kl_div_with_sae", "mse", "cossim", "l0",
                          "explained_variance", "explained_variance_legacy"])
    for k in ("ce_loss_with_ablation", "kl_div_with_ablation", "ce_loss_score"):
        assert not math.isclose(own[k], theirs[k], rel_tol=1e-3), k


def test_a_wrong_definition_would_fail(world):
    """Plausible wrong definitions land outside the tolerance: the test above can fail."""
    sae = world["saes"]["standard"]
    theirs = run_saelens(world, sae, [BOS, EOS])
    toks = world["tokens"]
    keep = ~np.isin(toks.numpy(), [BOS, EOS])
    _, cache = world["model"].run_with_cache(toks)
    x = cache["blocks.0.hook_resid_post"].double().reshape(-1, 32)[torch.as_tensor(keep.reshape(-1))]
    xh = sae.decode(sae.encode(x.float())).double()
    r2 = ((x - xh) ** 2).sum(1)
    # explained_variance_legacy centred on all tokens' mean instead of each batch's
    glob = float((1 - r2 / ((x - x.mean(0)) ** 2).sum(1)).mean())
    assert not math.isclose(glob, theirs["explained_variance_legacy"], rel_tol=RTOL, abs_tol=ATOL)
    # pft's own legacy value (global centring) is that wrong-for-SAELens one, to rounding
    rep = score(cache["blocks.0.hook_resid_post"], sae, mask=keep, progress=False)
    assert rep.explained_variance_legacy == pytest.approx(glob, rel=1e-6)
    # mse as a mean over entries rather than a sum over dimensions
    assert not math.isclose(float(r2.mean()) / 32, theirs["mse"], rel_tol=RTOL)
    # the clean loss as a mean of per-sequence means rather than pooled over tokens (rows hold
    # different numbers of masked tokens)
    rep = patch_scores(world["model"], "blocks.0.hook_resid_post", toks, batch_size=BATCH, interpretation=sae,
                       loss_fn=next_token_loss, mask=keep, convention="saelens", rungs=SAELENS_RUNGS, progress=False)
    assert rep.ce_loss_score == pytest.approx(theirs["ce_loss_score"], rel=RTOL)
    with torch.no_grad():
        per_tok = world["model"](toks, return_type="loss", loss_per_token=True).double()
    k = torch.as_tensor(keep[:, :-1])
    row_means = float(((per_tok * k).sum(1) / k.sum(1)).mean())
    assert rep.ce_loss_without_sae == pytest.approx(float(per_tok[k].mean()), rel=1e-6)
    assert not math.isclose(row_means, theirs["ce_loss_without_sae"], rel_tol=RTOL, abs_tol=ATOL)


def test_hook_z_sae_in_patch_scores_and_score(world):
    """A hook_z SAE reads (B, L, n_heads, d_head) as rows of n_heads·d_head, in both entry points,
    and is left in hook_z mode."""
    sae = world["saes"]["hook_z"]
    toks = world["tokens"]
    _, cache = world["model"].run_with_cache(toks)
    z = cache["blocks.0.attn.hook_z"]
    rep = score(z, sae, progress=False)
    flat = z.reshape(-1, 32)
    with torch.no_grad():
        sae.turn_off_forward_pass_hook_z_reshaping()
        xh = sae.decode(sae.encode(flat))
        sae.turn_on_forward_pass_hook_z_reshaping()
    mse = float(((flat - xh).double() ** 2).sum(1).mean())
    assert rep.d == 32 and rep.n_tokens == z.shape[0] * z.shape[1] and rep.mse == pytest.approx(mse, rel=1e-6)
    assert sae.hook_z_reshaping_mode and sae.decode(sae.encode(z[:1])).shape == z[:1].shape
    pr = patch_scores(world["model"], "blocks.0.attn.hook_z", toks, batch_size=BATCH, interpretation=sae,
                      loss_fn=next_token_loss, progress=False, n_resamples=2)
    assert pr.d == 32 and pr.n_tokens == z.shape[0] * z.shape[1]
    assert abs(pr.sanity_delta) < 1e-6 and not math.isnan(pr.gaussian_recovered) and not math.isnan(pr.kl_score)


def test_a_hf_directory_loads_into_transformer_lens_offline(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    from pft.interop import load_model

    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=40, n_positions=12, n_ctx=12, n_embd=16, n_layer=2, n_head=2)
    hf = GPT2LMHeadModel(cfg).eval()
    hf.save_pretrained(tmp_path)
    tl = load_model(tmp_path, tl_name="gpt2-tiny")
    assert type(tl).__name__ == "HookedTransformer" and tl.cfg.model_name == "gpt2-tiny"
    ids = torch.randint(0, 40, (2, 10), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(tl(ids), hf(ids).logits, rtol=1e-5, atol=1e-5)
