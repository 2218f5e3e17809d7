"""patch_scores on a TransformerLens HookedTransformer runs its patched rungs from the hooked block
on (``start_at_layer``), from the clean pass's activations: the same numbers as the whole model
with a hook, and as a hand-written splice with TransformerLens' own hooks."""

import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("transformer_lens", reason="transformer-lens is not installed (pip install 'pft[interop]')")

from pft.interop import next_token_loss
from pft.residual import _patch, patch_scores
from pft.residual._patch_resume import resume_layer, token_batch

N_LAYERS, D, VOCAB, CTX = 3, 16, 40, 10
ALL = ["clean", "zero_ablation", "mean_ablation", "recon", "recon+mean", "recon+gaussian", "recon+residual"]


def _model(dtype=torch.float64, **kw):
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    cfg = HookedTransformerConfig(n_layers=N_LAYERS, d_model=D, n_heads=2, d_head=8, d_mlp=32, n_ctx=CTX,
                                  d_vocab=VOCAB, act_fn="gelu", normalization_type="LN", seed=0, dtype=dtype, **kw)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = HookedTransformer(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


@pytest.fixture(scope="module")
def setup():
    model = _model()
    g = torch.Generator().manual_seed(3)
    tokens = torch.randint(1, VOCAB, (12, CTX), generator=g)
    tokens[:, 0] = 0
    P = torch.linalg.qr(torch.randn(D, 10, generator=g, dtype=torch.float64))[0]

    def interp(h):  # keeps 10 of 16 directions: a residual with structure
        return h @ P @ P.T

    return model, tokens, interp


class _BlockCalls:
    """Counts the rows each block of the model sees (a forward hook on each block's second layer
    norm: not on a module that may be the one patched)."""

    def __init__(self, model):
        self.rows = {i: [] for i in range(N_LAYERS)}
        self.handles = [b.ln2.register_forward_hook(self._make(i)) for i, b in enumerate(model.blocks)]

    def _make(self, i):
        def f(mod, inp, out):
            self.rows[i].append(out.shape[0])

        return f

    def close(self):
        for h in self.handles:
            h.remove()


def _run(model, hook, tokens, interp, *, resume=True, monkeypatch=None, counted=None, **kw):
    if not resume:
        monkeypatch.setattr(_patch, "resume_layer", lambda model, name: None)
    calls = _BlockCalls(counted or model)
    kw.setdefault("batch_size", 4 if isinstance(tokens, torch.Tensor) else None)
    try:
        rep = patch_scores(model, hook, tokens, interpretation=interp, loss_fn=next_token_loss, progress=False, **kw)
    finally:
        calls.close()
        if not resume:
            monkeypatch.undo()
    return rep, calls.rows


@pytest.mark.parametrize(
    "hook", ["blocks.1.hook_resid_post", "blocks.1.hook_resid_pre", "blocks.1", "blocks.2.hook_resid_post"])
def test_resumed_rungs_equal_the_whole_model_with_a_hook(setup, monkeypatch, hook):
    model, tokens, interp = setup
    kw = dict(rungs=ALL, n_resamples=3, seed=5, exclude_positions=(0,))
    fast, rows = _run(model, hook, tokens, interp, **kw)
    slow, slow_rows = _run(model, hook, tokens, interp, resume=False, monkeypatch=monkeypatch, **kw)
    # the whole model with a hook: block 0 sees every rung of every batch (the 3 draws as one
    # forward on 12 rows); resumed, only the clean and recon+residual (the sanity check) forwards
    start = resume_layer(model, hook)
    assert 0 < start <= N_LAYERS
    for i in range(N_LAYERS):
        assert slow_rows[i] == [4] * 4 * 3 + [4, 4, 12] * 3
        # blocks before the splice run in the clean and sanity forwards only; the rest in all
        assert rows[i] == ([4, 4] * 3 if i < start else slow_rows[i]), i
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-11)
    np.testing.assert_allclose(fast.kl, slow.kl, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(fast.loss_se, slow.loss_se, rtol=1e-8)
    for f in ("ce_loss_recovered", "mean_ablation_recovered", "gaussian_recovered", "kl_score"):
        assert getattr(fast, f) == pytest.approx(getattr(slow, f), rel=1e-9), f
    assert abs(fast.sanity_delta) < 1e-12


def test_resumed_recon_rung_equals_a_splice_with_transformer_lens_hooks(setup):
    """Truth written here: TransformerLens' run_with_hooks replaces blocks.1.hook_resid_post by
    the interpretation at the positions that count, and next_token_loss is averaged over them."""
    model, tokens, interp = setup
    rep, rows = _run(model, "blocks.1.hook_resid_post", tokens, interp, rungs=["recon", "zero_ablation"],
                     exclude_positions=(0,))
    assert rows[0] == [4] * 4  # the clean forward of each batch and the sanity check on the first

    def splice(new_of):
        def h(act, hook):
            out = act.clone()
            out[:, 1:] = new_of(act[:, 1:])
            return out

        return h

    with torch.no_grad():
        for rung, new_of in (("recon", interp), ("zero_ablation", torch.zeros_like)):
            logits = model.run_with_hooks(tokens, fwd_hooks=[("blocks.1.hook_resid_post", splice(new_of))])
            want = float(next_token_loss(logits, tokens)[:, 1:].mean())
            assert rep.loss_of(rung) == pytest.approx(want, rel=1e-12), rung


def test_float32_model_agrees_to_float32_rounding(monkeypatch):
    model = _model(dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, VOCAB, (8, CTX), generator=g)
    P = torch.linalg.qr(torch.randn(D, 10, generator=g))[0]
    kw = dict(rungs=["clean", "zero_ablation", "recon", "recon+gaussian"], n_resamples=2)
    fast, _ = _run(model, "blocks.0.hook_resid_post", tokens, lambda h: h @ P @ P.T, **kw)
    slow, _ = _run(model, "blocks.0.hook_resid_post", tokens, lambda h: h @ P @ P.T, resume=False,
                   monkeypatch=monkeypatch, **kw)
    np.testing.assert_allclose(fast.loss, slow.loss, rtol=1e-5)
    np.testing.assert_allclose(fast.kl, slow.kl, rtol=1e-3, atol=1e-6)


def test_what_can_be_resumed():
    from transformer_lens import HookedTransformer

    model = _model()
    assert resume_layer(model, "blocks.0.hook_resid_post") == 1
    assert resume_layer(model, f"blocks.{N_LAYERS - 1}.hook_resid_post") == N_LAYERS  # the unembedding only
    assert resume_layer(model, "blocks.2.hook_resid_pre") == 2 and resume_layer(model, "blocks.2") == 3
    for name in ("blocks.1.attn.hook_z", "blocks.1.hook_resid_mid", "blocks.1.mlp", "ln_final", "blocks.7"):
        assert resume_layer(model, name) is None, name
    assert resume_layer(torch.nn.Linear(2, 2), "0") is None

    class Own(HookedTransformer):  # its own forward: it may do anything before the block
        def forward(self, *a, **k):
            return super().forward(*a, **k)

    own = _model()
    own.__class__ = Own
    assert resume_layer(own, "blocks.0.hook_resid_post") is None
    short = _model(positional_embedding_type="shortformer")
    assert resume_layer(short, "blocks.0.hook_resid_post") is None
    h = model.register_forward_pre_hook(lambda m, a: None)
    assert resume_layer(model, "blocks.0.hook_resid_post") is None
    h.remove()
    model.add_hook("blocks.0.hook_resid_post", lambda act, hook: act)  # someone else's hook on the module
    assert resume_layer(model, "blocks.0.hook_resid_post") is None
    assert resume_layer(model, "blocks.1.hook_resid_post") == 2
    model.reset_hooks()
    assert resume_layer(model, "blocks.0.hook_resid_post") == 1

    class LeftPadded:
        padding_side = "left"

    model.tokenizer = LeftPadded()
    try:
        assert resume_layer(model, "blocks.0.hook_resid_post") is None
    finally:
        model.tokenizer = None
    ids = torch.zeros(2, 5, dtype=torch.long)
    assert token_batch(ids, (2, 5)) and token_batch((ids, None), (2, 5))
    assert not token_batch({"input": ids}, (2, 5)) and not token_batch(ids.double(), (2, 5))
    assert not token_batch(ids, (2, 4)) and not token_batch(ids[0], (5,))


def test_a_mapping_batch_runs_the_whole_model(setup, monkeypatch):
    from transformer_lens import HookedTransformer

    model, tokens, interp = setup

    class Keywords(torch.nn.Module):  # model(**batch): the resumed path does not apply
        def __init__(self):
            super().__init__()
            self.tl = model

        def forward(self, input_ids):
            return self.tl(input_ids)

    assert not isinstance(Keywords(), HookedTransformer)
    rep, rows = _run(model, "blocks.1.hook_resid_post", [(tokens[:6],), (tokens[6:],)], interp,
                     rungs=["recon"], exclude_positions=(0,))
    mapped = [{"input_ids": tokens[:6]}, {"input_ids": tokens[6:]}]
    ref, ref_rows = _run(Keywords(), "tl.blocks.1.hook_resid_post", mapped, interp, rungs=["recon"],
                         exclude_positions=(0,), counted=model)
    assert rows[0] == [6, 6, 6] and ref_rows[0] == [6] * 5  # tuples of token ids are resumed, Mappings not
    np.testing.assert_allclose(rep.loss, ref.loss, rtol=1e-12)
