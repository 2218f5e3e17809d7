"""Study: resumable store (SIGKILL in a subprocess), table, plot, validation."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from pft.errors import InputError
from pft.scaling import Study, scale_invariant_exact_kurtosis

ROOT = pathlib.Path(__file__).resolve().parents[2]
GRID = {"activation": ["relu", "tanh"], "width": [16, 48], "depth": [2, 3, 5]}
NETWORKS = 20000

_CHILD = f"""
import sys
from pft.scaling import Study
Study({GRID!r}, n_networks={NETWORKS}, seed=3, progress=False).run(store=sys.argv[1])
"""


def _lines(path):
    return path.read_bytes().split(b"\n")[:-1] if path.exists() else []


def test_sigkill_mid_run_then_resume_loses_and_duplicates_nothing(tmp_path):
    store = tmp_path / "runs.jsonl"
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(store)], env=env, cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while len(_lines(store)) < 2 and child.poll() is None and time.time() < deadline:
        time.sleep(0.002)
    assert child.poll() is None, "the study finished before it could be killed; make the grid larger"
    child.send_signal(signal.SIGKILL)
    child.wait()
    n_cells = len(GRID["activation"]) * len(GRID["width"]) * len(GRID["depth"])
    before = [json.loads(x) for x in _lines(store)]
    assert 2 <= len(before) < n_cells
    resumed = Study(GRID, n_networks=NETWORKS, seed=3, progress=False).run(store=store)
    after = [json.loads(x) for x in _lines(store)]
    keys = [json.dumps(r["key"], sort_keys=True) for r in after]
    assert len(keys) == len(set(keys)) == n_cells  # nothing lost, nothing twice
    assert after[: len(before)] == before  # finished cells were kept as they were
    fresh = Study(GRID, n_networks=NETWORKS, seed=3, progress=False).run()
    assert resumed.to_json() == fresh.to_json()  # same numbers as an uninterrupted run


def test_torn_last_line_is_cut_and_finished_cells_are_not_recomputed(tmp_path, monkeypatch):
    grid = {"activation": "relu", "width": [8], "depth": [2, 3]}
    store = tmp_path / "s.jsonl"
    first = Study(grid, n_networks=400, progress=False).run(store=store)
    with open(store, "ab") as fh:
        fh.write(b'{"key": {"activation": "relu", "wid')  # a write cut short by a kill
    def boom(*a, **k):
        raise AssertionError("recomputed a finished cell")
    monkeypatch.setattr(Study, "_run_cell", boom)
    again = Study(grid, n_networks=400, progress=False).run(store=store)
    assert again.to_json() == first.to_json()
    assert store.read_bytes().endswith(b"}\n") and len(_lines(store)) == 2


def test_cells_match_the_theory_and_exact_relu_formula():
    res = Study({"activation": "relu", "width": [8, 32], "depth": [1, 3]}, n_networks=20000, seed=1,
                progress=False).run()
    for row in res.rows:
        k, v = row["key"], row["result"]
        assert v["exact"] == pytest.approx(3 * ((1 + 5 / k["width"]) ** (k["depth"] - 1) - 1), rel=1e-14)
        assert v["leading_order"] == pytest.approx(15 * (k["depth"] - 1) / k["width"], rel=1e-12, abs=1e-14)
        if k["depth"] > 1:
            assert abs(v["excess_kurtosis"] - v["exact"]) < 4 * v["excess_kurtosis_se"]


def test_scale_invariant_exact_formula_for_linear_nets():
    # deep linear nets: c = 3 A₄/A₂² − 1 = 2
    assert scale_invariant_exact_kurtosis((1.0, 1.0), 4, 3) == pytest.approx(3 * (1.5**2 - 1), rel=1e-15)


def test_table_and_plot(tmp_path):
    res = Study({"activation": ["relu", "tanh"], "width": [8, 16], "depth": [2, 4]}, n_networks=2000,
                progress=False).run()
    text = res.table()
    assert text.splitlines()[0].split()[:6] == ["activation", "C_W", "C_b", "n", "L", "L/n"]
    assert sum(1 for line in text.splitlines() if line.strip().startswith(("relu", "tanh"))) == 8
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    fig = res.plot(tmp_path / "fig.png")  # the path positionally, as before
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"
    assert isinstance(res.plot(), Figure) and not (tmp_path / "other.png").exists()
    own = Figure()
    ax = own.add_subplot()
    assert res.plot(ax=ax) is own and len(ax.lines) > 0  # one Axes: the L/n panel
    pair = Figure().subplots(1, 2)
    assert res.plot(ax=pair) is pair[0].figure and len(pair[1].lines) > 0
    three = Figure().subplots(1, 3)  # a longer sequence: the two panels in order, the rest untouched
    assert res.plot(ax=three) is three[0].figure and len(three[1].lines) > 0 and not three[2].lines
    with pytest.raises(InputError, match="^`ax` must be a matplotlib Axes or a non-empty sequence"):
        res.plot(ax=[])
    assert plt.get_fignums() == before  # nothing registered with pyplot


def test_grid_validation():
    with pytest.raises(InputError, match="`grid`"):
        Study({"activation": "relu", "width": [8]})
    with pytest.raises(InputError, match="`grid` key"):
        Study({"activation": "relu", "width": [8], "depth": [2], "colour": 1})
    with pytest.raises(InputError, match="critical point"):
        Study({"activation": "sigmoid", "width": [8], "depth": [2]})
    with pytest.raises(InputError, match="`width`"):
        Study({"activation": "relu", "width": [0], "depth": [2]})
