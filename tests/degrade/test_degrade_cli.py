"""`pft degrade`: the toy pipeline end to end (small settings) and its bad-input exit."""

import json

from pft.cli import main


def test_degrade_command_prints_and_writes(tmp_path, capsys):
    out = tmp_path / "deg"
    rc = main(["degrade", "--tokens", "300", "--draws", "2", "--temperatures", "0,1", "--burn-in", "200",
               "--out", str(out), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "LearningCoefficient" in text and "AcrossReport" in text and "vs minus 3 most important" in text
    lc = json.loads((out / "learning_coefficient.json").read_text())
    # 216 parameters: the toy's λ̂ is far below d/2 = 108 (a singular minimum).
    assert lc["d"] == 216 and 0 < lc["value"] < 54
    across = json.loads((out / "across.json").read_text())
    assert len(across["rows"]) == 3 * (1 + 2)
    assert (out / "chains.png").stat().st_size > 0 and (out / "across.png").stat().st_size > 0


def test_degrade_bad_input_exits_2_with_one_line(capsys):
    assert main(["degrade", "--temperatures", "1,x", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "`--temperatures` must be comma-separated numbers" in err
    assert main(["degrade", "--draws", "0", "--quiet"]) == 2
    assert "`--draws` must be an integer >= 1; got 0." in capsys.readouterr().err
