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


def test_iter_chunks_npy_safetensors_and_shards(tmp_path):
    import torch
    from safetensors.torch import save_file as save_torch

    from pft.io import iter_chunks

    x = np.random.default_rng(0).standard_normal((37, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    np.testing.assert_array_equal(np.concatenate(list(iter_chunks(tmp_path / "a.npy", chunk_rows=5))), x)
    save_file({"acts": x}, str(tmp_path / "b.safetensors"))
    np.testing.assert_array_equal(np.concatenate(list(iter_chunks(tmp_path / "b.safetensors", chunk_rows=8))), x)
    bf = torch.tensor(x).to(torch.bfloat16)
    save_torch({"acts": bf, "other": torch.zeros(2)}, str(tmp_path / "c.safetensors"))
    got = np.concatenate(list(iter_chunks(f"{tmp_path / 'c.safetensors'}:acts", chunk_rows=8)))
    np.testing.assert_array_equal(got, bf.float().numpy())
    shards = tmp_path / "shards"
    shards.mkdir()
    np.save(shards / "000.npy", x[:20])
    np.save(shards / "001.npy", x[20:])
    np.testing.assert_array_equal(np.concatenate(list(iter_chunks(shards, chunk_rows=6))), x)
    with pytest.raises(InputError, match="`chunk_rows`"):
        list(iter_chunks(tmp_path / "a.npy", chunk_rows=0))


LARGE = """
import sys, numpy as np
from pft.io import iter_chunks
from pft.numeric import GaussianBackground
bg = GaussianBackground().fit(iter_chunks(sys.argv[1], chunk_rows=16384))
# VmHWM: this process's peak resident set since exec (ru_maxrss would include the forking
# parent's peak, which holds the file's pages from writing it)
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM")][0].split()[1]
print(bg.n_samples_seen_, int(hwm) * 1024)
"""


@pytest.mark.slow
def test_streamed_fit_of_a_1gb_file_keeps_memory_bounded(tmp_path):
    import subprocess
    import sys

    d, rows = 256, (1 << 30) // (256 * 4) + 1  # just over 1 GiB of float32
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, d))
    rng = np.random.default_rng(0)
    block = rng.standard_normal((65536, d), dtype=np.float32)
    for a in range(0, rows, 65536):
        big[a : a + 65536] = block[: min(65536, rows - a)]
    big.flush()
    del big
    size = path.stat().st_size
    assert size > 1 << 30
    out = subprocess.run([sys.executable, "-c", LARGE, str(path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    n, peak = map(int, out.stdout.split())
    assert n == rows
    # Interpreter + numpy/scipy/torch imports are ~300 MB; the data must not add its 1 GiB.
    assert peak < 0.6 * size, f"peak RSS {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"
