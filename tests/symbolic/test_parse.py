"""The whitelist formula parser: exact results for what is allowed, refusal for the rest."""

import pathlib

import pytest
import sympy

from pft.errors import InputError
from pft.symbolic import parse_expression


def test_builds_the_same_expression_as_sympy_code():
    x, a, b = sympy.symbols("x a b", real=True)
    got = parse_expression("x**2/2 + a*x**3/6 + b*x**4/24")
    assert sympy.expand(got - (x**2 / 2 + a * x**3 / 6 + b * x**4 / 24)) == 0


def test_decimals_become_exact_rationals_and_functions_are_sympy():
    x = sympy.Symbol("x", real=True)
    assert parse_expression("0.1*x") == sympy.Rational(1, 10) * x
    assert parse_expression("x - log(x)") == x - sympy.log(x)
    assert parse_expression("-(+x)**2 + exp(2)*pi") == -(x**2) + sympy.exp(2) * sympy.pi
    assert parse_expression("1e-3") == sympy.Rational(1, 1000)


def test_given_symbols_are_used():
    y = sympy.Symbol("y", positive=True)
    assert parse_expression("y**2", symbols={"y": y}) == y**2


MALICIOUS = [
    "__import__('os').system('x')",
    "x.__class__",
    "x.real",
    "(lambda: 1)()",
    "[t for t in (1, 2)]",
    "'abc'",
    "x[0]",
    "open('/etc/passwd')",
    "eval('1')",
    "__builtins__",
    "_x + 1",
    "exp(x, evaluate=False)",
    "exp(*x)",
    "x if x else 1",
    "x == 1",
    "x ^ 2",
    "9**9**9**9",
    "(9**999)**999",
    "True",
    "1j",
    "exp",
    "",
    "x;1",
]


@pytest.mark.parametrize("text", MALICIOUS)
def test_refuses_everything_outside_the_whitelist(text):
    with pytest.raises(InputError) as info:
        parse_expression(text)
    assert str(info.value)  # a message, not an empty error


def test_refused_strings_are_never_evaluated(tmp_path):
    target = tmp_path / "pwned"
    text = f"__import__('pathlib').Path({str(target)!r}).touch()"
    with pytest.raises(InputError, match="refused"):
        parse_expression(text)
    assert not pathlib.Path(target).exists()


def test_caret_refusal_suggests_double_star():
    with pytest.raises(InputError, match=r"\*\*"):
        parse_expression("x^2")


def test_non_string_input_is_refused():
    with pytest.raises(InputError, match=r"^`text` must be a str formula; got int\.$"):
        parse_expression(3)
