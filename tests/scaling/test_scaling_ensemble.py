"""Samplers and estimators: exact ReLU moments, exact vs weight sampling, error bars, warnings."""

import warnings

import numpy as np
import pytest
from scipy import stats

from pft.errors import InputError
from pft.scaling import HeavyTailWarning, MLPConfig, finite_width_theory, sample_ensemble
from pft.scaling._estimators import jackknife, tail_share


@pytest.mark.parametrize("n,L,N,seed", [(32, 3, 20000, 1), (64, 5, 20000, 2), (12, 4, 40000, 4), (8, 3, 40000, 3)])
def test_exact_sampler_reproduces_the_exact_relu_fourth_moment(n, L, N, seed):
    # ReLU, C_W = 2, C_b = 0: E z⁴/(E z²)² = 3 (1 + 5/n)^(L−1) exactly (each layer multiplies the
    # conditional variance by (2/n) Σ_j B_j u_j², whose second moment is 1 + 5/n).
    res = sample_ensemble(MLPConfig("relu", n, L, C_W=2.0, C_b=0.0), N, [1.0], seed=seed, progress=False)
    est, se = res.excess_kurtosis()
    ratio, ratio_se = 3 + est[0], se[0]
    exact = 3 * (1 + 5 / n) ** (L - 1)
    assert abs(ratio - exact) < 4 * ratio_se
    if L / n >= 0.25:  # and the leading order 3 + 15(L−1)/n visibly fails there
        assert abs(ratio - (3 + 15 * (L - 1) / n)) > 8 * ratio_se


def _ks(a, b):
    return stats.ks_2samp(a, b).pvalue


def test_exact_and_weight_samplers_agree_in_distribution():
    X = np.array([[1.0, 0.0, 0.5], [0.3, 0.9, -0.4]])
    for act in ("relu", "tanh"):
        cfg = MLPConfig(act, 12, 4, C_W=1.8, C_b=0.1, input_dim=3, output_width=2)
        e = sample_ensemble(cfg, 6000, X, method="exact", seed=1, progress=False)
        w = sample_ensemble(cfg, 6000, X, method="weights", seed=2, progress=False)
        assert e.outputs.shape == w.outputs.shape == (6000, 2, 2)
        for f in (lambda o: o[:, 0, 0], lambda o: o[:, 1, 1], lambda o: o[:, 0, 0] * o[:, 0, 1],
                  lambda o: o[:, 0, 0] * o[:, 1, 0]):  # marginals, cross-input and cross-unit products
            assert _ks(f(e.outputs), f(w.outputs)) > 1e-3
        (ke, se_e), (kw, se_w) = e.excess_kurtosis(), w.excess_kurtosis()
        assert np.all(np.abs(ke - kw) < 4 * np.hypot(se_e, se_w))
        assert _ks(e.conditional_covariance[:, 0, 1], w.conditional_covariance[:, 0, 1]) > 1e-3


def test_weight_sampler_detects_a_wrong_sampler():
    # the comparison above has power: a sampler with the wrong C_W is caught at once
    cfg = MLPConfig("tanh", 12, 4, C_W=1.8, C_b=0.1)
    e = sample_ensemble(cfg, 6000, [1.0], seed=1, progress=False)
    w = sample_ensemble(MLPConfig("tanh", 12, 4, C_W=1.2, C_b=0.1), 6000, [1.0], method="weights", seed=2,
                        progress=False)
    assert _ks(e.outputs[:, 0, 0], w.outputs[:, 0, 0]) < 1e-6


def test_full_weight_monte_carlo_agrees_with_leading_order_at_small_depth_over_width():
    # tanh at criticality (C_W = 1, C_b = 0), n = 32, L = 3: L/n ≈ 0.09
    n, L = 32, 3
    th = finite_width_theory("tanh", L, C_W=1.0, C_b=0.0)
    res = sample_ensemble(MLPConfig("tanh", n, L, C_W=1.0, C_b=0.0), 8000, [1.0], method="weights", seed=4,
                          progress=False)
    est, se = res.excess_kurtosis()
    assert abs(est[0] - th.excess_kurtosis(n)[-1]) < 4 * se[0]
    m2, se2 = res.moment(2)
    assert abs(m2[0] - th.second_moment(n)[-1]) < 4 * se2[0]


def test_layer_two_kurtosis_is_exactly_leading_order():
    # at L = 2 the first layer is exactly Gaussian, so 3 Var G⁽¹⁾/(E G⁽¹⁾)² = 3 V⁽²⁾/(n K⁽²⁾²) exactly
    n = 6
    th = finite_width_theory("erf", 2, C_W=1.4, C_b=0.2, first_kernel=0.2 + 1.4)
    res = sample_ensemble(MLPConfig("erf", n, 2, C_W=1.4, C_b=0.2), 30000, [1.0], method="weights", seed=9,
                          progress=False)
    est, se = res.excess_kurtosis()
    assert abs(est[0] - th.excess_kurtosis(n)[-1]) < 4 * se[0]


