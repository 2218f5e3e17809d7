"""Two gloo ranks on the CPU: the distributed fit equals the single-process fit."""

import textwrap

import numpy as np
import pytest

from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments

WORKER = textwrap.dedent(
    """
    import os, sys, json
    import numpy as np
    import torch.distributed as dist
    from pft.numeric import GaussianBackground
    dist.init_process_group("gloo", timeout=__import__("datetime").timedelta(seconds=60))
    rank = dist.get_rank()
    x = np.load(sys.argv[1])
    if sys.argv[3] == "fail" and rank == 1:
        raise RuntimeError("rank 1 failed on purpose")
    # uneven shards: rank 0 takes 123 rows, rank 1 the rest
    mine = x[:123] if rank == 0 else x[123:]
    bg = GaussianBackground(shrinkage="ledoit-wolf").fit(mine, distributed=True)
    if rank == 0:
        np.save(sys.argv[2], np.concatenate([bg.covariance_.ravel(), [bg.shrinkage_, bg.logdet_]]))
    dist.destroy_process_group()
    """
)


def _torchrun(torchrun, tmp_path, mode):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 5)) @ rng.standard_normal((5, 5)) + 7.0
    np.save(tmp_path / "x.npy", x)
    return x, torchrun([script, tmp_path / "x.npy", tmp_path / "out.npy", mode])


@pytest.mark.slow
def test_two_ranks_equal_single_process(tmp_path, torchrun):
    x, proc = _torchrun(torchrun, tmp_path, "ok")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = np.load(tmp_path / "out.npy")
    ref = GaussianBackground(shrinkage="ledoit-wolf").fit(x)
    np.testing.assert_allclose(out[:-2].reshape(5, 5), ref.covariance_, atol=1e-10, rtol=0)
    assert out[-2] == pytest.approx(ref.shrinkage_, abs=1e-10)
    assert out[-1] == pytest.approx(ref.logdet_, abs=1e-10)


@pytest.mark.slow
def test_a_failing_rank_fails_the_run_with_its_message(tmp_path, torchrun):
    _, proc = _torchrun(torchrun, tmp_path, "fail")
    assert proc.returncode != 0
    assert "rank 1 failed on purpose" in proc.stderr + proc.stdout


def test_all_reduce_without_process_group_says_how():
    with pytest.raises(InputError, match="torchrun"):
        Moments.from_array(np.ones((3, 2))).all_reduce()
