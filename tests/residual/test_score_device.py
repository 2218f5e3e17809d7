"""score(device=...): every pass in torch on the device gives the numpy report.

Runs on each device of PFT_TEST_DEVICES (cpu in CI: the torch code path on the host)."""

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.residual import score
from pft.toy import interpretations, superposition

# Fields downstream of the direction search: its products are float32 and it iterates, so a
# different summation order (another backend, other chunks or ranks) moves its end point by
# about 1e-4 (1.5e-4 measured on a unit direction, 8e-6 relative on nongaussian_bits), not 1e-10;
# they are compared in max-norm relative to the array's largest entry.
_ICA = ("nongaussian_directions", "nongaussian_kurtosis", "nongaussian_z", "nongaussian_bits", "nongaussian_bits_se",
        "nongaussian_skewness", "nongaussian_skewness_z", "nongaussian_filters", "nongaussian_variance_share")


@pytest.fixture(scope="module")
def pair():
    data = superposition(12000, d=24, n_features=72, seed=4)
    return data, interpretations(data, fvu=0.2, n_missing=3, seed=4)["missing"].reconstruction


def _assert_same_report(got, ref):
    significant = np.abs(np.asarray(ref["nongaussian_z"])) > 10
    assert significant.sum() >= 3  # the three missing features are found on both
    for key, want in ref.items():
        have = got[key]
        if key in ("nongaussian_directions", "nongaussian_kurtosis", "nongaussian_z", "nongaussian_skewness",
                   "nongaussian_skewness_z", "nongaussian_filters", "nongaussian_variance_share"):
            have, want = np.asarray(have)[significant], np.asarray(want)[significant]
        if isinstance(want, (str, dict)) or want is None:
            assert have == want, key
        elif isinstance(want, float) and np.isnan(want):
            assert np.isnan(have), key
        else:
            a, b = np.asarray(want, float), np.asarray(have, float)
            if key in _ICA:
                assert _max_rel(a, b) < 1e-3, key
            else:
                np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9, err_msg=key)


def _max_rel(a, b):
    return float(np.max(np.abs(a - b), initial=0.0)) / max(float(np.max(np.abs(a), initial=0.0)), 1e-12)


def test_score_on_device_equals_numpy(pair, device):
    data, xh = pair
    ref = score(data.activations, xh, seed=1, progress=False, chunk_rows=5000).to_dict()
    got = score(data.activations, xh, seed=1, progress=False, chunk_rows=5000, device=device).to_dict()
    _assert_same_report(got, ref)


@pytest.mark.parametrize("precision", ["float32", "tf32"])
def test_low_precision_gram_on_device_stays_within_the_documented_bound(pair, device, precision):
    # the float64 numpy report is the reference; score's docstring promises < 1e-4 relative
    # (max-norm for arrays), < 1e-3 for the directions and filters (TF32 is float32 off CUDA;
    # on CUDA its 1e-3 products are outside this bound and only the float32 case is checked)
    if precision == "tf32" and str(device).startswith("cuda"):
        pytest.skip("TF32 products are 1e-3-accurate: the documented bound is for float32")
    data, xh = pair
    ref = score(data.activations, xh, seed=1, progress=False, chunk_rows=5000).to_dict()
    got = score(data.activations, xh, seed=1, progress=False, chunk_rows=5000, device=device,
                precision=precision).to_dict()
    for key, want in ref.items():
        if isinstance(want, (str, dict, bool)) or want is None:
            continue
        a, b = np.asarray(want, float), np.asarray(got[key], float)
        if not np.isfinite(a).all():
            continue
        assert _max_rel(a, b) < (1e-3 if key in ("nongaussian_directions", "nongaussian_filters") else 1e-4), key


def test_score_takes_tensors_already_on_the_device_in_float32(pair, device):
    data, xh = pair
    x32, xh32 = data.activations.astype(np.float32), xh.astype(np.float32)
    ref = score(x32, xh32, seed=2, progress=False, chunk_rows=4096).to_dict()
    xt = torch.as_tensor(x32, device=device)
    xht = torch.as_tensor(xh32, device=device)
    got = score(xt, xht, seed=2, progress=False, chunk_rows=4096, device=device).to_dict()
    _assert_same_report(got, ref)


def test_score_on_device_names_the_bad_row_in_a_later_chunk(pair, device):
    data, xh = pair
    x = data.activations.copy()
    x[7003, 5] = np.nan
    with pytest.raises(InputError, match=r"`activations`.*rows 5000–9999.*row 7003, column 5"):
        score(x, xh, progress=False, chunk_rows=5000, device=device)


def test_bad_device_is_named():
    x = np.random.default_rng(0).normal(size=(100, 3))
    with pytest.raises(InputError, match="`device`"):
        score(x, 0.5 * x, progress=False, device="not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="`device` is 'cuda'.*no CUDA"):
            score(x, 0.5 * x, progress=False, device="cuda")


def test_score_on_device_reads_a_read_only_memmap(pair, device, tmp_path):
    # np.load(mmap_mode="r") gives read-only chunks; they must cross to the device silently
    data, xh = pair
    np.save(tmp_path / "x.npy", data.activations.astype(np.float32))
    np.save(tmp_path / "xh.npy", xh.astype(np.float32))
    x_mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    xh_mm = np.load(tmp_path / "xh.npy", mmap_mode="r")
    got = score(x_mm, xh_mm, seed=1, progress=False, chunk_rows=5000, device=device)
    ref = score(np.asarray(x_mm), np.asarray(xh_mm), seed=1, progress=False, chunk_rows=5000)
    assert got.fvu == pytest.approx(ref.fvu, rel=1e-12)
    assert got.mardia_kurtosis_z == pytest.approx(ref.mardia_kurtosis_z, rel=1e-9)
