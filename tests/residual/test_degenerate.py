"""Degenerate data gives a correct number or a clear error, never a silent 0, inf or NaN."""

import math

import numpy as np
import pytest

from pft.errors import InputError
from pft.residual import score
from pft.residual._metrics import anchor_metrics, participation_ratio


def _pr_of_sample(rng, n, d):
    """The naive twin: participation ratio of the 1/n sample covariance of n isotropic draws."""
    z = rng.standard_normal((n, d))
    z -= z.mean(axis=0)
    lam = np.linalg.eigvalsh(z.T @ z / n)
    return lam.sum() ** 2 / (lam**2).sum()


def test_effective_rank_of_an_isotropic_gaussian_residual_is_d_even_when_shrinkage_reaches_1():
    N, d = 2000, 32
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, d))
    rep = score(x, x - rng.standard_normal((N, d)), seed=0, progress=False)
    assert rep.shrinkage == 1.0  # the case that used to report 0
    # Truth by Monte Carlo of the same estimator on the same number of training rows, with its
    # spread; the Wishart moments give its mean d·n/(n + d + 1) to O(1/n).
    mc = np.array([_pr_of_sample(np.random.default_rng(100 + i), rep.n_train, d) for i in range(200)])
    n = rep.n_train
    assert mc.mean() == pytest.approx(d * n / (n + d + 1), rel=2e-3)
    assert abs(rep.effective_rank - mc.mean()) < 4 * mc.std(ddof=1)
    assert abs(rep.effective_rank - d) < 0.05 * d
    # and the reported spectrum is the sample covariance's own (unit variance per dimension)
    assert rep.spectrum.sum() == pytest.approx(d, rel=0.1)
    assert np.all(np.diff(rep.spectrum) <= 0) and rep.spectrum[-1] > 0


def test_participation_ratio_neither_underflows_nor_overflows():
    for scale in (1e-300, 1e-170, 1.0, 1e170, 1e300):
        assert participation_ratio(np.array([1.0, 1.0, 1.0, 1.0]) * scale) == pytest.approx(4.0, rel=1e-12)
        assert participation_ratio(np.array([3.0, 1.0]) * scale) == pytest.approx(16 / 10, rel=1e-12)
    assert participation_ratio(np.zeros(3)) == 0.0


def test_constant_activations_are_refused_not_scored_as_inf_or_nan():
    x = np.full((300, 4), 0.1, dtype=np.float32)
    noise = np.random.default_rng(0).standard_normal((300, 4))
    with pytest.raises(InputError, match="same vector for every token"):
        anchor_metrics(x.astype(np.float64), x + noise)
    with pytest.raises(InputError, match="same vector for every token"):
        score(x, x + noise, progress=False)


def test_fvu_of_data_far_from_the_origin_is_exact():
    # mean 1e8, spread 1: a one-pass E‖x‖² − ‖E x‖² would lose all digits; the two-pass total keeps them
    rng = np.random.default_rng(1)
    x = 1e8 + rng.standard_normal((4000, 3))
    xh = x + 0.5 * rng.standard_normal((4000, 3))
    m = anchor_metrics(x, xh)
    truth = np.mean(np.sum((x - xh) ** 2, axis=1)) / np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1))
    assert m["fvu"] == pytest.approx(truth, rel=1e-9)
    assert math.isfinite(m["explained_variance_legacy"])


def test_a_constant_float32_offset_is_not_scored_as_structure():
    x = np.random.default_rng(2).standard_normal((2000, 8)).astype(np.float32)
    with pytest.raises(InputError, match="rounding level of the float32 inputs"):
        score(x, x - np.float32(0.5), progress=False)
    # a real residual a little above rounding (FVU 1e-8) is scored
    xh = x + np.float32(1e-4) * np.random.default_rng(3).standard_normal((2000, 8)).astype(np.float32)
    rep = score(x, xh, progress=False)
    assert rep.fvu == pytest.approx(1e-8, rel=0.1)


def test_scale_invariance_holds_and_out_of_range_scales_are_refused():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1500, 4))
    xh = x - rng.standard_normal((1500, 4))
    base = score(x, xh, progress=False)
    for s in (1e-50, 1e50):
        rep = score(x * s, xh * s, progress=False)
        assert rep.effective_rank == pytest.approx(base.effective_rank, rel=1e-9)
        assert rep.fvu == pytest.approx(base.fvu, rel=1e-9)
    with pytest.raises(InputError, match="as large as"):
        score(x * 1e70, xh * 1e70, progress=False)
    with pytest.raises(InputError, match="below 1e-60"):
        score(x * 1e-70, xh * 1e-70, progress=False)


def test_a_cauchy_residual_gets_finite_numbers():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3000, 4))
    rep = score(x, x - rng.standard_cauchy((3000, 4)), progress=False)
    for name in ("fvu", "effective_rank", "nongaussian_bits", "mardia_kurtosis_z", "correlation_bits"):
        assert math.isfinite(getattr(rep, name)), name
    assert 1.0 <= rep.effective_rank <= 4.0
    assert rep.mardia_kurtosis_z > 10  # heavy tails are structure, and are reported as such
