"""degrade_experiment at a tiny size, against what can be computed without it: the toy's data and
the trained model rebuilt here (the same seeds), L(w*) by a plain torch MSE, the residual of each
interpretation at the trained weights in numpy (the full dictionary's is exactly the Gaussian
background), λ̂ from the kept losses, the paired advantages from the rows; and the JSON round
trips of every degrade result."""

import math
import warnings

import numpy as np
import pytest
import torch

from pft.degrade import DegradedModel, DegradeExperiment, SampleResult, TemperedPosterior, degrade_experiment
from pft.degrade._toymodel import train_toy_model
from pft.errors import InputError, MixingWarning
from pft.toy import superposition

N, SEED = 200, 3
SETTINGS = dict(temperatures=(0, 1), n_copies=2, n_draws=100, n_chains=2, burn_in=100, thin=20,
                n_train_steps=300, seed=SEED, progress=False)


@pytest.fixture(scope="module")
def run():
    with torch.random.fork_rng():
        torch.set_num_threads(1)
        return degrade_experiment(N, **SETTINGS)


def _fvu(x, recon):
    r = x - recon
    return float(np.mean((r**2).sum(1)) / (np.mean((x**2).sum(1)) - (x.mean(0) ** 2).sum()))


def test_trained_weights_row_is_the_toy_computed_here(run):
    data = superposition(N, d=8, n_features=24, density=0.05, seed=SEED)
    codes = data.codes * 0.93 ** np.arange(24)
    model, c = train_toy_model(codes, d=8, steps=300, seed=SEED)
    with torch.no_grad():
        init = float(((model(c) - c) ** 2).mean())
        hidden = (c @ model.W.T).numpy()
    assert run.samples.init_loss == pytest.approx(init, rel=1e-12)
    x = hidden + data.background
    w = model.W.detach().numpy().T  # (24, 8)
    imp = codes.var(0) * (w**2).sum(1)
    rare, top = np.argsort(imp)[:4], np.argsort(imp)[-3:]
    keep = lambda drop: [f for f in range(24) if f not in set(drop.tolist())]  # noqa: E731
    want = {
        "dictionary": _fvu(x, x - data.background),  # the residual is the Gaussian background itself
        "minus 4 least important": _fvu(x, codes[:, keep(rare)] @ w[keep(rare)]),
        "minus 3 most important": _fvu(x, codes[:, keep(top)] @ w[keep(top)]),
    }
    rows = {r["interpretation"]: r for r in run.across.rows if r["temperature"] == 0}
    assert set(rows) == set(want)
    for name, fvu in want.items():
        assert rows[name]["fvu"] == pytest.approx(fvu, rel=1e-9), name
        assert rows[name]["loss_increase"] == 0.0


def test_learning_coefficient_and_temperatures(run):
    n = float(N)
    lc = run.learning_coefficient
    s = run.samples
    assert s.losses.shape == (2, 100) and s.draws is None
    assert lc.value == pytest.approx(n / math.log(n) * (s.losses.mean() - s.init_loss), rel=1e-12)
    assert lc.d == run.n_parameters == 8 * 24 + 24 and lc.beta == pytest.approx(1 / math.log(n))
    assert run.temperatures == pytest.approx((0.0, math.log(n)))
    assert run.step_size > 0 and run.localization == 10.0
    copies = [r for r in run.across.rows if r["interpretation"] == "dictionary"]
    assert [(r["temperature"] > 0, r["draw"]) for r in copies] == [(False, 0), (True, 0), (True, 1)]
    assert all(r["loss_increase"] > 0 for r in copies[1:])  # tempered copies fit worse


def test_advantages_are_the_paired_differences_of_the_rows(run):
    t = run.temperatures[1]
    rows = [r for r in run.across.rows if r["temperature"] == t]
    for other, cells in run.advantages().items():
        a = {r["draw"]: r["nongaussian_bits"] for r in rows if r["interpretation"] == "dictionary"}
        b = {r["draw"]: r["nongaussian_bits"] for r in rows if r["interpretation"] == other}
        diff = np.array([b[k] - a[k] for k in sorted(a)])
        (t0, *_), (t1, mean, se, k) = cells
        assert t0 == 0 and t1 == t and k == 2
        assert mean == pytest.approx(diff.mean(), rel=1e-12, abs=1e-15)
        assert se == pytest.approx(diff.std(ddof=1) / math.sqrt(2), rel=1e-12, abs=1e-15)


