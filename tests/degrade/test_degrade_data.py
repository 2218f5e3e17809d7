"""Data as a pair, a DataLoader or a list of batches; n_beta=; train=; the curvature probe
batch; explicit settings used as given."""

import math
import warnings

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from pft.degrade import MixingWarning, TemperedPosterior
from pft.errors import InputError


@pytest.fixture
def small(regression):
    return regression([1.0, 0.5], n=64, seed=1)


def run(data, model, **kw):
    # short chains: equality of the numbers is the point here, not their mixing
    post = TemperedPosterior(model, torch.nn.MSELoss(), data, **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixingWarning)
        res = post.sample(150, n_chains=2, burn_in=20, progress=False)
    return post, res


def test_dataloader_gives_the_same_numbers_as_the_pair_for_the_same_batches(small):
    model, x, y, h = small
    # One batch of all rows per epoch: the same gradient every step as full-batch sampling on
    # the pair, so the same draws, losses and λ̂ (same seed, same noise), at the defaults too.
    pair, a = run((x, y), model)
    loader, b = run(DataLoader(TensorDataset(x, y), batch_size=64), model)
    assert loader.n_ == 64 and loader.nbeta_ == pair.nbeta_
    assert loader.init_loss_ == pytest.approx(pair.init_loss_, rel=1e-14)
    assert loader.step_size_ == pair.step_size_ and loader.localization_ == pair.localization_
    np.testing.assert_array_equal(a.losses, b.losses)
    assert a.learning_coefficient().value == b.learning_coefficient().value
    # Batches of 16 in a fixed order: a DataLoader and a plain list of the same batches agree.
    kw = dict(step_size=1e-3, localization=1.0)
    batches = [(x[i : i + 16], y[i : i + 16]) for i in range(0, 64, 16)]
    _, c = run(DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False), model, **kw)
    lst, d = run(batches, model, **kw)
    np.testing.assert_array_equal(c.losses, d.losses)
    assert c.learning_coefficient() == d.learning_coefficient()
    # The kept losses are those of the batches in order: draw k (step 20 + k) sees batch (20 + k) % 4.
    k = 7
    w = d.draws[0, k]
    with torch.no_grad():
        direct = torch.nn.functional.mse_loss(batches[(20 + k) % 4][0] @ w[:, None], batches[(20 + k) % 4][1])
    assert d.losses[0, k] == pytest.approx(float(direct), rel=1e-12)
    assert lst.n_ == 64 and d.steps_per_epoch == 4
    # L(w*) over the batches is the full-data mean loss.
    with torch.no_grad():
        assert lst.init_loss_ == pytest.approx(float(torch.nn.functional.mse_loss(model(x), y)), rel=1e-12)


def test_n_given_and_n_beta(small):
    model, x, y, h = small
    kw = dict(step_size=1e-3, localization=1.0)
    a = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), n=1000, **kw)
    assert a.n_ == 1000 and a.beta_ == pytest.approx(1 / math.log(1000))
    b = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), n_beta=a.nbeta_, **kw)
    assert b.nbeta_ == pytest.approx(a.nbeta_) and b.beta_ == pytest.approx(a.nbeta_ / 64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixingWarning)
        ra = a.sample(10, n_chains=1, burn_in=5, progress=False)
        rb = b.sample(10, n_chains=1, burn_in=5, progress=False)
    np.testing.assert_allclose(ra.losses, rb.losses, rtol=1e-12)
    with pytest.raises(InputError, match="one of `beta` and `n_beta`"):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, y), beta=1.0, n_beta=10.0, **kw)
    with pytest.raises(InputError, match="`n_beta` must be a finite number > 0; got .*n_beta is n β, devinterp's `nbeta`."):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, y), n_beta=-1.0, **kw)


