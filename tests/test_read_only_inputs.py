"""Read-only arrays (np.load(..., mmap_mode="r")) go into torch code without a warning and
without torch sharing the file's memory (tests run with warnings as errors)."""

import warnings

import numpy as np
import torch

from pft._device import tensor_from_numpy
from pft.degrade import MixingWarning, TemperedPosterior
from pft.models import train_topk_sae


def _read_only(tmp_path, name, a):
    np.save(tmp_path / name, a)
    out = np.load(tmp_path / name, mmap_mode="r")
    assert not out.flags.writeable
    return out


def test_tensor_from_numpy_copies_only_read_only_arrays(tmp_path):
    a = np.arange(6.0).reshape(2, 3)
    assert tensor_from_numpy(a).data_ptr() == a.ctypes.data  # writable: shared, no copy
    ro = _read_only(tmp_path, "a.npy", a)
    t = tensor_from_numpy(ro)
    assert torch.equal(t, torch.from_numpy(a)) and t.data_ptr() != ro.ctypes.data


def test_sae_and_posterior_take_read_only_arrays(tmp_path):
    rng = np.random.default_rng(0)
    X = _read_only(tmp_path, "x.npy", rng.normal(size=(200, 8)).astype(np.float32))
    sae = train_topk_sae(X, d_sae=16, k=2, n_steps=3, seed=0, progress=False)
    assert sae.W_dec.shape == (16, 8)
    inputs = _read_only(tmp_path, "i.npy", rng.normal(size=(50, 3)))
    targets = _read_only(tmp_path, "t.npy", rng.normal(size=(50, 1)))
    model = torch.nn.Linear(3, 1, bias=False).double()
    post = TemperedPosterior(model, torch.nn.MSELoss(), (inputs, targets), localization=1.0, step_size=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixingWarning)  # 5 draws: too short to have mixed
        assert np.isfinite(post.sample(5, n_chains=1, burn_in=2, progress=False).losses).all()
