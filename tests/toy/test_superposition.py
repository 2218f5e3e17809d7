import numpy as np
import pytest

from pft.errors import InputError
from pft.toy import interpretations, superposition


def test_structure_is_as_promised():
    data = superposition(40000, d=16, n_features=64, density=0.05, seed=1)
    assert np.allclose(np.linalg.norm(data.features, axis=1), 1)
    assert np.all(data.codes >= 0)
    active = (data.codes > 0).mean()
    assert abs(active - 0.05) < 4 * np.sqrt(0.05 * 0.95 / data.codes.size)
    np.testing.assert_allclose(data.activations, data.signal + data.background)
    # the background is N(0, Σ_b): sample covariance within its Monte-Carlo error
    S = np.cov(data.background.T, bias=True)
    se = np.sqrt((np.diag(data.background_covariance)[:, None] * np.diag(data.background_covariance)[None, :]
                  + data.background_covariance**2) / 40000)
    assert np.all(np.abs(S - data.background_covariance) < 5 * se)
    # heavy tails: the excess kurtosis of each feature's codes is large
    c = data.codes[:, 0]
    assert ((c - c.mean()) ** 4).mean() / c.var() ** 2 - 3 > 10


def test_interpretations_tie_on_fvu_and_carry_their_truth():
    data = superposition(5000, d=16, n_features=64, seed=2)
    out = interpretations(data, fvu=0.25, n_missing=3, n_spurious=2, seed=0)
    x = data.activations
    total = np.mean(np.sum(x * x, axis=1)) - np.sum(x.mean(axis=0) ** 2)
    for it in out.values():
        r = x - it.reconstruction
        assert np.mean(np.sum(r * r, axis=1)) / total == pytest.approx(0.25, rel=1e-12)
        assert it.fvu == pytest.approx(0.25, rel=1e-12)
    miss = out["missing"]
    assert len(miss.missing) == 3
    # the residual contains exactly those features' contributions plus background plus noise
    r = x - miss.reconstruction - data.background - data.codes[:, list(miss.missing)] @ data.features[list(miss.missing)]
    assert abs(np.corrcoef(r[:, 0], data.codes[:, miss.missing[0]])[0, 1]) < 0.05
    assert out["spurious"].spurious_directions.shape == (2, 16)


def test_infeasible_budget_is_refused():
    data = superposition(2000, d=8, n_features=16, background_fraction=0.2, seed=0)
    with pytest.raises(InputError, match="raise `fvu`"):
        interpretations(data, fvu=0.05)
    with pytest.raises(InputError, match="`density`"):
        superposition(10, density=0)
