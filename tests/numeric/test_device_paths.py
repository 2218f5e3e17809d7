"""The numeric estimators with device=: torch on the device equals numpy on the host.

Runs on each device of PFT_TEST_DEVICES (cpu in CI: the torch code path on the host)."""

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground, kurtosis_directions


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    s = np.c_[rng.laplace(size=(4000, 2)) / np.sqrt(2), rng.normal(size=(4000, 4))]
    return s @ rng.normal(size=(6, 6)) + rng.normal(size=6)


def test_moments_from_numpy_on_a_device_equal_numpy(rows, device):
    ref = Moments.from_array(rows)
    got = Moments.from_chunks(np.array_split(rows, 3), device=device)
    assert got.count == ref.count
    for name in ("mean", "comoment", "norm2_z", "norm4"):
        assert isinstance(getattr(got, name), (np.ndarray, float)), name
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-10, atol=1e-9, err_msg=name)
    # float32 rows travel as float32 and are reduced in float64 there
    got32 = Moments.from_array(rows.astype(np.float32), device=device)
    np.testing.assert_allclose(got32.comoment, Moments.from_array(rows.astype(np.float32)).comoment, rtol=1e-10)


def test_gaussian_background_on_a_device(rows, device):
    ref = GaussianBackground().fit(rows)
    bg = GaussianBackground(device=device).fit(rows)
    np.testing.assert_allclose(bg.covariance_, ref.covariance_, rtol=1e-10)
    # the eigendecomposition ran on the device; signs are fixed (largest entry positive) on both
    np.testing.assert_allclose(bg.eigenvalues_, ref.eigenvalues_, rtol=1e-10)
    np.testing.assert_allclose(bg.eigenvectors_, ref.eigenvectors_, atol=1e-9)
    V = ref.eigenvectors_
    assert np.all(V[np.argmax(np.abs(V), axis=0), np.arange(V.shape[1])] > 0)
    np.testing.assert_allclose(V @ np.diag(ref.eigenvalues_) @ V.T, ref.covariance_, atol=1e-10)
    assert bg.shrinkage_ == pytest.approx(ref.shrinkage_, rel=1e-10)
    # numpy in, numpy out, computed on the device
    lp = bg.logpdf(rows[:50])
    assert isinstance(lp, np.ndarray) and lp.dtype == np.float64
    np.testing.assert_allclose(lp, ref.logpdf(rows[:50]), rtol=1e-10)
    assert bg.score(rows) == pytest.approx(ref.score(rows), rel=1e-12)
    # a tensor is worked on where it lives and per-row results stay there
    t = torch.as_tensor(rows[:50], dtype=torch.float32, device=device)
    for method in ("whiten", "mahalanobis2", "logpdf"):
        out = getattr(ref, method)(t)
        assert torch.is_tensor(out) and out.device == t.device and out.dtype == torch.float64, method
        np.testing.assert_allclose(out.cpu().numpy(), getattr(ref, method)(rows[:50].astype(np.float32)), rtol=1e-10)


def test_gaussian_background_tensor_input_is_checked(rows, device):
    bg = GaussianBackground().fit(rows)
    bad = torch.as_tensor(rows[:20], device=device).clone()
    bad[13, 2] = float("inf")
    with pytest.raises(InputError, match=r"`X` has 1 inf value.*row 13, column 2"):
        bg.logpdf(bad)
    with pytest.raises(InputError, match="3 features"):
        bg.whiten(torch.zeros(4, 3, device=device))


