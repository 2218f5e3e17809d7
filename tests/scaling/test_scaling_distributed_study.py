"""Two gloo ranks on the CPU: a distributed Study fills the store with the one-process numbers,
rank 0 alone writes, resume works, and a dying rank fails the run.

Truth: a one-process `Study` with the same grid, run in the test process (its ensembles are the
same networks, so the numbers must agree to 1e-10; the statistics themselves are checked against
theory in test_scaling_study.py).
"""

import json
import textwrap

import pytest

from pft.scaling import Study

GRID = {"activation": ["relu", "tanh"], "width": [8], "depth": [2, 3]}
NETWORKS = 2500  # 3 blocks of ≤ 1024: rank 0 draws one, rank 1 two

WORKER = textwrap.dedent(
    """
    import sys, json, datetime, time
    import torch.distributed as dist
    import pft.scaling._study as study_mod
    from pft.scaling import Study
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=60))
    rank = dist.get_rank()
    out, store, grid, networks, mode = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
    if mode == "fail" and rank == 1:  # rank 1 dies in its second cell, after the first cell is stored
        real, calls = study_mod.sample_ensemble, []
        def dying(*a, **k):
            calls.append(1)
            if len(calls) == 2:
                time.sleep(0.5)  # rank 0 has long finished writing cell 1; the death is what is timed
                raise RuntimeError("rank 1 failed on purpose")
            return real(*a, **k)
        study_mod.sample_ensemble = dying
    res = Study(grid, n_networks=networks, seed=3, progress=False).run(store=store, distributed=True)
    open(f"{out}/rank{rank}.json", "w").write(res.to_json())
    dist.destroy_process_group()
    """
)


def _records(store):
    return [json.loads(line) for line in store.read_text().splitlines()]


@pytest.mark.slow
def test_distributed_study_resumes_a_store_and_equals_one_process(tmp_path, torchrun, assert_rows_equal):
    store = tmp_path / "runs.jsonl"
    Study({**GRID, "activation": "relu", "depth": 2}, n_networks=NETWORKS, seed=3, progress=False).run(store=store)
    (tmp_path / "w.py").write_text(WORKER)
    proc = torchrun([str(tmp_path / "w.py"), str(tmp_path), str(store), json.dumps(GRID), str(NETWORKS), "ok"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = Study(GRID, n_networks=NETWORKS, seed=3, progress=False).run().to_dict()["rows"]
    stored = _records(store)
    assert len(stored) == 4  # the cell that was there, then three new ones, each written once (rank 0)
    assert_rows_equal(stored, fresh)
    r0, r1 = [json.loads((tmp_path / f"rank{r}.json").read_text())["rows"] for r in (0, 1)]
    assert r0 == r1  # every rank returns the whole result
    assert_rows_equal(r0, fresh)


@pytest.mark.slow
def test_a_rank_dying_mid_study_fails_the_run_with_its_message_and_the_store_resumes(tmp_path, torchrun, assert_rows_equal):
    store = tmp_path / "runs.jsonl"
    (tmp_path / "w.py").write_text(WORKER)
    proc = torchrun([str(tmp_path / "w.py"), str(tmp_path), str(store), json.dumps(GRID), str(NETWORKS), "fail"])
    assert proc.returncode != 0
    assert "rank 1 failed on purpose" in proc.stderr + proc.stdout
    assert len(_records(store)) == 1  # the first cell, finished on both ranks; nothing half-done
    resumed = Study(GRID, n_networks=NETWORKS, seed=3, progress=False).run(store=store).to_dict()["rows"]
    assert_rows_equal(resumed, Study(GRID, n_networks=NETWORKS, seed=3, progress=False).run().to_dict()["rows"])
