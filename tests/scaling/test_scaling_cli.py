"""`pft scaling` through pft.cli.main."""

import json

from pft.cli import main


def test_scaling_command_prints_table_writes_store_and_plot(tmp_path, capsys):
    store, fig = tmp_path / "runs.jsonl", tmp_path / "scaling.png"
    argv = ["scaling", "--activation", "relu,tanh", "--widths", "8,16", "--depths", "2:3", "--networks", "3000",
            "--store", str(store), "--plot", str(fig), "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "excess kurtosis" in out and "figure:" in out
    assert len(store.read_text().splitlines()) == 8 and fig.exists()
    assert main(argv[:-5] + ["--store", str(store), "--json", "--quiet"]) == 0  # resumes: nothing new
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 8 and len(store.read_text().splitlines()) == 8
    relu = [r for r in rows if r["key"]["activation"] == "relu"]
    for r in relu:
        assert r["result"]["exact"] == 3 * ((1 + 5 / r["key"]["width"]) ** (r["key"]["depth"] - 1) - 1)


def test_bad_input_exits_2_with_one_line(capsys):
    assert main(["scaling", "--widths", "8,x", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("pft scaling: error: `--widths`") and err.count("\n") == 1
    assert main(["scaling", "--activation", "softmax", "--quiet"]) == 2
    assert "`activation`" in capsys.readouterr().err
    assert main(["scaling", "--activation", "sigmoid", "--widths", "4", "--depths", "2", "--quiet"]) == 2
    assert "C_W" in capsys.readouterr().err
