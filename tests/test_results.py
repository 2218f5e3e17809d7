"""Every result type shares pft._results.JsonResult: to_json(path) writes what it returns."""

import json

import numpy as np
import pytest
import sympy

from pft._results import JsonResult
from pft.scaling import StudyResult
from pft.symbolic import edgeworth, laplace_expansion
from pft.toy import interpretations, superposition


def _results():
    data = superposition(2000, d=16, n_features=48, seed=0)
    yield interpretations(data, fvu=0.2, n_missing=2, seed=0)["missing"]
    x = sympy.Symbol("x")
    e = laplace_expansion(x**2 / 2 + x**4 / 24, x, order=1, point=0)
    yield e
    yield e.mean()
    yield edgeworth(order=1)
    yield StudyResult(rows=({"b": 1, "a": np.float64(2.5)},))


@pytest.mark.parametrize("result", list(_results()), ids=lambda r: type(r).__name__)
def test_to_json_writes_what_it_returns(result, tmp_path):
    assert isinstance(result, JsonResult)
    path = tmp_path / "r.json"
    text = result.to_json(path)
    assert path.read_text() == text
    assert json.loads(text) == json.loads(json.dumps(result.to_dict()))
    # keyword arguments of json.dumps pass through, over the type's own defaults
    assert json.loads(result.to_json(indent=None, sort_keys=True)) == json.loads(text)


def test_every_result_type_is_a_json_result():
    from pft.degrade import ChainDiagnostics, DegradedModel, LearningCoefficient, SampleResult
    from pft.residual import AcrossReport, PatchReport, ResidualReport
    from pft.scaling import FiniteWidthTheory
    from pft.symbolic import CorrelatorExpansion, EdgeworthExpansion, LaplaceExpansion

    for cls in (ChainDiagnostics, DegradedModel, LearningCoefficient, SampleResult, AcrossReport, PatchReport,
                ResidualReport, FiniteWidthTheory, CorrelatorExpansion, EdgeworthExpansion, LaplaceExpansion,
                StudyResult):
        assert issubclass(cls, JsonResult), cls.__name__
        assert cls.to_json is JsonResult.to_json, cls.__name__
