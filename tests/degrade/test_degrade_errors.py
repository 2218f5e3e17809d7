"""Bad settings give clear errors or warnings; the user's model is never modified."""

import json
import math

import numpy as np
import pytest
import torch

from pft.degrade import (
    LearningCoefficient,
    MixingWarning,
    SampleResult,
    SamplerDivergenceError,
    StepSizeWarning,
    TemperedPosterior,
    degraded_models,
)
from pft.errors import InputError, NotFittedError, OutOfReachError, PftError


@pytest.fixture
def toy(regression):
    return regression([1.0, 1.0, 1.0], n=200, seed=2)


def test_diverging_step_size_raises_with_a_hint(toy):
    model, x, y, h = toy
    # H = 2I, nβ = 200/log 200 = 37.7: p = 2nβ + γ = 76.5. ε p = 4.6 > 4 is unstable: the
    # deviation is multiplied by |1 - εp/2| = 1.3 every step.
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=0.06)
    # Caught before sampling from the curvature at w* (power iteration finds h_max = 2) ...
    with pytest.raises(SamplerDivergenceError, match=r"h_max = 2\b.*= 4.59 exceeds .* Try step_size=0.00052"):
        post.sample(2000, n_chains=2, burn_in=0, progress=False)
    assert post.max_curvature_ == pytest.approx(2.0, rel=1e-3)
    # ... and, without that check, by the runaway test while sampling.
    with pytest.raises(SamplerDivergenceError, match=r"chain 0 diverged .*Try step_size=0.006") as info:
        post.sample(2000, n_chains=2, burn_in=0, check_step_size=False, progress=False)
    assert isinstance(info.value, PftError)
    # Just inside the stability limit (ε p = 3.82) the chain runs, with a warning about the
    # variance inflation 1/(1 - 3.82/4) - 1 = 2100 %.
    ok = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=0.05)
    with pytest.warns(StepSizeWarning, match=r"= 3.82, .* inflated by 2\d{3} %"):
        ok.sample(1000, n_chains=2, burn_in=0, progress=False)


