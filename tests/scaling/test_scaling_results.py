"""Scaling results come back from JSON; renamed keywords still work and warn; HeavyTailWarning
lives in pft.errors and stays importable from pft.scaling."""

import warnings

import numpy as np
import pytest

from pft.errors import InputError, PftDeprecationWarning
from pft.scaling import (
    CriticalPoint,
    EnsembleResult,
    FiniteWidthTheory,
    MLPConfig,
    ScaleInvariantLaw,
    Study,
    StudyResult,
    critical_point,
    finite_width_theory,
    sample_ensemble,
    scale_invariant_law,
)

GRID = {"activation": "relu", "width": [8], "depth": [2, 3]}


def _ensemble(**kw):
    return sample_ensemble(MLPConfig("relu", 8, 3, C_W=2.0, C_b=0.0), 300, [[1.0], [0.5]], progress=False, **kw)


def test_ensemble_with_samples_comes_back_whole():
    res = _ensemble(seed=4)
    back = EnsembleResult.from_json(res.to_json(include_samples=True))
    assert back.to_dict(include_samples=True) == res.to_dict(include_samples=True)
    assert np.array_equal(back.outputs, res.outputs) and np.array_equal(back.conditional_covariance,
                                                                         res.conditional_covariance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert np.array_equal(back.excess_kurtosis(rao_blackwell=False)[0], res.excess_kurtosis(rao_blackwell=False)[0])


def test_ensemble_summary_roundtrip_and_what_it_cannot_do():
    res = _ensemble(seed=4)
    back = EnsembleResult.from_json(res.to_json())
    assert back.to_dict() == res.to_dict() and back.n_networks == 300 and back.outputs.shape[0] == 0
    assert "loaded without samples" in str(back)
    with pytest.raises(InputError, match="without them"):
        back.moment(2)


def test_ensemble_is_a_json_result_written_to_a_path(tmp_path):
    from pft._results import JsonResult

    res = _ensemble(seed=1)
    assert isinstance(res, JsonResult)
    text = res.to_json(tmp_path / "e.json")
    assert (tmp_path / "e.json").read_text() == text


def test_theory_law_critical_point_config_study_roundtrip():
    th = finite_width_theory("tanh", 3, C_W=1.0, C_b=0.1, inputs=[[1.0], [0.3]])
    assert FiniteWidthTheory.from_json(th.to_json()).to_dict() == th.to_dict()
    law = scale_invariant_law("leaky_relu:0.2", 12, 4)
    assert ScaleInvariantLaw.from_json(law.to_json()) == law
    cp = critical_point("gelu")
    assert CriticalPoint.from_json(cp.to_json()).to_dict() == cp.to_dict()
    cfg = MLPConfig("tanh", 16, 4, C_W=1.0, C_b=0.0, input_dim=3)
    assert MLPConfig.from_dict(cfg.to_dict()) == cfg
    res = Study(GRID, n_networks=100, progress=False).run()
    back = StudyResult.from_json(res.to_json())
    assert back == res and back.to_dict() == res.to_dict()


def test_renamed_keywords_still_work_and_warn():
    with pytest.warns(PftDeprecationWarning, match="`networks` is deprecated; use `n_networks`"):
        old = Study(GRID, networks=100, progress=False)
    assert old.n_networks == 100 and old.cells == Study(GRID, n_networks=100, progress=False).cells
    with pytest.warns(PftDeprecationWarning, match="n_networks"):
        assert old.networks == 100
    res = _ensemble(seed=2)
    with pytest.warns(PftDeprecationWarning, match="`groups` is deprecated; use `n_groups`"):
        a = res.moment(2, groups=7)
    assert np.array_equal(a[1], res.moment(2, n_groups=7)[1])
    with pytest.warns(PftDeprecationWarning, match="n_groups"):
        b = res.excess_kurtosis(groups=7)
    assert np.array_equal(b[1], res.excess_kurtosis(n_groups=7)[1])
    law = scale_invariant_law("relu", 8, 3)
    with pytest.warns(PftDeprecationWarning, match="`size` is deprecated; use `n_draws`"):
        g = law.sample_G(size=50, seed=3)
    assert np.array_equal(g, law.sample_G(50, seed=3)) and np.array_equal(g, law.sample_G(n_draws=50, seed=3))
    with pytest.raises(InputError, match="same argument"):
        law.sample_G(size=5, n_draws=5)


def test_seed_defaults_are_explicit_and_checked():
    law = scale_invariant_law("relu", 8, 3)
    assert np.array_equal(law.sample_G(20), law.sample_G(20, seed=0))  # default 0, never fresh entropy
    with pytest.raises(InputError, match="`seed` must be a non-negative integer"):
        law.sample_G(20, seed=None)
    assert np.array_equal(_ensemble().outputs, _ensemble(seed=0).outputs)


def test_heavy_tail_warning_lives_in_errors():
    import pft.scaling
    from pft.errors import HeavyTailWarning, PftWarning

    assert pft.scaling.HeavyTailWarning is HeavyTailWarning and issubclass(HeavyTailWarning, PftWarning)
