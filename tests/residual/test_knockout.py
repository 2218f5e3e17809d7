"""The knockout protocol: checked against a naive twin of its definition, written here."""

import numpy as np
import pytest

from pft.errors import InputError
from pft.residual import knockout, select_latents
from pft.residual._knockout import best_cosines, latent_stats


def _sae_arrays(seed=0, N=3000, d=12, m=20):
    rng = np.random.default_rng(seed)
    dec = rng.normal(size=(m, d))
    dec /= np.linalg.norm(dec, axis=1, keepdims=True)
    rates = np.geomspace(0.5, 0.005, m)
    codes = rng.exponential(size=(N, m)) * (rng.random((N, m)) < rates)
    bias = rng.normal(size=d)
    x = codes @ dec + bias + 0.2 * rng.normal(size=(N, d))
    return x, codes, dec, bias


def _fvu(x, rec):
    return ((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()


@pytest.mark.parametrize("twin", ["covariance", "isotropic"])
def test_knockout_matches_its_definition_and_the_twin_ties_on_fvu(twin):
    x, codes, dec, bias = _sae_arrays()
    S = [3, 7, 11]
    ko = knockout(x, (codes, dec, bias), S, twin=twin, seed=1)
    # naive twin of the definition
    full = codes @ dec + bias
    want = full - codes[:, S] @ dec[S]
    np.testing.assert_allclose(ko.knockout_reconstruction, want, atol=1e-12)
    assert ko.fvu == pytest.approx(_fvu(x, want), rel=1e-12)
    assert ko.fvu_full == pytest.approx(_fvu(x, full), rel=1e-12)
    assert _fvu(x, ko.twin_reconstruction) == pytest.approx(ko.fvu, rel=1e-10)
    np.testing.assert_allclose(ko.directions, dec[S], atol=1e-12)  # unit rows already
    np.testing.assert_allclose(ko.firing_rate, (codes[:, S] != 0).mean(0))
    total = ((x - x.mean(0)) ** 2).sum()
    np.testing.assert_allclose(ko.energy_share, (codes[:, S] ** 2).sum(0) / total)
    # the twin's noise: Gaussian, and with the full residual's covariance (or isotropic)
    z = (ko.twin_reconstruction - full) / ko.noise_scale
    r = x - full
    C = np.cov(r.T) if twin == "covariance" else np.eye(x.shape[1]) * np.trace(np.cov(r.T)) / x.shape[1]
    # sample covariance of 3000 Gaussian draws: entries within ~5 standard errors
    se = np.sqrt((C**2 + np.outer(np.diag(C), np.diag(C))) / len(z))
    assert np.all(np.abs(np.cov(z.T) - C) < 5 * se + 1e-12)
    assert ko.recall(dec[S])[0] == 3 and ko.recall(-dec[S] + 1e-3)[0] == 3
    assert "Knockout of 3 latents" in str(ko)
    d = ko.to_dict()
    assert d["knockout_reconstruction"] == {"shape": list(x.shape)}


def test_knockout_reads_an_sae_object_like_arrays():
    torch = pytest.importorskip("torch")
    from pft.models import TopKSAE

    rng = np.random.default_rng(0)
    sae = TopKSAE(8, 16, 3, scale=2.5)
    with torch.no_grad():
        sae.W_enc.copy_(torch.as_tensor(rng.normal(size=(8, 16))))
        W = rng.normal(size=(16, 8))
        sae.W_dec.copy_(torch.as_tensor(W / np.linalg.norm(W, axis=1, keepdims=True)))
        sae.b_dec.copy_(torch.as_tensor(rng.normal(size=8)))
    x = rng.normal(size=(500, 8)) * 2
    with torch.no_grad():
        c = sae.encode(torch.as_tensor(x, dtype=torch.float32)).double().numpy()
    dec = sae.W_dec.detach().double().numpy() * 2.5
    bias = sae.b_dec.detach().double().numpy() * 2.5
    a = knockout(x, sae, [1, 5], seed=0)
    b = knockout(x, (c, dec, bias), [1, 5], seed=0)
    np.testing.assert_allclose(a.knockout_reconstruction, b.knockout_reconstruction, atol=1e-5)
    np.testing.assert_allclose(a.directions, b.directions, atol=1e-6)


def test_select_latents_and_stats():
    x, codes, dec, bias = _sae_arrays()
    fr, en = latent_stats(x, (codes, dec, bias))
    np.testing.assert_allclose(fr, (codes != 0).mean(0))
    top = select_latents(x, (codes, dec, bias), 3, by="energy")
    assert set(top) == set(np.argsort(-en)[:3])
    near = select_latents(x, (codes, dec, bias), 2, by="rate", firing_rate=0.05, exclude=top)
    assert not set(near) & set(top)
    assert np.all(np.abs(np.log(fr[near] / 0.05)) <= np.sort(np.abs(np.log(fr[fr > 0] / 0.05)))[5])


def test_best_cosines_naive():
    rng = np.random.default_rng(0)
    T, F = rng.normal(size=(3, 5)), rng.normal(size=(4, 5))
    want = [max(abs(t @ f) / np.linalg.norm(t) / np.linalg.norm(f) for f in F) for t in T]
    np.testing.assert_allclose(best_cosines(T, F), want)
    assert np.all(best_cosines(T, np.zeros((0, 5))) == 0)


def test_bad_input_names_the_argument():
    x, codes, dec, bias = _sae_arrays()
    with pytest.raises(InputError, match="latents"):
        knockout(x, (codes, dec), [99])
    with pytest.raises(InputError, match="latents"):
        knockout(x, (codes, dec), [1, 1])
    with pytest.raises(InputError, match="twin"):
        knockout(x, (codes, dec), [1], twin="laplace")
    with pytest.raises(InputError, match="interpretation"):
        knockout(x, object(), [1])
    with pytest.raises(InputError, match="codes"):
        knockout(x, (codes[:10], dec), [1])
    with pytest.raises(InputError, match="firing_rate"):
        select_latents(x, (codes, dec), 2, by="rate")


def test_knockout_round_trips_through_json_without_its_reconstructions():
    from pft.residual import Knockout

    x, codes, dec, bias = _sae_arrays(N=500)
    ko = knockout(x, (codes, dec, bias), [2, 6], seed=3)
    back = Knockout.from_json(ko.to_json())
    assert back.to_dict() == ko.to_dict()
    np.testing.assert_array_equal(back.directions, ko.directions)
    assert back.latents.dtype == np.int64 and back.latents.tolist() == [2, 6]
    assert back.recall(dec[[2, 6]])[0] == 2 and str(back) == str(ko)
    # the (N, d) reconstructions are not in the JSON: they come back as NaN of their shape
    assert back.knockout_reconstruction.shape == x.shape and np.isnan(back.twin_reconstruction).all()
    assert not back.twin_reconstruction.flags.writeable


def test_select_latents_old_keyword_still_works_and_warns():
    from pft.errors import PftDeprecationWarning

    x, codes, dec, bias = _sae_arrays(N=500)
    with pytest.warns(PftDeprecationWarning, match="`n` is deprecated; use `n_latents`"):
        old = select_latents(x, (codes, dec, bias), n=3)
    np.testing.assert_array_equal(old, select_latents(x, (codes, dec, bias), 3))
    with pytest.raises(InputError, match=r"`n_latents` must be an integer >= 1 and <= 20; got 0\."):
        select_latents(x, (codes, dec, bias), 0)
    with pytest.raises(InputError, match="`by` must be one of 'energy', 'rate'"):
        select_latents(x, (codes, dec, bias), 2, by="size")
    with pytest.raises(InputError, match="`seed`"):
        knockout(x, (codes, dec, bias), [1], seed=-1)
