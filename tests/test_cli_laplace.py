"""`pft laplace` and `pft edgeworth` through pft.cli.main: output, and refusal of unsafe input."""

import json

import pytest

from pft.cli import main


def test_laplace_prints_exact_coefficients_and_the_diagram_table(capsys):
    rc = main(["laplace", "x**2/2 + a*x**3/6 + b*x**4/24", "--var", "x", "--order", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    # exact 1-D series (tests/symbolic/test_laplace.py derives them by Gaussian integration)
    assert "c1 = 5*a**2/24 - b/8" in out
    assert "c2 = 5*a**4/16 - 25*a**2*b/48 + b**2/12" in out
    assert "λ3² G³" in out and "1/|Aut|" in out and "1/12" in out


def test_laplace_json_and_moments(capsys):
    assert main(["laplace", "x - log(x)", "--var", "x", "--order", "3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["coefficients"] == ["1/12", "0", "-1/360"]  # Stirling
    assert main(["laplace", "x**2/2 + x**3/6", "--var", "x", "--order", "1", "--point", "0", "--moments"]) == 0
    out = capsys.readouterr().out
    assert "n^-1: [-1/2]" in out  # <x> = -λ3/(2n) for H = 1


MALICIOUS = [
    "__import__('os').system('x')",
    "x.__class__.__bases__",
    "(lambda: 0)()",
    "open('/etc/passwd').read()",
    "x; import os",
]


@pytest.mark.parametrize("text", MALICIOUS)
def test_laplace_refuses_unsafe_formulas_with_exit_2_and_one_line(text, capsys):
    rc = main(["laplace", text, "--var", "x"])
    captured = capsys.readouterr()
    assert rc == 2
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pft laplace: error:")


def test_laplace_bad_point_and_saddle_exit_2(capsys):
    assert main(["laplace", "x**2/2 + x**3", "--var", "x", "--point", "__import__('os')"]) == 2
    assert main(["laplace", "x**2/2 - y**2/2 + y**4", "--var", "x,y", "--point", "0,0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "not positive definite" in err[1]
    assert main(["laplace", "x**2", "--var", "x", "--order", "two"]) == 2


def test_edgeworth_symbolic_and_numeric(capsys):
    assert main(["edgeworth", "--order", "2"]) == 0
    out = capsys.readouterr().out
    assert "1/72" in out and "Cornish-Fisher" in out
    assert main(["edgeworth", "--order", "1", "--cumulants", "0,1,0", "--x", "0", "--q", "0.5"]) == 0
    out = capsys.readouterr().out
    assert "0.39894228" in out  # φ(0)
    assert main(["edgeworth", "--cumulants", "0,1,exec('1')", "--order", "1"]) == 2
    assert main(["edgeworth", "--cumulants", "0,1,a", "--order", "1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("pft edgeworth: error:") for e in err)
