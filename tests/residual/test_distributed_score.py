"""Two gloo ranks on the CPU: the distributed score equals the one-process score."""

import json
import textwrap

import numpy as np
import pytest

from pft.residual import score
from pft.toy import interpretations, superposition

WORKER = textwrap.dedent(
    """
    import sys, datetime
    import numpy as np
    import torch.distributed as dist
    from pft.residual import score
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    x, xh = np.load(sys.argv[1]), np.load(sys.argv[2])
    cut = int(sys.argv[4])  # uneven shards
    sl = slice(0, cut) if rank == 0 else slice(cut, None)
    device = None if sys.argv[5] == "none" else sys.argv[5]
    rep = score(x[sl], xh[sl], seed=3, progress=False, distributed=True, device=device)
    if rank == 0:
        open(sys.argv[3], "w").write(rep.to_json())
    dist.destroy_process_group()
    """
)


def _two_ranks_against_one_process(torchrun, tmp_path, device):
    """Score on two gloo ranks (uneven shards) and in one process; compare every field."""
    data = superposition(6000, d=16, n_features=48, seed=1)
    xh = interpretations(data, fvu=0.2, n_missing=2, seed=1)["missing"].reconstruction
    np.save(tmp_path / "x.npy", data.activations)
    np.save(tmp_path / "xh.npy", xh)
    (tmp_path / "w.py").write_text(WORKER)
    proc = torchrun(
        [tmp_path / "w.py", tmp_path / "x.npy", tmp_path / "xh.npy", tmp_path / "out.json", "2345", device or "none"],
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist_rep = json.loads((tmp_path / "out.json").read_text())
    one = score(data.activations, xh, seed=3, progress=False).to_dict()
    assert dist_rep["n_test"] == one["n_test"] and dist_rep["n_tokens"] == 6000
    significant = np.abs(np.asarray(one["nongaussian_z"])) > 10
    assert significant.sum() >= 2  # the two missing features
    for key, ref in one.items():
        got = dist_rep[key]
        if isinstance(ref, (str, dict)):  # what was excluded, why a field is NaN
            assert got == ref, key
            continue
        search = key.startswith("nongaussian_")
        if search and isinstance(ref, list) and len(ref) == len(significant):
            # Directions with kurtosis indistinguishable from 0 are not determined by the data
            # (any rotation among them is as good), so rounding differences move them; the
            # significant ones are determined and must agree
            got, ref = np.asarray(got)[significant], np.asarray(ref)[significant]
        if isinstance(ref, float) and np.isnan(ref):
            assert np.isnan(got), key
        elif search:
            # Everything downstream of the direction search agrees to 1e-3 of the array's
            # largest entry: the search's products are float32 (each rank sums its own rows, one
            # process all of them in one product, so they round differently) and it iterates,
            # which moves its end point by about 1e-4 (1.2e-4 measured on a filter entry on the
            # torch path, 1.3e-7 relative on nongaussian_bits); the rest agrees to 1e-10
            a, b = np.asarray(ref, float), np.asarray(got, float)
            assert np.max(np.abs(a - b), initial=0.0) < 1e-3 * max(np.max(np.abs(a), initial=0.0), 1e-12), key
        else:
            np.testing.assert_allclose(np.asarray(got, float), np.asarray(ref, float), rtol=1e-10, atol=1e-10, err_msg=key)


@pytest.mark.slow
def test_two_ranks_equal_one_process(tmp_path, torchrun):
    _two_ranks_against_one_process(torchrun, tmp_path, None)


@pytest.mark.slow
def test_two_ranks_on_a_device_equal_one_numpy_process(tmp_path, device, torchrun):
    # each rank runs every pass with torch on `device`; gloo carries the (host) sums
    _two_ranks_against_one_process(torchrun, tmp_path, device)


@pytest.mark.slow
def test_torchrun_cli_score(tmp_path, torchrun):
    data = superposition(4000, d=12, n_features=36, seed=2)
    xh = interpretations(data, fvu=0.25, n_missing=2, seed=2)["oracle+noise"].reconstruction
    np.save(tmp_path / "x.npy", data.activations)
    np.save(tmp_path / "xh.npy", xh)
    proc = torchrun(
        ["-m", "pft", "score", tmp_path / "x.npy", tmp_path / "xh.npy", "--distributed", "--quiet",
         "--json", tmp_path / "r.json"],
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("ResidualReport") == 1  # rank 0 prints, rank 1 does not
    got = json.loads((tmp_path / "r.json").read_text())
    one = score(data.activations, xh, progress=False)
    assert got["gaussian_nll_bits"] == pytest.approx(one.gaussian_nll_bits, rel=1e-10)
    assert got["mardia_kurtosis_z"] == pytest.approx(one.mardia_kurtosis_z, rel=1e-9, abs=1e-9)
