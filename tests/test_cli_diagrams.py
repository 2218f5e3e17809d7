"""`pft diagrams`: output for good input, exit status 2 and one stderr line for bad input."""

import json
import xml.etree.ElementTree as ET
from fractions import Fraction

import pytest

from pft.cli import main


def test_table_lists_diagrams_and_their_sum(capsys):
    assert main(["diagrams", "--valences", "4", "--vertices", "4:2"]) == 0
    out = capsys.readouterr().out
    # φ⁴ at two vertices: sunset 1/48 + dumbbell 1/16 = 1/12 (docs/math.md §2: log Z = -g/8 + g²/12)
    assert "2 diagrams, sum of 1/|Aut| = 1/12" in out
    assert " 48 " in out and " 16 " in out


def test_json_two_point_one_pi(capsys):
    assert main(["diagrams", "--valences", "4", "--loops", "2", "--external", "2", "--one-pi", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    # two-loop φ⁴ self-energy: sunset (1/6) and double tadpole (1/4); the tadpole-on-tadpole
    # chain with a bridge is not 1PI.
    assert sorted(Fraction(d["symmetry_factor"]) for d in data) == [Fraction(1, 6), Fraction(1, 4)]
    assert all(d["n_external"] == 2 for d in data)


def test_svg_and_tikz(capsys):
    assert main(["diagrams", "--valences", "3", "--loops", "3", "--format", "svg"]) == 0
    root = ET.fromstring(capsys.readouterr().out)
    assert len(root.findall("{http://www.w3.org/2000/svg}svg")) == 5  # OEIS A005967
    assert main(["diagrams", "--valences", "3,4", "--vertices", "3:2", "--format", "tikz"]) == 0
    tex = capsys.readouterr().out
    assert tex.startswith("\\documentclass") and tex.count("\\begin{tikzpicture}") == 2


def test_catalog_writes_files(tmp_path, capsys, monkeypatch):
    import pft.symbolic._catalog as cat

    monkeypatch.setattr(cat, "CATALOG", {"phi4": ((4,), "φ⁴", {"vacuum": range(2, 4)})})
    assert main(["diagrams", "catalog", "--out", str(tmp_path / "cat")]) == 0
    assert "wrote" in capsys.readouterr().out
    doc = json.loads((tmp_path / "cat" / "phi4" / "vacuum" / "L3.json").read_text())
    assert doc["count"] == 2 and doc["sum_symmetry_factors"] == "1/12"
    assert (tmp_path / "cat" / "README.md").exists()


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["diagrams", "--valences", "3,x", "--loops", "2"], "`--valences`"),
        (["diagrams", "--valences", "3", "--loops", "2", "--vertices", "3:2"], "exactly one"),
        (["diagrams", "--valences", "3"], "exactly one"),
        (["diagrams", "--loops", "2"], "`--valences` is required"),
        (["diagrams", "--valences", "3", "--vertices", "3-2"], "valence:count"),
        (["diagrams", "--valences", "4", "--vertices", "3:2"], "valence 3"),
        (["diagrams", "--valences", "2,4", "--loops", "1"], "valence >= 3"),
        (["diagrams", "--valences", "4", "--loops", "1", "--external", "-1"], "`n_external`"),
        (["diagrams", "catalog"], "--out"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1 and err.startswith("pft diagrams: error:")


def test_argparse_level_errors_exit_2_with_the_same_line(capsys):
    assert main(["diagrams", "--valences", "4", "--loops", "1", "--format", "png"]) == 2
    err = capsys.readouterr().err
    assert err == "pft diagrams: error: `--format` must be one of 'table', 'json', 'tikz', 'svg'; got 'png'.\n"
