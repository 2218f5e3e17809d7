"""`torchrun -m pft scaling --distributed`: rank 0 prints once and stores the one-process numbers.

Truth: a one-process `Study` with the same grid, run in the test process (the same networks, so the
numbers agree to 1e-10).
"""

import json

import numpy as np
import pytest

from pft.cli import main
from pft.scaling import Study


NETWORKS = 2500  # 3 blocks of ≤ 1024: rank 0 draws one, rank 1 two


@pytest.mark.slow
def test_torchrun_pft_scaling_distributed(tmp_path, capsys, torchrun, assert_rows_equal):
    store = tmp_path / "runs.jsonl"
    argv = ["scaling", "--activation", "relu", "--widths", "8", "--depths", "2:3", "--networks", str(NETWORKS),
            "--seed", "3", "--store", str(store), "--json", "--quiet"]
    assert main(argv[:6] + ["2"] + argv[7:]) == 0  # one process fills depth 2
    capsys.readouterr()
    proc = torchrun(["-m", "pft", *argv, "--distributed"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count('"rows"') == 1  # rank 0 prints, rank 1 does not
    rows = json.loads(proc.stdout[proc.stdout.index("{"):])["rows"]
    want = Study({"activation": "relu", "width": 8, "depth": [2, 3]}, n_networks=NETWORKS, seed=3,
                 progress=False).run().to_dict()["rows"]
    assert_rows_equal(rows, want)
    assert_rows_equal([json.loads(x) for x in store.read_text().splitlines()], want)
    assert np.isfinite([r["result"]["excess_kurtosis"] for r in rows]).all()
