import numpy as np
import pytest
import torch
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st
from sklearn.covariance import OAS, LedoitWolf, ledoit_wolf_shrinkage

from pft.errors import InputError
from pft.numeric import Moments


def _naive(x):
    """Two-pass textbook statistics in float64, the twin of the streaming ones."""
    m = x.mean(axis=0)
    z = x - m
    sq = (z * z).sum(axis=1)
    return m, z.T @ z, z.T @ sq, float((sq**2).sum())


def _naive_ledoit_wolf(x):
    # Ledoit & Wolf (2004), Lemma 3.2-3.4, written out with explicit per-row matrices.
    n, d = x.shape
    z = x - x.mean(axis=0)
    S = z.T @ z / n
    mu = np.trace(S) / d
    delta2 = np.sum((S - mu * np.eye(d)) ** 2)
    b2 = sum(np.sum((np.outer(r, r) - S) ** 2) for r in z) / n**2
    return min(b2, delta2) / delta2


def _naive_oas(x):
    # Chen et al. (2010) eq. 23 in scikit-learn's simplified form, from the definition.
    n, d = x.shape
    z = x - x.mean(axis=0)
    S = z.T @ z / n
    tr, tr2 = np.trace(S), np.trace(S @ S)
    num = tr2 / d**2 + (tr / d) ** 2
    den = (n + 1) * (tr2 / d**2 - tr**2 / d**3)
    return min(num / den, 1.0)


@pytest.fixture
def data():
    rng = np.random.default_rng(3)
    return rng.standard_normal((500, 6)) @ rng.standard_normal((6, 6)) + 50.0


def test_one_shot_matches_two_pass(data):
    m = Moments.from_array(data)
    mean, M, T, Q = _naive(data)
    np.testing.assert_allclose(m.mean, mean, rtol=1e-12)
    np.testing.assert_allclose(m.comoment, M, rtol=1e-10)
    np.testing.assert_allclose(m.norm2_z, T, rtol=1e-8, atol=1e-8 * np.abs(T).max())
    assert m.norm4 == pytest.approx(Q, rel=1e-10)


def test_chunked_and_merged_equal_one_shot(data):
    one = Moments.from_array(data)
    chunks = [data[:1], data[1:77], data[77:300], data[300:]]
    streamed = Moments.from_chunks(iter(chunks))
    tree = (Moments.from_array(chunks[3]).merge(Moments.from_array(chunks[0]))).merge(
        Moments.from_array(chunks[2]).merge(Moments.from_array(chunks[1]))
    )
    for other in (streamed, tree):
        assert other.count == one.count
        np.testing.assert_allclose(other.covariance(), one.covariance(), atol=1e-10, rtol=0)
        np.testing.assert_allclose(other.norm2_z, one.norm2_z, atol=1e-10 * max(1, np.abs(one.norm2_z).max()))
        assert other.norm4 == pytest.approx(one.norm4, rel=1e-12)


def test_torch_tensors_and_float32_are_accumulated_in_float64(data):
    t = torch.tensor(data, dtype=torch.float32)
    m = Moments.from_array(t)
    ref = Moments.from_array(t.numpy().astype(np.float64))
    np.testing.assert_allclose(m.covariance(), ref.covariance(), rtol=1e-12)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), split=st.integers(1, 98))
def test_row_order_and_split_do_not_matter(seed, split):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((100, 4)) * rng.uniform(0.1, 10, 4) + rng.uniform(-100, 100, 4)
    perm = rng.permutation(100)
    a = Moments.from_array(x)
    b = Moments.from_array(x[perm][:split]).merge(Moments.from_array(x[perm][split:]))
    np.testing.assert_allclose(b.covariance(), a.covariance(), rtol=1e-9, atol=1e-9)
    assert b.ledoit_wolf_shrinkage() == pytest.approx(a.ledoit_wolf_shrinkage(), rel=1e-8, abs=1e-12)


def test_shrinkage_matches_naive_twins_and_sklearn(data):
    m = Moments.from_array(data)
    assert m.ledoit_wolf_shrinkage() == pytest.approx(_naive_ledoit_wolf(data), rel=1e-10)
    assert m.ledoit_wolf_shrinkage() == pytest.approx(ledoit_wolf_shrinkage(data), rel=1e-10)
    assert m.ledoit_wolf_shrinkage() == pytest.approx(LedoitWolf().fit(data).shrinkage_, rel=1e-10)
    assert m.oas_shrinkage() == pytest.approx(_naive_oas(data), rel=1e-10)
    assert m.oas_shrinkage() == pytest.approx(OAS().fit(data).shrinkage_, rel=1e-10)


def test_shrinkage_from_chunks_matches_in_memory(data):
    streamed = Moments.from_chunks(np.array_split(data, 7))
    assert streamed.ledoit_wolf_shrinkage() == pytest.approx(_naive_ledoit_wolf(data), rel=1e-9)


def test_bad_inputs():
    with pytest.raises(InputError, match="empty iterable"):
        Moments.from_chunks([])
    with pytest.raises(InputError, match=r"`X\[1\]` has 3 features"):
        Moments.from_chunks([np.ones((2, 2)), np.ones((2, 3))])
    with pytest.raises(InputError, match="d=2"):
        Moments.from_array(np.ones((2, 3))).merge(Moments.from_array(np.ones((2, 2))))
    x = np.ones((4, 2))
    x[2, 1] = np.nan
    with pytest.raises(InputError, match="row 2, column 1"):
        Moments.from_array(x)


def test_inputs_are_never_modified(data):
    for x in (data.copy(), data.astype(np.float32), np.asfortranarray(data)):
        before = x.copy()
        Moments.from_array(x)
        np.testing.assert_array_equal(x, before)
