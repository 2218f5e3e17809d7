import numpy as np
import pytest
import torch
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from sklearn.covariance import OAS, LedoitWolf

from pft.errors import InputError, NotFittedError, NotPositiveDefiniteError
from pft.numeric import GaussianBackground


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((5, 5))
    return rng.standard_normal((400, 5)) @ A + np.arange(5.0)


@pytest.mark.parametrize("shrinkage", [None, "ledoit-wolf", "oas", 0.3])
def test_logpdf_equals_scipy(data, shrinkage):
    bg = GaussianBackground(shrinkage=shrinkage).fit(data)
    ref = multivariate_normal(mean=bg.mean_, cov=bg.covariance_).logpdf(data)
    np.testing.assert_allclose(bg.logpdf(data), ref, rtol=1e-10, atol=1e-10)
    assert bg.score(data) == pytest.approx(ref.mean(), rel=1e-12)


def test_covariances_equal_sklearn(data):
    lw = GaussianBackground(shrinkage="ledoit-wolf").fit(data)
    np.testing.assert_allclose(lw.covariance_, LedoitWolf().fit(data).covariance_, rtol=1e-10, atol=1e-12)
    oas = GaussianBackground(shrinkage="oas").fit(data)
    np.testing.assert_allclose(oas.covariance_, OAS().fit(data).covariance_, rtol=1e-10, atol=1e-12)
    none = GaussianBackground(shrinkage=None).fit(data)
    np.testing.assert_allclose(none.covariance_, np.cov(data.T, bias=True), rtol=1e-10)


def test_streamed_fit_equals_one_shot(data):
    one = GaussianBackground().fit(data)
    streamed = GaussianBackground().fit(iter(np.array_split(data, 9)))
    partial = GaussianBackground()
    for c in np.array_split(data, 4):
        partial.partial_fit(c)
    for other in (streamed, partial):
        np.testing.assert_allclose(other.covariance_, one.covariance_, atol=1e-10, rtol=0)
        assert other.shrinkage_ == pytest.approx(one.shrinkage_, abs=1e-10)
        np.testing.assert_allclose(other.logpdf(data), one.logpdf(data), atol=1e-10)


def test_derived_quantities_are_consistent(data):
    bg = GaussianBackground().fit(data)
    np.testing.assert_allclose(bg.precision_ @ bg.covariance_, np.eye(5), atol=1e-10)
    assert bg.logdet_ == pytest.approx(np.linalg.slogdet(bg.covariance_)[1], rel=1e-12)
    w = bg.whiten(data)
    # whitened with the (slightly shrunk) covariance: check against Σ^{-1/2} directly
    np.testing.assert_allclose(np.einsum("ij,ij->i", w, w), bg.mahalanobis2(data))
    np.testing.assert_allclose(bg.pattern(np.eye(5)).T @ bg.filter(np.eye(5)), np.eye(5), atol=1e-10)


def test_sample_matches_fitted_moments_within_error(data):
    bg = GaussianBackground(shrinkage=None).fit(data)
    s = bg.sample(40_000, seed=1)
    se = np.sqrt(np.diag(bg.covariance_) / len(s))
    assert np.all(np.abs(s.mean(axis=0) - bg.mean_) < 4 * se)
    np.testing.assert_array_equal(s, bg.sample(40_000, seed=1))
    # variance estimate's SE for Gaussian data: var * sqrt(2/N)
    v = np.diag(bg.covariance_)
    assert np.all(np.abs(s.var(axis=0) - v) < 4 * v * np.sqrt(2 / len(s)))


def test_singular_without_shrinkage_raises_with_rank_and_fix():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((10, 30))  # d > N
    with pytest.raises(NotPositiveDefiniteError, match=r"rank 9 < d = 30 \(d = 30 ≥ N = 10\).*shrinkage"):
        GaussianBackground(shrinkage=None).fit(x)
    bg = GaussianBackground(shrinkage=None, singular="project").fit(x)
    assert bg.rank_ == 9 and bg.whiten(x).shape == (10, 9)
    # on the support, whitened data have identity covariance (1/N)
    w = bg.whiten(x)
    np.testing.assert_allclose(w.T @ w / 10, np.eye(9), atol=1e-8)
    assert GaussianBackground().fit(x).rank_ == 30  # shrinkage makes it full rank


