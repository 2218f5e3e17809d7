"""The throughput benchmark's run() returns rows a later suite can collect."""

from benchmarks.bench_scaling import main, run


def test_run_returns_rows_with_rates_and_ratios():
    rows = run(widths=(8,), depth=2, seconds=0.01, repeats=1)
    assert len(rows) == 1
    r = rows[0]
    assert r["width"] == 8 and r["device"] == "cpu"
    assert r["weights_per_s"] > 0 and r["exact_per_s"] > 0
    assert abs(r["ratio"] - r["exact_per_s"] / r["weights_per_s"]) < 1e-9 * r["ratio"]


def test_main_prints_a_table(capsys):
    assert main(["--widths", "8", "--depth", "2", "--seconds", "0.01", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "exact/weights" in out and out.strip().splitlines()[-1].split()[0] == "8"