def test_report_text(run):
    text = str(run)
    assert text.startswith("toy of superposition: 24 features in 8 dimensions, 216 parameters, n = 200")
    assert "LearningCoefficient" in text and "AcrossReport" in text
    assert "vs minus 4 least important: 1/β=0:" in text and "vs minus 3 most important" in text


def test_experiment_round_trips_through_json(run):
    back = DegradeExperiment.from_json(run.to_json())
    assert back.to_json() == run.to_json()  # the same to_dict(), NaN (dead_fraction) included
    assert str(back) == str(run)


def test_bad_arguments_name_the_argument():
    for kw, message in [
        (dict(n_tokens=49), "`n_tokens` must be an integer >= 50; got 49."),
        (dict(n_tokens=True), "`n_tokens` must be an integer >= 50; got True."),
        (dict(temperatures=(0, -1)), "`temperatures` must be a finite number >= 0; got -1."),
        (dict(temperatures=()), "`temperatures` must be a non-empty sequence"),
        (dict(temperatures=3), "`temperatures` must be a sequence of numbers >= 0; got 3."),
        (dict(n_draws=0), "`n_draws` must be an integer >= 1; got 0."),
        (dict(thin=0), "`thin` must be an integer >= 1; got 0."),
        (dict(seed=-1), "`seed` must be a non-negative integer (below 2**63); got -1."),
        (dict(progress="no"), "`progress` must be True or False; got 'no'."),
    ]:
        with pytest.raises(InputError) as info:
            degrade_experiment(**kw)
        assert str(info.value).startswith(message), str(info.value)


def test_degraded_model_and_sample_result_round_trip():
    m = DegradedModel(torch.nn.Linear(1, 1), temperature=0.0, beta=float("inf"), n=50.0, loss=0.25,
                      loss_increase=0.0, draw=0)
    back = DegradedModel.from_json(m.to_json())
    assert back.to_dict() == m.to_dict() and back.model is None and math.isinf(back.beta)
    m2 = DegradedModel(None, temperature=2.0, beta=0.5, n=50.0, loss=0.5, loss_increase=0.25, draw=3)
    assert DegradedModel.from_json(m2.to_json()).to_dict() == m2.to_dict()


def test_sample_result_plot_follows_the_convention(tmp_path, regression):
    import matplotlib.figure
    import matplotlib.pyplot as plt

    model, x, y, _ = regression([1.0, 2.0], n=100)
    with warnings.catch_warnings():  # 20 draws are not meant to mix
        warnings.simplefilter("ignore", MixingWarning)
        res = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=1.0, step_size=1e-3).sample(
            20, n_chains=2, burn_in=10, progress=False)
    assert isinstance(res, SampleResult)
    before = plt.get_fignums()
    fig = res.plot()
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 1
    assert len(fig.axes[0].lines) == 3  # two chains and λ̂
    given = matplotlib.figure.Figure()
    ax = given.add_subplot()
    assert res.plot(ax=ax) is given and len(ax.lines) == 3
    path = tmp_path / "chains.png"
    assert res.plot(path).__class__ is matplotlib.figure.Figure and path.stat().st_size > 1000
    assert plt.get_fignums() == before


def test_degraded_models_old_keyword_still_works_and_warns(regression):
    from pft.degrade import degraded_models
    from pft.errors import PftDeprecationWarning

    model, x, y, _ = regression([1.0, 2.0], n=100)
    kw = dict(temperatures=[0, 5.0], step_size=1e-3, localization=1.0, burn_in=20, thin=5, progress=False)
    with pytest.warns(PftDeprecationWarning, match="`draws_per_temperature` is deprecated; use `n_copies`"):
        old = list(degraded_models(model, torch.nn.MSELoss(), (x, y), draws_per_temperature=2, **kw))
    new = list(degraded_models(model, torch.nn.MSELoss(), (x, y), n_copies=2, **kw))
    assert [m.to_dict() for m in old] == [m.to_dict() for m in new] and len(new) == 3
    with pytest.raises(InputError, match="pass only `n_copies`"):
        degraded_models(model, torch.nn.MSELoss(), (x, y), draws_per_temperature=2, n_copies=2, **kw)
