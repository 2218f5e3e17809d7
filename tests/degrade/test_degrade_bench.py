"""The benchmark runs (smoke test on a tiny model; the numbers are not asserted)."""

from benchmarks.bench_degrade import main, run


def test_bench_degrade_runs(capsys):
    rows = run(widths=(8, 8, 3), n_data=64, batch_size=16, steps=3, repeats=1)
    assert [r["loop"] for r in rows] == ["forward+backward", "+ plain SGD step", "SGLD (pft.degrade)"]
    assert rows[0]["params"] == 8 * 8 + 8 + 8 * 3 + 3
    assert all(r["steps_per_s"] > 0 for r in rows)
    assert run(quick=True)[0]["params"] == 16 * 16 + 16 + 16 * 4 + 4
    assert main(["--quick"]) == 0
    assert "SGLD" in capsys.readouterr().out
