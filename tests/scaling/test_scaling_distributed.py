"""Two gloo ranks on the CPU: a distributed ensemble is the one-process ensemble, split by blocks.

Truth: the one-process `sample_ensemble` with the same arguments, computed in the test process.
Seeds belong to blocks of networks, so the two ranks' networks together must be *those* networks
(bitwise) and every moment and jackknife error must agree to rounding (1e-10).
"""

import json
import textwrap
import warnings

import numpy as np
import pytest

from pft.errors import InputError
from pft.scaling import MLPConfig, sample_ensemble
from pft.scaling._estimators import jackknife

CFG = dict(activation="tanh", width=12, depth=3, C_W=1.5, C_b=0.1, input_dim=2)
X = [[1.0, 0.5], [-0.3, 0.8]]
CALLS = {  # name: (n_networks, method, chunk) -- 9 uneven blocks (rank 0 gets 4, rank 1 five, the last short)
    "exact": (2500, "exact", 300),
    "weights": (850, "weights", 100),
}

WORKER = textwrap.dedent(
    """
    import sys, json, datetime, warnings
    import numpy as np
    import torch.distributed as dist
    from pft.errors import InputError
    from pft.scaling import MLPConfig, sample_ensemble
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    out, cfg, X, calls, mode = sys.argv[1], MLPConfig(**json.loads(sys.argv[2])), json.loads(sys.argv[3]), \\
        json.loads(sys.argv[4]), sys.argv[5]
    if mode == "fail" and rank == 1:
        raise RuntimeError("rank 1 failed on purpose")
    res = {}
    for name, (N, method, chunk) in calls.items():
        e = sample_ensemble(cfg, N, X, method=method, seed=5, chunk=chunk, progress=False, distributed=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = [e.moment(2), e.moment(4, rao_blackwell=False, n_groups=7), e.excess_kurtosis(),
                     e.excess_kurtosis(rao_blackwell=False, n_groups=7)]
        res[name] = {"stats": [[a.tolist(), b.tolist()] for a, b in stats], "offset": e.network_offset,
                     "n": e.n_networks, "local": e.outputs.shape[0]}
        np.save(f"{out}/{name}_{rank}.npy", e.outputs)
    try:  # ranks that disagree on the call fail together, with a message, instead of drawing garbage
        sample_ensemble(cfg, 100, X, seed=rank, progress=False, distributed=True)
    except InputError as exc:
        res["mismatch"] = str(exc)
    json.dump(res, open(f"{out}/rank{rank}.json", "w"))
    dist.destroy_process_group()
    """
)


def _run_worker(torchrun, tmp_path, mode):
    (tmp_path / "w.py").write_text(WORKER)
    return torchrun([str(tmp_path / "w.py"), str(tmp_path), json.dumps(CFG), json.dumps(X), json.dumps(CALLS), mode])


@pytest.mark.slow
def test_two_ranks_draw_the_one_process_ensemble(tmp_path, torchrun):
    proc = _run_worker(torchrun, tmp_path, "ok")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    cfg = MLPConfig(**CFG)
    for name, (N, method, chunk) in CALLS.items():
        one = sample_ensemble(cfg, N, X, method=method, seed=5, chunk=chunk, progress=False)
        parts = [np.load(tmp_path / f"{name}_{r}.npy") for r in (0, 1)]
        assert [p.shape[0] for p in parts] == [4 * chunk, N - 4 * chunk]  # whole blocks, in rank order
        assert ranks[1][name]["offset"] == 4 * chunk and ranks[0][name]["n"] == ranks[1][name]["n"] == N
        np.testing.assert_array_equal(np.concatenate(parts), one.outputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            truth = [one.moment(2), one.moment(4, rao_blackwell=False, n_groups=7), one.excess_kurtosis(),
                     one.excess_kurtosis(rao_blackwell=False, n_groups=7)]
        for r in ranks:  # every rank holds the all-rank answer
            for (est, se), (t_est, t_se) in zip(r[name]["stats"], truth):
                np.testing.assert_allclose(est, t_est, rtol=1e-10, atol=1e-12)
                np.testing.assert_allclose(se, t_se, rtol=1e-10, atol=1e-12)
    assert "different arguments on ranks [1]" in ranks[0]["mismatch"] == ranks[1]["mismatch"]


@pytest.mark.slow
def test_a_failing_rank_fails_the_run_with_its_message(tmp_path, torchrun):
    proc = _run_worker(torchrun, tmp_path, "fail")  # rank 0 waits in a collective; torchrun must end it
    assert proc.returncode != 0
    assert "rank 1 failed on purpose" in proc.stderr + proc.stdout


def test_grouped_jackknife_from_shards_equals_the_whole():
    # A naive twin: the delete-a-group jackknife on all rows at once, against the same estimator fed
    # three shards whose group sums are added by hand (what the all-reduce does between ranks).
    rng = np.random.default_rng(0)
    cols = [rng.gamma(2.0, size=(103, 3)), rng.gamma(3.0, size=(103, 3))]
    stat = lambda a, b: a / b**2  # noqa: E731
    whole = jackknife(stat, cols, groups=10)

    class Adder:  # sums the shards' contributions in place of an all-reduce
        def __init__(self):
            self.parts = []

        def sum(self, a):
            self.parts.append(np.asarray(a, float))
            return a

    adder, cuts = Adder(), [0, 17, 60, 103]
    for lo, hi in zip(cuts[:-1], cuts[1:]):
        jackknife(stat, [c[lo:hi] for c in cols], groups=10, reducer=adder, offset=lo, total=103)
    summed = sum(adder.parts)

    class Fixed:
        def sum(self, a):
            return summed

    est, se = jackknife(stat, [c[:0] for c in cols], groups=10, reducer=Fixed(), offset=0, total=103)
    np.testing.assert_allclose(est, whole[0], rtol=1e-12)
    np.testing.assert_allclose(se, whole[1], rtol=1e-12)


def test_distributed_without_process_group_says_how():
    with pytest.raises(InputError, match="torchrun"):
        sample_ensemble(MLPConfig("relu", 4, 2, C_W=2.0, C_b=0.0), 10, [1.0], seed=0, progress=False,
                        distributed=True)
