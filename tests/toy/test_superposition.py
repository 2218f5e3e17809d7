import numpy as np
import pytest

from pft.errors import InputError
from pft.toy import ToyInterpretation, interpretations, superposition


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


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: superposition(True, d=4, n_features=8), "`n_tokens` must be an integer >= 2; got True."),
        (lambda: superposition(100, d=True, n_features=8), "`d` must be an integer >= 1; got True."),
        (lambda: superposition(100, d=4, n_features=8.0), "`n_features` must be an integer >= 1; got 8.0."),
        (lambda: superposition(100, density=1.5), "`density` must be a finite number > 0 and <= 1; got 1.5."),
        (lambda: superposition(100, tail=float("nan")), "`tail` must be a finite number >= 0; got nan."),
        (lambda: superposition(100, seed=-1), "`seed` must be a non-negative integer (below 2**63); got -1."),
    ],
)
def test_superposition_scalar_checks_name_the_argument(call, message):
    # bool is never an integer (True was accepted as n_tokens = 1 ... d = 1 before)
    with pytest.raises(InputError) as info:
        call()
    assert str(info.value) == message


def test_interpretations_scalar_checks_name_the_argument():
    data = superposition(500, d=8, n_features=16, seed=0)
    for kw, message in [
        ({"n_missing": True}, "`n_missing` must be an integer >= 1 and <= 16; got True."),
        ({"n_spurious": -1}, "`n_spurious` must be an integer >= 0; got -1."),
        ({"fvu": 1.0}, "`fvu` must be a finite number > 0 and < 1; got 1.0."),
        ({"seed": 1.5}, "`seed` must be a non-negative integer (below 2**63); got 1.5."),
    ]:
        with pytest.raises(InputError) as info:
            interpretations(data, **kw)
        assert str(info.value) == message


def test_toy_interpretation_round_trips_through_json():
    data = superposition(2000, d=8, n_features=16, seed=0)
    out = interpretations(data, fvu=0.3, n_missing=2, n_spurious=2, seed=0)
    for it in out.values():
        back = ToyInterpretation.from_json(it.to_json())
        assert back.to_dict() == it.to_dict() and back.reconstruction is None
    spur = ToyInterpretation.from_json(out["spurious"].to_json())
    np.testing.assert_array_equal(spur.spurious_directions, out["spurious"].spurious_directions)
    assert ToyInterpretation.from_json(out["missing"].to_json()).missing == out["missing"].missing


def test_old_name_interpretation_still_works_and_warns():
    import pft.toy
    from pft.errors import PftDeprecationWarning

    with pytest.warns(PftDeprecationWarning, match=r"`pft.toy.Interpretation` is deprecated; use `pft.toy.ToyInterpretation`"):
        old = pft.toy.Interpretation
    assert old is ToyInterpretation
    with pytest.raises(AttributeError):
        pft.toy.NoSuchThing