def test_bad_data_forms(small):
    model, x, y, h = small
    loss = torch.nn.MSELoss()
    with pytest.raises(InputError, match="one-shot iterator"):
        TemperedPosterior(model, loss, ((x[i : i + 8], y[i : i + 8]) for i in range(0, 64, 8)))
    with pytest.raises(InputError, match="`batch_size` applies to data given as one"):
        TemperedPosterior(model, loss, DataLoader(TensorDataset(x, y), batch_size=8), batch_size=8)
    with pytest.raises(InputError, match="batch 0 is a dict"):
        TemperedPosterior(model, loss, [{"x": x, "y": y}])
    with pytest.raises(InputError, match="batch 1 is a tuple of length 3"):
        TemperedPosterior(model, loss, [(x, y), (x, y, y)])
    with pytest.raises(InputError, match="yielded no batches"):
        TemperedPosterior(model, loss, [])
    bad = x.clone()
    bad[2, 0] = float("inf")
    with pytest.raises(InputError, match="batch 1 inputs` has 1 non-finite"):
        TemperedPosterior(model, loss, [(x, y), (bad, y)])
    with pytest.raises(InputError, match="data batch 0"):
        TemperedPosterior(model, loss, [(x, y[:-1])])


class Dropped(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1, bias=False).double()
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.lin(self.drop(x))


def test_train_mode_argument(small):
    model, x, y, h = small
    net = Dropped()
    net.train()
    kw = dict(step_size=1e-3, localization=1.0)
    with torch.no_grad():
        eval_loss = float(torch.nn.functional.mse_loss(net.lin(x), y))
    # Default train=False: the private copy runs in eval mode (dropout off, L deterministic).
    post = TemperedPosterior(net, torch.nn.MSELoss(), (x, y), **kw)
    assert not post._work.training and net.training  # the user's model keeps its mode
    assert post.init_loss_ == pytest.approx(eval_loss, rel=1e-12)
    torch.manual_seed(0)
    on = TemperedPosterior(net, torch.nn.MSELoss(), (x, y), train=True, **kw)
    assert on._work.training and on.init_loss_ != pytest.approx(eval_loss, rel=1e-6)
    net.eval()
    assert not TemperedPosterior(net, torch.nn.MSELoss(), (x, y), train=None, **kw)._work.training
    with pytest.raises(InputError, match="`train`"):
        TemperedPosterior(net, torch.nn.MSELoss(), (x, y), train="yes", **kw)


def test_curvature_from_a_random_batch_not_the_first_rows():
    # Rows sorted by |x|: the first 50 of 1000 carry almost no signal, so their Hessian
    # 2 x x^T / 50 is tiny; a random batch of 50 sees about the full-data curvature 2 E[x²].
    rng = np.random.default_rng(0)
    x = np.sort(np.abs(rng.normal(size=1000))) * rng.choice([-1.0, 1.0], size=1000)
    x = torch.from_numpy(x)[:, None]
    y = 0.5 * x + 0.1 * torch.from_numpy(rng.normal(size=(1000, 1)))
    model = torch.nn.Linear(1, 1, bias=False).double()
    with torch.no_grad():
        model.weight.fill_(float((x * y).sum() / (x * x).sum()))
    full = 2 * float((x * x).mean())
    first = 2 * float((x[:50] ** 2).mean())
    assert first < 0.01 * full
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), batch_size=50, step_size=1e-4, localization=1.0)
    assert 0.4 * full < post.max_curvature() < 2.5 * full


def test_explicit_settings_are_used_as_given(small):
    model, x, y, h = small
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), step_size=3e-4, localization=0.0)
    assert post.step_size_ == 3e-4 and post.localization_ == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixingWarning)
        res = post.sample(20, n_chains=1, burn_in=3, progress=False)
    assert res.step_size == 3e-4 and res.localization == 0.0 and res.burn_in == 3
    # Only the missing one is chosen: ε from the curvature for the given γ.
    auto = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=2.0)
    p = auto.nbeta_ * max(auto.max_curvature(), auto.draw_curvature_) + 2.0
    assert auto.localization_ == 2.0 and auto.step_size_ == pytest.approx(0.04 / p)
    # burn_in="auto": two relaxation times 2/(εγ) of the localization-only directions at 8 ε, then 200 at ε.
    fast, total, factor = auto.auto_burn_in()
    assert factor == 8.0 and fast == math.ceil(2 / (8 * auto.step_size_ * 2.0)) and total == fast + 200


def test_flat_loss_needs_explicit_settings():
    model = torch.nn.Linear(2, 1, bias=False).double()
    x = torch.zeros(10, 2, dtype=torch.float64)
    with pytest.raises(InputError, match="Pass `step_size` and `localization` explicitly"):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, torch.zeros(10, 1, dtype=torch.float64)))
