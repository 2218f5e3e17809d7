"""Every result type: a JsonResult whose to_json(path) writes what it returns and whose
from_json(to_json()) gives the same result back.

The classes are discovered from each subpackage's ``__all__`` (anything with ``to_json``), so a
new result type without an example below fails ``test_every_result_type_has_an_example``.
"""

import dataclasses
import importlib
import inspect
import json
import math
import warnings

import numpy as np
import pytest

from pft._results import JsonResult

SUBPACKAGES = ("symbolic", "numeric", "residual", "scaling", "degrade", "toy", "models", "interop")


def _result_classes():
    seen = {}
    for sub in SUBPACKAGES:
        mod = importlib.import_module(f"pft.{sub}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isclass(obj) and hasattr(obj, "to_json"):
                seen.setdefault(obj, f"pft.{sub}.{name}")
    return seen


# ---------------------------------------------------------------------- one small example each


def _toy():
    from pft.toy import superposition

    return superposition(3000, d=12, n_features=24, seed=0)


def _toy_interpretation():
    from pft.toy import interpretations

    return interpretations(_toy(), fvu=0.4, n_missing=2, seed=0)["missing"]


def _laplace():
    import sympy

    from pft.symbolic import laplace_expansion

    x = sympy.Symbol("x")
    return laplace_expansion(x**2 / 2 + x**4 / 24, x, order=1, point=0)


def _residual_report():
    from pft.residual import score

    data, interp = _toy(), _toy_interpretation()
    return score(data.activations, interp.reconstruction, seed=0, progress=False)


def _readout():
    import torch

    rng = np.random.default_rng(0)
    d = 4
    net = torch.nn.Sequential(torch.nn.Linear(d, d, dtype=torch.float64), torch.nn.Linear(d, 1, dtype=torch.float64))
    U = torch.as_tensor(rng.normal(size=(400, d)))
    y = torch.as_tensor(rng.normal(size=400))
    batches = [(U[i:i + 100], y[i:i + 100]) for i in range(0, 400, 100)]
    return net, batches


def _patch_report():
    import torch

    from pft.residual import patch_scores

    net, batches = _readout()
    P = torch.eye(4, dtype=torch.float64)[:, :2] @ torch.eye(4, dtype=torch.float64)[:2]
    return patch_scores(net, "0", batches, interpretation=lambda h: h @ P, loss_fn=lambda out, b: (out[:, 0] - b[1]) ** 2,
                        n_resamples=2, seed=0, progress=False)


def _across_report():
    from pft.residual import score_across

    data, interp = _toy(), _toy_interpretation()
    noise = np.random.default_rng(1).normal(size=data.activations.shape)
    from types import SimpleNamespace

    copies = [SimpleNamespace(model=s, temperature=t, loss_increase=t * 0.01, draw=0) for t, s in ((0.0, 0.0), (2.0, 0.3))]
    return score_across(copies, lambda s: data.activations + s * noise, {"missing": interp.reconstruction},
                        progress=False)


def _power_result():
    from pft.residual import detection_power

    rng = np.random.default_rng(0)
    codes = rng.exponential(size=(4000, 6)) * (rng.random((4000, 6)) < 0.2)
    dec = rng.normal(size=(6, 8))
    x = codes @ dec + 0.3 * rng.normal(size=(4000, 8))
    return detection_power(x, (codes, dec), firing_rates=(0.2,), n_latents_per_rate=2, progress=False)


def _knockout():
    from pft.residual import knockout

    rng = np.random.default_rng(0)
    codes = rng.exponential(size=(3000, 6)) * (rng.random((3000, 6)) < 0.2)
    dec = rng.normal(size=(6, 8))
    x = codes @ dec + 0.3 * rng.normal(size=(3000, 8))
    return knockout(x, (codes, dec), [1], seed=0)


def _feature_directions():
    from pft.numeric import feature_directions

    return feature_directions(_toy().activations, 2, seed=0)


def _posterior_result():
    import torch

    from pft.degrade import TemperedPosterior

    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1, dtype=torch.float64)
    x = torch.randn(64, 2, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    post = TemperedPosterior(net, torch.nn.MSELoss(), (x, y), seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return post.sample(20, n_chains=2, burn_in=5, progress=False)


def _degraded_model():
    import torch

    from pft.degrade import degraded_models

    torch.manual_seed(0)
    net = torch.nn.Linear(2, 1, dtype=torch.float64)
    x = torch.randn(64, 2, dtype=torch.float64)
    y = x @ torch.tensor([[1.0], [-1.0]], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list(degraded_models(net, torch.nn.MSELoss(), (x, y), temperatures=[0, 5], seed=0, progress=False))[-1]


def _laplace_plan():
    from pft.symbolic import contraction_plan, vacuum_diagrams

    return contraction_plan(vacuum_diagrams((3, 4), loops=2)[0])


def _eval_result():
    from pft.interop import EvalResult

    return EvalResult(model="toy", sae="toy-sae", hook="0", n_seqs=4, context=100, excluded_token_ids=(0,),
                      score=_residual_report(), patch=_patch_report())


def _finite_width():
    from pft.scaling import finite_width_theory

    return finite_width_theory("tanh", 3, C_W=1.0, C_b=0.0)


def _ensemble():
    from pft.scaling import MLPConfig, sample_ensemble

    cfg = MLPConfig(activation="relu", width=8, depth=2, C_W=2.0, C_b=0.0)
    return sample_ensemble(cfg, 64, np.ones((1, 1)), seed=0, progress=False)


EXAMPLES = {
    "pft.symbolic.LaplaceExpansion": _laplace,
    "pft.symbolic.CorrelatorExpansion": lambda: _laplace().mean(),
    "pft.symbolic.EdgeworthExpansion": lambda: importlib.import_module("pft.symbolic").edgeworth(order=1),
    "pft.symbolic.ContractionPlan": lambda: _laplace_plan(),
    "pft.numeric.FeatureDirections": _feature_directions,
    "pft.residual.ResidualReport": _residual_report,
    "pft.residual.PatchReport": _patch_report,
    "pft.residual.AcrossReport": _across_report,
    "pft.residual.PowerResult": _power_result,
    "pft.residual.Knockout": _knockout,
    "pft.scaling.FiniteWidthTheory": _finite_width,
    "pft.scaling.CriticalPoint": lambda: importlib.import_module("pft.scaling").critical_point("tanh"),
    "pft.scaling.EnsembleResult": _ensemble,
    "pft.scaling.StudyResult": lambda: importlib.import_module("pft.scaling").Study(
        {"activation": "relu", "width": [8], "depth": [2]}, n_networks=200, seed=0, progress=False).run(),
    "pft.scaling.ScaleInvariantLaw": lambda: importlib.import_module("pft.scaling").scale_invariant_law("relu", 8, 3),
    "pft.degrade.SampleResult": _posterior_result,
    "pft.degrade.LearningCoefficient": lambda: _posterior_result().learning_coefficient(),
    "pft.degrade.ChainDiagnostics": lambda: _posterior_result().diagnostics,
    "pft.degrade.DegradedModel": _degraded_model,
    "pft.toy.ToyInterpretation": _toy_interpretation,
    "pft.degrade.DegradeExperiment": lambda: importlib.import_module("pft.degrade").degrade_experiment(
        100, temperatures=(0, 1), n_copies=1, n_draws=20, n_chains=2, burn_in=20, thin=10, n_train_steps=50,
        progress=False),
    "pft.models.DemoResult": lambda: importlib.import_module("pft.models").DemoResult(
        name="minilm", title="t", module="0", settings={"layer": 3, "exclude_positions": (0,)},
        residual=_residual_report(), patch=_patch_report(), seconds={"score": 1.5}),
    "pft.interop.EvalResult": _eval_result,
}

CLASSES = _result_classes()


def test_every_result_type_has_an_example():
    missing = sorted(set(CLASSES.values()) - set(EXAMPLES))
    assert not missing, f"result types without an example in tests/test_results.py: {missing}"


def _same(a, b):
    """Equal JSON-level content, NaN equal to NaN."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="module", params=sorted(EXAMPLES))
def result(request):
    return request.param, EXAMPLES[request.param]()


def test_is_a_json_result_of_its_discovered_class(result):
    name, r = result
    assert isinstance(r, JsonResult), name
    assert dataclasses.is_dataclass(r) and type(r).__dataclass_params__.frozen, f"{name} is not a frozen dataclass"
    if name in CLASSES.values():
        assert isinstance(r, next(c for c, n in CLASSES.items() if n == name))


def test_to_json_writes_what_it_returns(result, tmp_path):
    name, r = result
    path = tmp_path / "r.json"
    text = r.to_json(path)
    assert path.read_text() == text
    assert json.loads(text) == json.loads(json.dumps(r.to_dict()))
    # keyword arguments of json.dumps pass through, over the type's own defaults
    assert json.loads(r.to_json(indent=None, sort_keys=True)) == json.loads(text)


def test_from_json_round_trips(result):
    name, r = result
    back = type(r).from_json(r.to_json())
    assert type(back) is type(r)
    assert _same(json.loads(back.to_json()), json.loads(r.to_json())), name
    # and the result still prints
    assert str(back)