class Fragile(torch.nn.Module):
    """A quadratic loss that becomes NaN once w leaves (w* - 0.1, w* + 0.1)."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))

    def forward(self, x):
        return x * self.w + 1e-6 * torch.sqrt(0.1 - self.w.abs())


def test_nan_loss_during_sampling_raises(toy):
    x = torch.ones(10, 1, dtype=torch.float64)
    y = torch.zeros(10, 1, dtype=torch.float64)
    # β = 1e-3: the posterior sd is about 1/sqrt(γ) = 1, so the chain soon crosses |w| = 0.1.
    post = TemperedPosterior(Fragile(), torch.nn.MSELoss(), (x, y), beta=1e-3, localization=1.0, step_size=0.01)
    with pytest.raises(SamplerDivergenceError, match="non-finite loss"):
        post.sample(500, n_chains=1, burn_in=0, progress=False)


def test_nan_loss_at_w_star_is_an_input_error():
    x = torch.ones(10, 1, dtype=torch.float64)
    model = Fragile()
    with torch.no_grad():
        model.w.fill_(0.2)
    with pytest.raises(InputError, match="loss at the trained weights"):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, torch.zeros_like(x)))


@pytest.mark.parametrize(
    "model",
    [torch.nn.Identity(), torch.nn.Linear(2, 1).requires_grad_(False)],
    ids=["no-parameters", "all-frozen"],
)
def test_model_without_trainable_parameters(model):
    x = torch.ones(4, 2)
    with pytest.raises(InputError, match="no trainable parameters"):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, torch.ones(4, 1)))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(step_size=0.0), "`step_size` must be a finite number > 0; got 0.0. ε is the SGLD step size."),
        (dict(step_size=float("nan")), "`step_size`"),
        (dict(step_size="big"), "`step_size` must be a finite number > 0; got 'big'."),
        (dict(beta=-1.0), "`beta` must be a finite number > 0; got -1.0. β is an inverse temperature."),
        (dict(localization=-1.0), "`localization` must be a finite number >= 0; got -1.0. γ is the pull towards w\\*."),
        (dict(n=1.0), "needs n > 1"),
        (dict(batch_size=0), "`batch_size` must be an integer >= 1"),
        (dict(batch_size=10_000), "`batch_size` must be at most the number of rows 200"),
        (dict(seed=-3), "`seed` must be a non-negative integer"),
        (dict(seed=True), "`seed` must be a non-negative integer"),
        (dict(batch_size=True), "`batch_size` must be an integer >= 1; got True."),
        (dict(dtype=torch.int64), "`dtype`"),
    ],
)
def test_bad_settings_name_the_argument(toy, kwargs, match):
    model, x, y, h = toy
    with pytest.raises(InputError, match=match):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, y), **kwargs)


def test_bad_data_and_loss(toy):
    model, x, y, h = toy
    with pytest.raises(InputError, match="pair \\(inputs, targets\\)"):
        TemperedPosterior(model, torch.nn.MSELoss(), x)
    with pytest.raises(InputError, match="share a non-empty first dimension"):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, y[:-1]))
    bad = x.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(InputError, match="1 non-finite values"):
        TemperedPosterior(model, torch.nn.MSELoss(), (bad, y))
    with pytest.raises(InputError, match="scalar tensor"):
        TemperedPosterior(model, torch.nn.MSELoss(reduction="none"), (x, y))
    with pytest.raises(InputError, match="`loss_fn` must be callable"):
        TemperedPosterior(model, "mse", (x, y))
    with pytest.raises(InputError, match="`model` must be a torch.nn.Module"):
        TemperedPosterior(lambda t: t, torch.nn.MSELoss(), (x, y))


def test_bad_sample_arguments(toy):
    model, x, y, h = toy
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=1e-3)
    with pytest.raises(NotFittedError, match="call .sample"):
        post.learning_coefficient()
    for kw, match in [
        (dict(n_draws=0), "`n_draws`"),
        (dict(n_draws=10, n_chains=0), "`n_chains`"),
        (dict(n_draws=10, burn_in=-1), "`burn_in`"),
        (dict(n_draws=10, thin=0), "`thin`"),
        (dict(n_draws=10, seed=1.5), "`seed`"),
    ]:
        with pytest.raises(InputError, match=match):
            post.sample(progress=False, **kw)
    with pytest.raises(OutOfReachError, match="keep_draws=False"):
        post.sample(10**9, progress=False)


def test_unconverged_trace_warns(toy):
    model, x, y, h = toy
    # ε p = 76.5e-5: the loss takes ~1/(εp) ≈ 1300 steps to climb to equilibrium from L*, so
    # 800 draws with no burn-in are a rising trace.
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=1e-5)
    with pytest.warns(MixingWarning) as record:
        res = post.sample(800, n_chains=2, burn_in=0, progress=False)
    assert any("still rising" in str(w.message) for w in record)
    assert any("rising" in w for w in res.diagnostics.warnings)
    assert res.diagnostics.drift_z < -4


def test_user_model_is_never_modified(toy, checksum):
    model, x, y, h = toy
    model.train()
    before = checksum(model)
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=5e-3)
    res = post.sample(400, n_chains=2, burn_in=10, progress=False)
    post.loss_at(res.draws[0, -1])
    copy = post.make_model(res.draws[1, -1])
    outs = list(
        degraded_models(model, torch.nn.MSELoss(), (x, y), temperatures=[0, 10.0], n_copies=2,
                        localization=1.0, step_size=1e-3, burn_in=10, thin=5, progress=False)
    )
    assert checksum(model) == before
    # The copies share no storage with the model: changing them leaves it alone.
    with torch.no_grad():
        for m in [copy] + [o.model for o in outs]:
            for p in m.parameters():
                p.add_(1.0)
    assert checksum(model) == before
    # And a failing run does not leave the model modified either.
    with pytest.raises(SamplerDivergenceError):
        TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=0.06).sample(
            2000, n_chains=1, burn_in=0, progress=False
        )
    assert checksum(model) == before


def test_degraded_models_settings_and_losses(toy):
    model, x, y, h = toy
    temps = [0, math.log(200), 8 * math.log(200)]
    with pytest.raises(InputError, match="`temperatures`"):
        degraded_models(model, torch.nn.MSELoss(), (x, y), temperatures=[-1.0])
    with pytest.raises(InputError, match="`temperatures`"):
        degraded_models(model, torch.nn.MSELoss(), (x, y), temperatures=5.0)
    with pytest.raises(InputError, match="`n_copies`"):
        degraded_models(model, torch.nn.MSELoss(), (x, y), temperatures=[1.0], n_copies=0)
    outs = list(
        degraded_models(model, torch.nn.MSELoss(), (x, y), temperatures=temps, n_copies=6,
                        n_chains=3, localization=1.0, step_size=2e-3, burn_in=300, thin=20, progress=False)
    )
    assert [(o.temperature, o.draw) for o in outs] == [(0.0, 0)] + [
        (t, k) for t in temps[1:] for k in range(6)
    ]
    assert outs[0].loss_increase == 0.0 and math.isinf(outs[0].beta)
    for o in outs:
        # loss_increase is the full-data loss of the yielded model, recomputed here.
        with torch.no_grad():
            direct = torch.nn.functional.mse_loss(o.model(x), y).item()
        assert o.loss == pytest.approx(direct, rel=1e-12)
        json.loads(o.to_json())
    # Exact Gaussian: E[L - L*] = ½ tr(H (nβH + γ)⁻¹) = 3 / (2nβ + γ) per temperature with
    # H = 2I; the 6 draws per temperature average a (χ²₃-like) quantity with relative sd
    # sqrt(2/3)/sqrt(6) ≈ 0.33: allow a factor 2.5 either way.
    for t in temps[1:]:
        inc = np.mean([o.loss_increase for o in outs if o.temperature == t])
        truth = 1.5 * 2 / (2 * 200 / t + 1.0)
        assert 1 / 2.5 < inc / truth < 2.5, (t, inc, truth)


def test_results_round_trip_and_print(toy):
    model, x, y, h = toy
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=2e-3)
    res = post.sample(300, n_chains=2, burn_in=50, progress=False)
    back = SampleResult.from_json(res.to_json())
    assert np.array_equal(back.losses, res.losses) and back.draws is None
    assert back.diagnostics.rhat == res.diagnostics.rhat
    assert back.learning_coefficient().value == res.learning_coefficient().value
    lc = post.learning_coefficient()
    assert LearningCoefficient.from_json(lc.to_json()) == lc
    text = str(res)
    assert "λ̂" in text and "R-hat" in text and "d/2 = 1.5" in text
    assert "d/2 (regular)" in str(lc)
    sd = res.state_dict(1, 299)
    assert list(sd) == ["weight"] and torch.equal(sd["weight"][0], res.draws[1, 299])
    with pytest.raises(InputError, match="`chain`, `draw`"):
        res.state_dict(2, 0)
    with pytest.raises(InputError, match="holds no draws"):
        back.state_dict(0, 0)


class WithIdle(torch.nn.Module):
    """A linear map plus a parameter the loss never touches (its grad stays None)."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(2, 1, bias=False)
        self.idle = torch.nn.Parameter(torch.full((3,), 0.5))

    def forward(self, x):
        return self.lin(x)