def test_rao_blackwellised_and_raw_moments_agree_and_rb_is_tighter():
    res = sample_ensemble(MLPConfig("relu", 32, 3, C_W=2.0, C_b=0.0, output_width=3), 20000, [0.5], seed=3,
                          progress=False)
    for p in (2, 4):
        rb, rb_se = res.moment(p)
        raw, raw_se = res.moment(p, rao_blackwell=False)
        assert abs(rb[0] - raw[0]) < 4 * np.hypot(rb_se[0], raw_se[0])
        assert rb_se[0] < raw_se[0]
    assert res.moment(3)[0][0] == 0.0  # odd moments vanish by symmetry
    assert abs(res.moment(3, rao_blackwell=False)[0][0]) < 4 * res.moment(3, rao_blackwell=False)[1][0]
    # E z² = K exactly for ReLU at C_b = 0 (K⁽¹⁾ = 2 · 0.25 = 0.5)
    m2, se2 = res.moment(2)
    assert abs(m2[0] - 0.5) < 4 * se2[0]


def test_jackknife_standard_error_of_a_mean_is_the_textbook_one():
    x = np.random.default_rng(0).exponential(size=(1000, 2))
    est, se = jackknife(lambda m: m, [x], groups=1000)
    np.testing.assert_allclose(est, x.mean(axis=0))
    np.testing.assert_allclose(se, x.std(axis=0, ddof=1) / np.sqrt(1000), rtol=1e-12)


def test_heavy_tails_warn_and_gaussian_outputs_do_not():
    deep = sample_ensemble(MLPConfig("relu", 4, 12, C_W=2.0, C_b=0.0), 4000, [1.0], seed=0, progress=False)
    assert tail_share(deep.outputs[:, 0] ** 4)[0] > 0.5
    with pytest.warns(HeavyTailWarning, match="rao_blackwell=True"):
        deep.excess_kurtosis(rao_blackwell=False)
    gauss = sample_ensemble(MLPConfig("relu", 4, 1, C_W=2.0, C_b=0.0), 20000, [1.0], seed=0, progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est, se = gauss.excess_kurtosis(rao_blackwell=False)  # depth 1: exactly Gaussian
    assert abs(est[0]) < 4 * se[0]


def test_same_seed_same_numbers_and_chunking_is_explicit():
    cfg = MLPConfig("tanh", 8, 3, C_W=1.0, C_b=0.0)
    a = sample_ensemble(cfg, 300, [1.0], seed=7, chunk=100, progress=False)
    b = sample_ensemble(cfg, 300, [1.0], seed=7, chunk=100, progress=False)
    c = sample_ensemble(cfg, 300, [1.0], seed=8, chunk=100, progress=False)
    np.testing.assert_array_equal(a.outputs, b.outputs)
    assert not np.array_equal(a.outputs, c.outputs)


def test_callable_activation_matches_the_builtin():
    cfg_b = MLPConfig("relu", 8, 3, C_W=2.0, C_b=0.0)
    cfg_c = MLPConfig(lambda z: z * (z > 0), 8, 3, C_W=2.0, C_b=0.0)
    a = sample_ensemble(cfg_b, 200, [1.0], seed=1, progress=False)
    b = sample_ensemble(cfg_c, 200, [1.0], seed=1, progress=False)
    np.testing.assert_allclose(a.outputs, b.outputs, rtol=1e-14)


def test_result_prints_a_table_and_serialises():
    res = sample_ensemble(MLPConfig("relu", 8, 3, C_W=2.0, C_b=0.0), 500, [[1.0], [0.5]], seed=1, progress=False)
    text = str(res)
    assert "excess kurtosis (RB)" in text and len(text.splitlines()) == 5  # title, header, rule, two inputs
    d = __import__("json").loads(res.to_json())
    assert d["n_networks"] == 500 and len(d["excess_kurtosis"]) == 2


def test_bad_input_names_the_argument():
    cfg = MLPConfig("relu", 8, 3, C_W=2.0, C_b=0.0)
    with pytest.raises(InputError, match="`inputs`"):
        sample_ensemble(cfg, 10, np.ones((2, 3)), seed=0, progress=False)
    with pytest.raises(InputError, match=r"^`inputs` must be finite; got 1 NaN/inf entries\.$"):
        sample_ensemble(cfg, 10, np.array([[1.0], [np.nan]]), seed=0, progress=False)
    with pytest.raises(InputError, match="`method`"):
        sample_ensemble(cfg, 10, [1.0], method="fast", seed=0, progress=False)
    with pytest.raises(InputError, match="`n_networks`"):
        sample_ensemble(cfg, 0, [1.0], seed=0, progress=False)
    with pytest.raises(InputError, match="`seed`"):
        sample_ensemble(cfg, 10, [1.0], seed=-1, progress=False)
    with pytest.raises(InputError, match="`width`"):
        MLPConfig("relu", 0, 3, C_W=2.0, C_b=0.0)
    with pytest.raises(InputError, match="`C_b`"):
        MLPConfig("relu", 4, 3, C_W=2.0, C_b=-0.1)
    with pytest.raises(InputError, match="`device`"):
        sample_ensemble(cfg, 10, [1.0], seed=0, device="nonsense", progress=False)
