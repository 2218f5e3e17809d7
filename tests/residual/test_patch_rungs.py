"""patch_scores' rungs=, its forward-pass count, and noise draws batched into one forward."""

import math

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.residual import patch_scores


class Counted(torch.nn.Module):
    """(B, L, d) inputs -> 'layer' (linear) -> causal running mean -> per-position readout;
    counts forwards and the rows each one saw."""

    def __init__(self, d=5, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.layer = torch.nn.Linear(d, d, dtype=torch.float64)
        self.head = torch.nn.Linear(d, 1, dtype=torch.float64)
        with torch.no_grad():
            self.layer.weight.copy_(torch.randn(d, d, generator=g, dtype=torch.float64))
            self.head.weight.copy_(torch.randn(1, d, generator=g, dtype=torch.float64))
        self.rows = []

    def forward(self, u):
        self.rows.append(u.shape[0])
        h = self.layer(u)
        c = h.cumsum(1) / torch.arange(1, u.shape[1] + 1, dtype=h.dtype)[None, :, None]
        return self.head(torch.tanh(c))[..., 0]


def sq_loss(out, batch):
    return (out - batch[1]) ** 2


@pytest.fixture(scope="module")
def setup():
    g = torch.Generator().manual_seed(1)
    u = torch.randn(48, 6, 5, generator=g, dtype=torch.float64)
    model = Counted().eval()
    with torch.no_grad():
        y = model(u) + 0.1 * torch.randn(48, 6, generator=g, dtype=torch.float64)
    batches = [(u[i:i + 12], y[i:i + 12]) for i in range(0, 48, 12)]
    P = torch.linalg.qr(torch.randn(5, 3, generator=g, dtype=torch.float64))[0]

    def interp(h):  # project on 3 of 5 directions: a residual with structure
        return h @ P @ P.T

    return model, batches, interp


def _run(setup, **kw):
    model, batches, interp = setup
    model.rows.clear()
    kw.setdefault("n_resamples", 4)
    rep = patch_scores(model, "layer", batches, interpretation=interp, loss_fn=sq_loss, progress=False, **kw)
    return rep, list(model.rows)


def test_forward_passes_per_batch(setup):
    rep, rows = _run(setup)
    # per batch: clean (captures), zero, recon, recon+residual; then mean, recon+mean, and the 4
    # Gaussian draws in one forward on the batch repeated 4 times
    assert len(rows) == 4 * 7 and rows.count(48) == 4 and rows.count(12) == 4 * 6
    _, rows = _run(setup, rungs=["clean", "zero_ablation", "recon"])
    assert len(rows) == 4 * 3 + 1  # and the sanity check on the first batch
    _, rows = _run(setup, batch_resamples=False)
    assert len(rows) == 4 * 10


def test_a_subset_of_rungs_gives_the_same_numbers_and_says_what_is_missing(setup):
    full, _ = _run(setup)
    sub, _ = _run(setup, rungs=["recon", "zero_ablation", "recon+gaussian"])
    assert sub.rungs == ("clean", "zero_ablation", "recon", "recon+gaussian")
    for r in sub.rungs:
        assert sub.loss_of(r) == pytest.approx(full.loss_of(r), rel=1e-12)
    assert sub.ce_loss_recovered == pytest.approx(full.ce_loss_recovered, rel=1e-12)
    assert sub.gaussian_recovered == pytest.approx(full.gaussian_recovered, rel=1e-12)
    assert math.isnan(sub.mean_ablation_recovered)
    assert sub.nan_reasons["mean_ablation_recovered"] == "rung mean_ablation not run (see `rungs`)"
    assert "why: rung mean_ablation not run" in str(sub) and "first batch" in str(sub)
    assert abs(sub.sanity_delta) < 1e-9
    assert "mean_ablation_recovered" in type(sub).from_json(sub.to_json()).nan_reasons


def test_batched_draws_equal_one_forward_per_draw(setup):
    a, _ = _run(setup, rungs=["recon", "recon+gaussian"], batch_resamples=True)
    b, _ = _run(setup, rungs=["recon", "recon+gaussian"], batch_resamples=False)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    np.testing.assert_allclose(a.loss_se, b.loss_se, rtol=1e-9)


def test_a_model_that_mixes_rows_falls_back_to_one_forward_per_draw(setup):
    model, batches, interp = setup

    class Mixer(torch.nn.Module):  # a batch-norm-like model: the copies would see each other
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, u):
            return self.inner(u)

    def loss_scalar(out, b):  # one number per batch: the copies cannot be told apart
        return ((out - b[1]) ** 2).mean()

    m = Mixer()
    kw = dict(interpretation=interp, progress=False, n_resamples=3, rungs=["recon", "recon+gaussian"])
    model.rows.clear()
    a = patch_scores(m, "inner.layer", batches, loss_fn=loss_scalar, **kw)
    rows = list(model.rows)
    b = patch_scores(m, "inner.layer", batches, loss_fn=loss_scalar, batch_resamples=False, **kw)
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-12)
    assert rows.count(36) == 1  # one try on the repeated batch, then one forward per draw
    assert len(rows) == 4 * 2 + 1 + 1 + 4 * 3  # clean+recon per batch, sanity, the try, 3 draws per batch


