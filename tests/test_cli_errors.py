"""Every ``pft`` command refuses a bad argument the same way: exit status 2, nothing on stdout,
and one stderr line ``pft <command>: error: `--flag` must be <what>; got <value>.``"""

import re
import subprocess
import sys

import pytest

from pft.cli import COMMANDS, build_parser, main

# (argv, the line expected on stderr); at least one row per command
ROWS = [
    (["demo", "--tokens", "1"], "pft demo: error: `--tokens` must be an integer >= 2; got 1."),
    (["demo", "--model", "gpt2"], "pft demo: error: `--model` must be one of 'toy', 'minilm', 'smollm2'; got 'gpt2'."),
    (["demo", "--model", "minilm", "--exclude-positions", "0,first"],
     "pft demo: error: `--exclude-positions` must be comma-separated integers or 'none'; got '0,first'."),
    (["score", "a.npy", "r.npy", "--seed", "-1"],
     "pft score: error: `--seed` must be a non-negative integer (below 2**63); got -1."),
    (["score", "a.npy", "r.npy", "--holdout", "half"], "pft score: error: `--holdout` must be a finite number; got 'half'."),
    (["score", "a.npy", "r.npy", "--precision", "float16"],
     "pft score: error: `--precision` must be one of 'float64', 'float32', 'tf32'; got 'float16'."),
    (["diagrams", "--valences", "3,x", "--loops", "2"], "pft diagrams: error: `--valences` must be comma-separated integers; got '3,x'."),
    (["diagrams", "--valences", "3", "--vertices", "3-2"],
     "pft diagrams: error: `--vertices` must be valence:count items like 3:2,4:1; got '3-2'."),
    (["degrade", "--draws", "0"], "pft degrade: error: `--draws` must be an integer >= 1; got 0."),
    (["degrade", "--tokens", "49"], "pft degrade: error: `--tokens` must be an integer >= 50; got 49."),
    (["degrade", "--temperatures", "1,x"], "pft degrade: error: `--temperatures` must be comma-separated numbers; got '1,x'."),
    (["power", "a", "c", "d", "--rates", "x"], "pft power: error: `--rates` must be comma-separated numbers; got 'x'."),
    (["power", "a", "c", "d", "--per-rate", "two"], "pft power: error: `--per-rate` must be an integer >= 1; got 'two'."),
    (["laplace", "x**2/2", "--var", "x", "--order", "two"], "pft laplace: error: `--order` must be an integer >= 0; got 'two'."),
    (["edgeworth", "--dim", "-1"], "pft edgeworth: error: `--dim` must be an integer >= 1; got -1."),
    # the CLI's own check, so the message names the flag and not the library's `dim`
    (["edgeworth", "--dim", "0"], "pft edgeworth: error: `--dim` must be an integer >= 1; got 0."),
    (["edgeworth", "--cumulants", "0,1", "--x", "inf"],
     "pft edgeworth: error: `--x` must be comma-separated finite real numbers (or constant formulas); got 'inf'."),
    (["scaling", "--widths", "8,x"],
     "pft scaling: error: `--widths` must be integers like 16,32 or ranges 2:32, 2:32:2, 2:64:x2; got '8,x'."),
    (["scaling", "--method", "mc"], "pft scaling: error: `--method` must be one of 'exact', 'weights'; got 'mc'."),
    (["scaling", "--C-W", "nan"], "pft scaling: error: `--C-W` must be a finite number; got nan."),
    (["eval", "--model", "m", "--sae", "s", "--batch-size", "0"], "pft eval: error: `--batch-size` must be an integer >= 1; got 0."),
    (["eval", "--model", "m", "--sae", "s", "--seed", "x"],
     "pft eval: error: `--seed` must be a non-negative integer (below 2**63); got 'x'."),
    (["eval", "--model", "m", "--sae", "s", "--exclude-tokens", "a,b"],
     "pft eval: error: `--exclude-tokens` must be 'special', 'none' or comma-separated integers; got 'a,b'."),
]
FORMAT = re.compile(r"^pft [a-z]+: error: `[^`]+` must be .+; got .+\.$")


def test_every_command_has_a_row():
    assert {argv[0] for argv, _ in ROWS} == set(COMMANDS)


@pytest.mark.parametrize("argv, line", ROWS, ids=[" ".join(r[0]) for r in ROWS])
def test_a_bad_argument_is_one_line_in_the_one_format(argv, line, capsys):
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == line + "\n"
    assert FORMAT.match(line)


@pytest.mark.parametrize(
    "argv, line",
    [
        (["score", "a.npy"], "pft score: error: the following arguments are required: recon; see `pft score --help`."),
        (["score", "a.npy", "r.npy", "--bogus"], "pft score: error: unrecognized arguments: --bogus; see `pft score --help`."),
        (["nosuch"], "pft: error: `COMMAND` must be one of 'demo', 'score', 'diagrams', 'degrade', 'power', "
                     "'laplace', 'edgeworth', 'scaling', 'eval'; got 'nosuch'."),
    ],
)
def test_structural_errors_are_the_same_one_line(argv, line, capsys):
    assert main(argv) == 2
    assert capsys.readouterr().err == line + "\n"


def test_help_returns_0_and_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in COMMANDS)
    assert main(["degrade", "--help"]) == 0
    assert "--temperatures" in capsys.readouterr().out


def test_parser_has_one_subparser_per_table_row():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert list(sub.choices) == list(COMMANDS)


def test_python_dash_m_pft_is_the_command():
    proc = subprocess.run([sys.executable, "-m", "pft", "laplace", "x**2/2", "--var", "x", "--order", "-1"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "pft laplace: error: `--order` must be an integer >= 0; got -1.\n"


def test_int_list_ranges():
    from pft.cli._args import parse_int_list
    from pft.errors import InputError

    assert parse_int_list("2:5", "--depths") == [2, 3, 4, 5]
    assert parse_int_list("2:9:3,20", "--depths") == [2, 5, 8, 20]
    assert parse_int_list("2:32:x2", "--depths") == [2, 4, 8, 16, 32]
    for bad in ("0:3", "2:8:x1", "2:8:0", "1:2:3:4", "a"):
        with pytest.raises(InputError, match="`--depths` must"):
            parse_int_list(bad, "--depths")
