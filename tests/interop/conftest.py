"""A small TransformerLens model and SAELens SAEs, built offline (seeded, small, quick)."""

import warnings

import numpy as np
import pytest
import torch


BOS, EOS = 0, 1
N_SEQ, CTX, BATCH = 24, 16, 8


def tiny_model():
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=2, d_model=32, n_heads=4, d_head=8, d_mlp=64, n_ctx=CTX, d_vocab=48,
                                  act_fn="gelu", normalization_type="LN", seed=0)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        return HookedTransformer(cfg).eval()


def make_tokens(seed=0):
    """(N_SEQ, CTX) ids: BOS first, a few EOS inside (special tokens to mask), the rest a noisy
    repeating pattern the model is trained on for a few steps."""
    g = np.random.default_rng(seed)
    base = (np.arange(CTX)[None, :] * 3 + g.integers(0, 40, (N_SEQ, 1))) % 44 + 2
    noise = g.random((N_SEQ, CTX)) < 0.2
    ids = np.where(noise, g.integers(2, 48, (N_SEQ, CTX)), base)
    ids[:, 0] = BOS
    ids[g.random((N_SEQ, CTX)) < 0.06] = EOS
    ids[:, 0] = BOS
    return torch.as_tensor(ids, dtype=torch.long)


def train_briefly(model, tokens, steps=40):
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        loss = model(tokens, return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def fit_sae(sae, acts, steps=60, seed=0):
    """A few Adam steps of SAELens' own forward on the activations (MSE), then eval mode."""
    torch.manual_seed(seed)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=5e-3)
    for _ in range(steps):
        loss = ((sae(acts) - acts) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p in sae.parameters():
        p.requires_grad_(False)
    return sae.eval()


@pytest.fixture(scope="session")
def world():
    """The model, the tokens, and three SAEs: standard and TopK on blocks.0.hook_resid_post, and
    a standard one on blocks.0.attn.hook_z (n_heads·d_head = 32 inputs)."""
    from sae_lens import StandardSAE, StandardSAEConfig, TopKSAE, TopKSAEConfig

    torch.manual_seed(0)
    tokens = make_tokens()
    model = train_briefly(tiny_model(), tokens)
    _, cache = model.run_with_cache(tokens)
    resid = cache["blocks.0.hook_resid_post"].reshape(-1, 32)
    z = cache["blocks.0.attn.hook_z"].reshape(-1, 32)
    saes = {}
    c = StandardSAEConfig(d_in=32, d_sae=64)
    c.metadata.hook_name = "blocks.0.hook_resid_post"
    saes["standard"] = fit_sae(StandardSAE(c), resid)
    c = TopKSAEConfig(d_in=32, d_sae=64, k=6)
    c.metadata.hook_name = "blocks.0.hook_resid_post"
    saes["topk"] = fit_sae(TopKSAE(c), resid)
    c = StandardSAEConfig(d_in=32, d_sae=64, reshape_activations="hook_z")
    c.metadata.hook_name = "blocks.0.attn.hook_z"
    zs = StandardSAE(c)
    zs.turn_off_forward_pass_hook_z_reshaping()  # trained on flat rows, used in hook_z mode after
    saes["hook_z"] = fit_sae(zs, z)
    saes["hook_z"].turn_on_forward_pass_hook_z_reshaping()
    return {"model": model, "tokens": tokens, "saes": saes, "bos": BOS, "eos": EOS, "batch": BATCH}