def test_rungs_bad_input_names_the_argument(setup):
    with pytest.raises(InputError, match=r"`rungs` has unknown rung \['recon\+noise'\]"):
        _run(setup, rungs=["recon+noise"])
    with pytest.raises(InputError, match="`rungs` asks for 'recon\\+perturbative' but `background` is Gaussian"):
        _run(setup, rungs=["recon+perturbative"])
    with pytest.raises(InputError, match="`rungs` must be a list"):
        _run(setup, rungs="recon")
    with pytest.raises(InputError, match="`convention` must be"):
        _run(setup, convention="sae")


def test_saelens_convention_replaces_masked_tokens_in_the_ablation_rungs_only(setup):
    model, batches, interp = setup
    keep = np.ones((48, 6), bool)
    keep[:, 0] = False
    ref, _ = _run(setup, exclude_positions=(0,), rungs=["zero_ablation", "recon", "mean_ablation"])
    sae, _ = _run(setup, exclude_positions=(0,), rungs=["zero_ablation", "recon", "mean_ablation"], convention="saelens")
    assert sae.loss_of("recon") == ref.loss_of("recon") and sae.loss_of("clean") == ref.loss_of("clean")
    # naive twin of the saelens zero rung: the layer's output is 0 at every position (masked
    # ones too), so the readout is its bias; the loss is averaged over the kept positions
    with torch.no_grad():
        tot = sum(float(((model.head.bias - b[1]) ** 2)[:, 1:].sum()) for b in batches)
    assert sae.loss_of("zero_ablation") == pytest.approx(tot / keep.sum(), rel=1e-12)
    assert sae.loss_of("zero_ablation") != pytest.approx(ref.loss_of("zero_ablation"), rel=1e-6)
    assert sae.convention == "saelens" and "convention 'saelens'" in str(sae)
    unmasked = _run(setup, rungs=["zero_ablation", "recon"])[0]
    assert _run(setup, rungs=["zero_ablation", "recon"], convention="saelens")[0].loss.tolist() == unmasked.loss.tolist()


def test_default_background_from_streamed_moments_equals_a_fit_on_the_rows(setup):
    """The default Gaussian is fitted from the residual's moments merged batch by batch, with
    torch; an unfitted GaussianBackground is fitted on the stacked rows with numpy. Same draws
    (on a residual with distinct eigenvalues: in a degenerate eigenspace any basis is right,
    and two solvers may pick different ones)."""
    from pft.numeric import GaussianBackground

    model, batches, _ = setup
    kw = dict(rungs=["recon", "recon+mean", "recon+gaussian"], seed=3)
    a, _ = _run((model, batches, lambda h: 0.5 * h), **kw)
    b, _ = _run((model, batches, lambda h: 0.5 * h), background=GaussianBackground(shrinkage="ledoit-wolf"), **kw)
    assert b.background.startswith("the given Gaussian background (fitted")
    np.testing.assert_allclose(a.loss, b.loss, rtol=1e-10)
    np.testing.assert_allclose(a.loss_se, b.loss_se, rtol=1e-7)


def test_draws_are_grouped_under_the_tiled_batch_budget(setup, monkeypatch):
    from pft.residual import _patch_rungs

    kw = dict(rungs=["recon", "recon+gaussian"], seed=2)
    ref, _ = _run(setup, batch_resamples=False, **kw)
    # one copy of a batch's hooked output is 12 × 6 × 5 float64 = 2880 bytes: two per forward
    monkeypatch.setattr(_patch_rungs, "TILE_BYTES_CPU", 2 * 2880 + 100)
    got, rows = _run(setup, **kw)
    assert rows.count(24) == 4 * 2 and rows.count(48) == 0
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-12)
    np.testing.assert_allclose(got.loss_se, ref.loss_se, rtol=1e-9)
    monkeypatch.setattr(_patch_rungs, "TILE_BYTES_CPU", 2000)  # less than one copy: one forward per draw
    got, rows = _run(setup, **kw)
    assert rows.count(12) == 4 * (2 + 4) + 1 and len(rows) == 4 * 6 + 1
    np.testing.assert_allclose(got.loss, ref.loss, rtol=1e-12)