@pytest.mark.parametrize("basis", ["principal", "ica"])
def test_perturbative_background_on_a_device(rows, device, basis):
    ref = PerturbativeBackground(n_directions=2, basis=basis, seed=1).fit(rows[:3000])
    pb = PerturbativeBackground(n_directions=2, basis=basis, seed=1, device=device).fit(rows[:3000])
    # FastICA stops at a tolerance, so rounding moves its directions by ~1e-7, no more
    tol = 1e-9 if basis == "principal" else 1e-6
    np.testing.assert_allclose(np.abs(pb.basis_), np.abs(ref.basis_), atol=tol)
    assert pb.amplitude_ == ref.amplitude_
    gain = pb.gain(rows[3000:])
    assert isinstance(gain, np.ndarray)
    np.testing.assert_allclose(gain, ref.gain(rows[3000:]), rtol=tol, atol=tol)
    if basis == "ica":
        assert np.mean(gain) > 0.05  # the two Laplace sources are found and help held-out rows
    t = torch.as_tensor(rows[3000:], device=device)
    out = ref.logpdf(t)
    assert torch.is_tensor(out) and out.device == t.device
    np.testing.assert_allclose(out.cpu().numpy(), ref.logpdf(rows[3000:]), rtol=1e-10)


@pytest.mark.parametrize("basis", ["principal", "ica"])
def test_perturbative_fit_from_chunks_on_a_device(rows, device, basis):
    # numpy chunks copied to the device, device tensors, and a source taking the keep(n)
    # pushdown that yields empty blocks: the same fit as the host's on the whole array
    ref = PerturbativeBackground(n_directions=2, basis=basis, seed=1).fit(rows[:3000])
    chunks = np.array_split(rows[:3000], 37)

    def pushdown(keep=None):
        for c in chunks:
            m = np.ones(len(c), dtype=bool) if keep is None else keep(len(c))
            yield torch.as_tensor(c[m], device=device) if m.any() else np.zeros((0, c.shape[1]))

    tol = 1e-9 if basis == "principal" else 1e-6
    for source, kw in ((chunks, {"device": device}), ([torch.as_tensor(c, device=device) for c in chunks], {}),
                       (pushdown, {"device": device})):
        pb = PerturbativeBackground(n_directions=2, basis=basis, seed=1, **kw).fit(source)
        np.testing.assert_allclose(np.abs(pb.basis_), np.abs(ref.basis_), atol=tol)
        np.testing.assert_allclose(pb.kappa4_, ref.kappa4_, rtol=1e-6, atol=1e-9)
        assert pb.amplitude_ == ref.amplitude_


def test_kurtosis_directions_on_a_device(device):
    rng = np.random.default_rng(5)
    s = np.c_[rng.laplace(size=6000) / np.sqrt(2), rng.normal(size=(6000, 3))]
    ref, kref = kurtosis_directions(s, 1, seed=0)
    for w, kw in ((s, {"device": device}), (torch.as_tensor(s, device=device), {})):
        got, k = kurtosis_directions(w, 1, seed=0, **kw)
        assert isinstance(got, np.ndarray) and isinstance(k, np.ndarray)
        np.testing.assert_allclose(np.abs(got), np.abs(ref), atol=1e-6)
        assert k[0] == pytest.approx(kref[0], rel=1e-6)
    assert abs(ref[0, 0]) > 0.99  # the Laplace column, whose excess kurtosis is 3


def test_moments_from_mixed_chunks_merge_on_the_device_and_on_the_host(rows, device):
    # numpy, device tensors, numpy again: device chunks are merged there, then with the host's
    chunks = np.array_split(rows, 5)
    mixed = [chunks[0], torch.as_tensor(chunks[1], device=device), torch.as_tensor(chunks[2], device=device),
             chunks[3], torch.as_tensor(chunks[4], device=device)]
    got, ref = Moments.from_chunks(mixed), Moments.from_array(rows)
    assert got.count == len(rows)
    for name in ("mean", "comoment", "norm2_z", "norm4"):
        np.testing.assert_allclose(getattr(got, name), getattr(ref, name), rtol=1e-10, atol=1e-9, err_msg=name)
    with pytest.raises(InputError, match=r"`X\[1\]` has 5 features but earlier chunks had 6"):
        Moments.from_chunks([torch.as_tensor(rows[:10], device=device), torch.zeros(4, 5, device=device)])