def test_parameter_without_gradient_follows_the_prior_and_dtype_is_private():
    # The idle parameter feels only the pull γ(w - w*) and the noise: its stationary law is
    # N(w*, 1/(γ (1 - εγ/4))) exactly (the unadjusted chain on a Gaussian).
    g = torch.Generator().manual_seed(0)
    x = torch.randn(100, 2, generator=g)
    model = WithIdle()
    y = model(x).detach()
    gamma, eps = 4.0, 0.05
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=gamma, step_size=eps,
                             dtype=torch.float64)
    assert model.idle.dtype == torch.float32 and model.idle.grad is None  # the copy is float64, not the model
    with pytest.warns(StepSizeWarning):  # stiff for the weights (ε p = 2.7); idle has p = γ
        res = post.sample(3000, n_chains=4, burn_in=100, progress=False)
    assert res.draws.dtype == torch.float64
    # The curvature check handles the unused parameter (a zero block of the Hessian).
    h = 2 * torch.linalg.eigvalsh(x.double().T @ x.double() / 100).max().item()
    assert post.max_curvature_ == pytest.approx(h, rel=0.02)
    # named_parameters order: the module's own `idle` first, then `lin.weight`.
    assert res.param_names == ("idle", "lin.weight")
    idle = res.draws[..., :3].numpy() - 0.5  # (4, 3000, 3)
    var = (idle**2).mean(axis=-1)
    c, n = var.shape
    bm = var[:, : n // 20 * 20].reshape(c, 20, -1).mean(axis=2).ravel()
    se = bm.std(ddof=1) / math.sqrt(bm.size)
    truth = 1 / (gamma * (1 - eps * gamma / 4))
    assert abs(var.mean() - truth) < 4 * se
    assert abs(idle.mean()) < 0.05


def test_losses_read_back_in_blocks_as_on_an_accelerator(toy, monkeypatch):
    # On a GPU the loss trace is read back every 64 steps, not every step; the draws and the
    # step named in a divergence must not depend on that.
    import pft.degrade._posterior as posterior

    model, x, y, h = toy
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=5e-4)
    every_step = post.sample(40, n_chains=2, burn_in=13, thin=3, seed=5, progress=False)
    bad = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=0.06)
    with pytest.raises(SamplerDivergenceError) as one:
        bad.sample(2000, n_chains=1, burn_in=0, check_step_size=False, progress=False)
    monkeypatch.setattr(posterior, "_check_interval", lambda device: 7)
    blocks = post.sample(40, n_chains=2, burn_in=13, thin=3, seed=5, progress=False)
    np.testing.assert_array_equal(blocks.losses, every_step.losses)
    np.testing.assert_array_equal(blocks.burn_in_losses, every_step.burn_in_losses)
    np.testing.assert_array_equal(blocks.draws.numpy(), every_step.draws.numpy())
    with pytest.raises(SamplerDivergenceError) as seven:
        bad.sample(2000, n_chains=1, burn_in=0, check_step_size=False, progress=False)
    assert str(seven.value) == str(one.value)