def test_float32_input_uses_float32_cutoff():
    rng = np.random.default_rng(2)
    base = rng.standard_normal((200, 3))
    x = np.c_[base, base[:, 0] + base[:, 1]].astype(np.float32)  # exactly rank 3 in float32
    with pytest.raises(NotPositiveDefiniteError, match="rank 3"):
        GaussianBackground(shrinkage=None).fit(x)


def test_bad_inputs_and_settings(data):
    with pytest.raises(NotFittedError, match="fit"):
        GaussianBackground().logpdf(data)
    with pytest.raises(InputError, match="`shrinkage`"):
        GaussianBackground(shrinkage="bogus").fit(data)
    with pytest.raises(InputError, match="`shrinkage`"):
        GaussianBackground(shrinkage=1.5).fit(data)
    with pytest.raises(InputError, match="1 row"):
        GaussianBackground().fit(data[:1])
    with pytest.raises(InputError, match="2-D"):
        GaussianBackground().fit(data[:, 0])
    with pytest.raises(InputError, match="empty"):
        GaussianBackground().fit(np.zeros((0, 5)))
    bg = GaussianBackground().fit(data)
    with pytest.raises(InputError, match="4 features but the background was fitted on 5"):
        bg.logpdf(data[:, :4])


@pytest.mark.parametrize("dtype", [np.int64, np.float16])
def test_integer_and_half_inputs_are_upcast(dtype):
    x = np.random.default_rng(0).integers(-5, 5, size=(300, 3)).astype(dtype)
    bg = GaussianBackground(shrinkage=None).fit(x)
    np.testing.assert_allclose(bg.covariance_, np.cov(x.astype(np.float64).T, bias=True), rtol=1e-12)


def test_bfloat16_tensor_is_upcast():
    x = torch.randn(300, 3, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    bg = GaussianBackground(shrinkage=None).fit(x)
    ref = x.to(torch.float64).numpy()
    np.testing.assert_allclose(bg.covariance_, np.cov(ref.T, bias=True), rtol=1e-12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000))
def test_rotation_equivariance_and_row_order_invariance(seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((60, 4)) @ rng.standard_normal((4, 4))
    Q, _ = np.linalg.qr(rng.standard_normal((4, 4)))
    a = GaussianBackground().fit(x)
    b = GaussianBackground().fit(x @ Q)
    c = GaussianBackground().fit(x[rng.permutation(60)])
    np.testing.assert_allclose(b.covariance_, Q.T @ a.covariance_ @ Q, atol=1e-9)
    assert b.shrinkage_ == pytest.approx(a.shrinkage_, abs=1e-9)
    np.testing.assert_allclose(b.logpdf(x @ Q), a.logpdf(x), atol=1e-8)
    np.testing.assert_allclose(c.covariance_, a.covariance_, atol=1e-12)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_float32_precision_costs_about_float32_rounding(kind):
    # Centred float32 products, merged in float64: the covariance differs from the float64 fit
    # by ~1e-7..1e-5 relative (float32 rounding over 4096-row chunks), not zero and not more.
    rng = np.random.default_rng(7)
    x = rng.standard_normal((20000, 16)) @ rng.standard_normal((16, 16)) + 100.0
    data = x if kind == "numpy" else torch.tensor(x)
    chunks = lambda: (data[a : a + 4096] for a in range(0, 20000, 4096))  # noqa: E731
    ref = GaussianBackground().fit(chunks())
    f32 = GaussianBackground(precision="float32").fit(chunks())
    err = np.max(np.abs(f32.covariance_ - ref.covariance_)) / np.max(np.abs(ref.covariance_))
    assert 1e-10 < err < 1e-5
    assert f32.shrinkage_ == pytest.approx(ref.shrinkage_, abs=1e-5)
    with pytest.raises(InputError, match="`precision`"):
        GaussianBackground(precision="float16").fit(x)
