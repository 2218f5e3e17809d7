import numpy as np
import pytest
import torch
from safetensors.numpy import save_file

from pft.errors import InputError
from pft.io import load_array


def test_npy_is_memory_mapped(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.arange(12.0).reshape(4, 3))
    a = load_array(p)
    assert isinstance(a, np.memmap) and a.shape == (4, 3) and a[3, 2] == 11


def test_safetensors_single_and_named(tmp_path):
    p = tmp_path / "a.safetensors"
    save_file({"acts": np.ones((2, 3), dtype=np.float32), "recon": np.zeros((2, 3), dtype=np.float32)}, str(p))
    assert load_array(f"{p}:acts").sum() == 6
    with pytest.raises(InputError, match="holds 2 tensors"):
        load_array(p)
    with pytest.raises(InputError, match="no tensor 'nope'"):
        load_array(f"{p}:nope")


def test_pt_reads_tensors_and_refuses_pickles(tmp_path):
    p = tmp_path / "a.pt"
    torch.save(torch.ones(2, 3, dtype=torch.bfloat16), p)
    assert load_array(p).dtype == torch.bfloat16

    import fractions

    q = tmp_path / "evil.pt"
    torch.save({"x": fractions.Fraction(1, 2)}, q)  # any non-tensor global needs unpickling
    with pytest.raises(InputError, match="weights_only=True"):
        load_array(q)


def test_missing_and_unknown_files(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        load_array(tmp_path / "nope.npy", name="ACTS")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(InputError, match="unsupported file type '.csv'"):
        load_array(tmp_path / "x.csv")
