"""detection_power and `pft power` on a planted SAE whose strong latents must be found."""

import numpy as np
import pytest

from pft.cli import main
from pft.errors import InputError
from pft.residual import PowerResult, detection_power


def _planted(seed=0, N=4000, d=12, m=16):
    rng = np.random.default_rng(seed)
    dec = np.linalg.qr(rng.normal(size=(d, d)))[0].T  # 12 orthonormal rows ...
    dec = np.concatenate([dec, rng.normal(size=(m - d, d)) / np.sqrt(d)])  # ... and 4 weak extra ones
    rates = np.r_[np.full(4, 0.3), np.full(4, 0.1), np.full(8, 0.02)]
    codes = 4 * rng.exponential(size=(N, m)) * (rng.random((N, m)) < rates)
    x = codes @ dec + 0.3 * rng.normal(size=(N, d))
    return x, codes, dec


def test_detection_power_finds_strong_latents_and_reports_consistently(tmp_path):
    x, codes, dec = _planted()
    res = detection_power(x, (codes, dec), firing_rates=(0.3, 0.02), n_latents_per_rate=3,
                          n_tokens=(2000, 4000), n_directions=6, progress=False)
    assert len(res.group_tokens) == 4 and len(res.latent) == 12
    for n in (2000, 4000):  # no latent is knocked out twice at one token count
        assert len(set(res.latent[res.latent_tokens == n])) == 6
    # frequent, strong, orthogonal latents: found at 4000 tokens (planted truth)
    g = np.flatnonzero((res.group_tokens == 4000) & (res.group_target_rate == 0.3))[0]
    assert res.group_recall[g] == 1.0
    assert res.group_separation[g] > 5
    # the separation is what it says (naive recomputation)
    want = (res.group_bits - res.group_twin_bits) / np.hypot(res.group_bits_se, res.group_twin_bits_se)
    np.testing.assert_allclose(res.group_separation, want)
    np.testing.assert_array_equal(res.latent_found, res.latent_best_cos >= 0.9)
    assert "Detection power" in str(res)
    again = PowerResult.from_json(res.to_json())
    np.testing.assert_allclose(again.latent_best_cos, res.latent_best_cos)
    res.plot(str(tmp_path / "power.png"))
    assert (tmp_path / "power.png").stat().st_size > 0


def test_power_command_line(tmp_path, capsys):
    x, codes, dec = _planted(N=2000)
    for name, a in (("acts", x), ("codes", codes), ("dec", dec)):
        np.save(tmp_path / f"{name}.npy", a)
    rc = main(["power", str(tmp_path / "acts.npy"), str(tmp_path / "codes.npy"), str(tmp_path / "dec.npy"),
               "--rates", "0.3", "--per-rate", "2", "--quiet", "--json", str(tmp_path / "p.json")])
    assert rc == 0
    assert "Detection power" in capsys.readouterr().out
    assert (tmp_path / "p.json").exists()
    assert main(["power", str(tmp_path / "acts.npy"), str(tmp_path / "codes.npy"), str(tmp_path / "dec.npy"),
                 "--rates", "x"]) == 2


def test_bad_input():
    x, codes, dec = _planted(N=500)
    with pytest.raises(InputError, match="firing_rates"):
        detection_power(x, (codes, dec), firing_rates=(2.0,), progress=False)
    with pytest.raises(InputError, match="n_tokens"):
        detection_power(x, (codes, dec), n_tokens=(10**6,), progress=False)


def test_scalar_arguments_are_checked_by_name_and_the_old_keyword_warns():
    from pft.errors import PftDeprecationWarning

    x, codes, dec = _planted(N=500)
    for kw, msg in ((dict(n_latents_per_rate=True), "`n_latents_per_rate` must be an integer >= 1; got True."),
                    (dict(threshold=0.0), "`threshold` must be a finite number > 0 and <= 1; got 0.0."),
                    (dict(n_tokens=(100.0,)), "`n_tokens[0]` must be an integer >= 16 and <= 500; got 100.0."),
                    (dict(firing_rates=()), "`firing_rates` must be a non-empty sequence of numbers; got ()."),
                    (dict(seed=-1), "`seed` must be a non-negative integer")):
        with pytest.raises(InputError) as err:
            detection_power(x, (codes, dec), progress=False, **kw)
        assert str(err.value).startswith(msg)
    with pytest.warns(PftDeprecationWarning, match="`latents_per_rate` is deprecated; use `n_latents_per_rate`"):
        old = detection_power(x, (codes, dec), firing_rates=(0.3,), latents_per_rate=2, n_directions=4,
                              progress=False)
    new = detection_power(x, (codes, dec), firing_rates=(0.3,), n_latents_per_rate=2, n_directions=4, progress=False)
    assert len(old.latent) == 2 and old.to_json() == new.to_json()
