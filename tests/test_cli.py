import json

import numpy as np
import pytest

from pft.cli import main
from pft.toy import interpretations, superposition


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("acts")
    data = superposition(4000, d=16, n_features=48, seed=0)
    it = interpretations(data, fvu=0.2, n_missing=2, seed=0)["missing"]
    np.save(d / "acts.npy", data.activations.astype(np.float32))
    np.save(d / "recon.npy", it.reconstruction.astype(np.float32))
    np.save(d / "short.npy", it.reconstruction[:10].astype(np.float32))
    return d


def test_score_prints_table_and_writes_json_and_plot(files, capsys):
    out = files / "r.json"
    png = files / "r.png"
    rc = main(["score", str(files / "acts.npy"), str(files / "recon.npy"), "--json", str(out), "--plot", str(png), "--quiet"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "mardia_kurtosis_z" in text and "nongaussian_bits" in text
    rep = json.loads(out.read_text())
    assert rep["fvu"] == pytest.approx(0.2, rel=1e-4)
    assert png.stat().st_size > 1000


def test_score_bad_input_exits_2_with_one_line(files, capsys):
    rc = main(["score", str(files / "acts.npy"), str(files / "short.npy"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and "`reconstruction` has shape (10, 16)" in err
    rc = main(["score", str(files / "nope.npy"), str(files / "recon.npy"), "--quiet"])
    assert rc == 2 and "no such file" in capsys.readouterr().err


def test_demo_runs_small(tmp_path, capsys):
    rc = main(["demo", "--tokens", "8000", "--out", str(tmp_path), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "Missed features found" in text and "plot:" in text
    assert (tmp_path / "missing.png").exists()
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_demo_exclude_positions_bad_text_exits_2_with_one_line(capsys):
    # parsed before any model is loaded
    rc = main(["demo", "--model", "minilm", "--exclude-positions", "0,first", "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "`--exclude-positions` must be comma-separated integers or 'none'; got '0,first'." in err
