"""A whitelist parser that turns a user's formula into a sympy expression without ``eval``.

``sympy.sympify`` and ``parse_expr`` evaluate Python code; a string from the command line must
never reach them. Here the text is parsed by :mod:`ast` and only a handful of node types are
turned into sympy objects: numbers, names (which become real symbols), ``+ - * / **``, unary
``+``/``-`` and calls of a named set of functions. Everything else (attribute access,
subscripts, keyword arguments, lambdas, comprehensions, strings, dunder names...) is refused
with :class:`pft.errors.InputError` before anything is built.
"""

from __future__ import annotations

import ast
import contextlib
import sys
from collections.abc import Mapping

import sympy

from pft.errors import InputError

__all__ = ["parse_expression", "read_expression", "ALLOWED_FUNCTIONS"]

#: Functions a formula may call, by the name it uses.
ALLOWED_FUNCTIONS: Mapping[str, object] = {
    "exp": sympy.exp,
    "log": sympy.log,
    "sqrt": sympy.sqrt,
    "sin": sympy.sin,
    "cos": sympy.cos,
    "tan": sympy.tan,
    "sinh": sympy.sinh,
    "cosh": sympy.cosh,
    "tanh": sympy.tanh,
    "asinh": sympy.asinh,
    "atan": sympy.atan,
    "erf": sympy.erf,
    "abs": sympy.Abs,
}

_CONSTANTS = {"pi": sympy.pi, "E": sympy.E}
_MAX_LENGTH = 10_000
_MAX_DEPTH = 200
_MAX_EXACT_POWER = 1_000


def parse_expression(text: str, *, symbols: Mapping[str, sympy.Symbol] | None = None) -> sympy.Expr:
    """Parse a formula such as ``"x**2/2 + a*x**3/6"`` into a sympy expression, safely.

    Parameters
    ----------
    text : str
        The formula. Allowed: integer and decimal numbers (decimals become exact rationals:
        ``0.1`` is ``1/10``), names (real symbols; ``pi`` and ``E`` are the constants),
        ``+ - * / **``, parentheses and calls of :data:`ALLOWED_FUNCTIONS` with positional
        arguments.
    symbols : mapping of str to sympy.Symbol, optional
        Symbols to use for given names (other names become ``Symbol(name, real=True)``).

    Returns
    -------
    sympy.Expr

    Raises
    ------
    pft.errors.InputError
        For anything outside the whitelist; nothing in ``text`` is ever evaluated.

    Examples
    --------
    >>> parse_expression("x**2/2 + 0.5*x**3")
    x**3/2 + x**2/2
    >>> parse_expression("__import__('os').system('ls')")
    Traceback (most recent call last):
    ...
    pft.errors.InputError: ...
    """
    return _parse(text, symbols, _MAX_LENGTH)


def read_expression(text: str, *, symbols: Mapping[str, sympy.Symbol] | None = None) -> sympy.Expr:
    """:func:`parse_expression` without its length limit, for expressions pft itself wrote
    (a result's JSON): the same whitelist, so nothing is ever evaluated.

    Examples
    --------
    >>> len(read_expression(" + ".join(f"a_{k}*x" for k in range(3000))).args)  # 3000 nesting levels
    3000
    """
    return _parse(text, symbols, None)


def _parse(text, symbols, max_length) -> sympy.Expr:
    if not isinstance(text, str):
        raise InputError(f"`text` must be a str formula; got {type(text).__name__}.")
    if max_length is not None and len(text) > max_length:
        raise InputError(f"`text` must be at most {max_length} characters long; got {len(text)}.")
    shown = text if len(text) <= 80 else text[:77] + "..."
    try:
        if max_length is None:  # long sums are deep left-leaning trees: let ast go deeper
            with _recursion_limit(20_000):
                tree = ast.parse(text.strip(), mode="eval")
        else:
            tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        raise InputError(f"cannot parse formula {shown!r}: {exc.msg} (use ** for powers)") from None
    except (RecursionError, MemoryError):
        raise InputError(f"formula {shown!r} is nested too deeply to parse (at most {_MAX_DEPTH} levels)") from None
    try:
        return _Builder(shown, dict(symbols or {}), flat_sums=max_length is None).build(tree.body, 0)
    except (RecursionError, MemoryError):
        raise InputError(f"formula {shown!r} is too large to build (nesting, or a huge exact number)") from None


@contextlib.contextmanager
def _recursion_limit(limit: int):
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


class _Builder:
    _BINOPS = {
        ast.Add: lambda a, b: a + b,
        ast.Sub: lambda a, b: a - b,
        ast.Mult: lambda a, b: a * b,
        ast.Div: lambda a, b: a / b,
    }

    def __init__(self, text: str, symbols: dict, *, flat_sums: bool = False):
        self.text = text
        self.symbols = symbols
        self.flat_sums = flat_sums

    def refuse(self, what: str):
        raise InputError(
            f"formula {self.text!r} is refused: {what}; allowed are numbers, names, + - * / **, "
            f"parentheses and the functions {', '.join(sorted(ALLOWED_FUNCTIONS))}"
        )

    def build(self, node: ast.AST, depth: int) -> sympy.Expr:
        if depth > _MAX_DEPTH:
            self.refuse("it is nested too deeply")
        if isinstance(node, ast.Constant):
            value = node.value
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                self.refuse(f"the literal {value!r} is not a real number")
            if isinstance(value, int):
                return sympy.Integer(value)
            if value != value or value in (float("inf"), float("-inf")):
                self.refuse(f"the literal {value!r} is not finite")
            return sympy.Rational(repr(value))
        if isinstance(node, ast.Name):
            return self.name(node.id)
        if isinstance(node, ast.UnaryOp):
            operand = self.build(node.operand, depth + 1)
            if isinstance(node.op, ast.USub):
                return -operand
            if isinstance(node.op, ast.UAdd):
                return operand
            self.refuse(f"the operator {type(node.op).__name__} is not allowed")
        if self.flat_sums and isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
            # (pft's own output) a sum of many terms is a deep left-leaning chain: walk it without recursion
            terms = []
            while isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
                right = self.build(node.right, depth + 1)
                terms.append(-right if isinstance(node.op, ast.Sub) else right)
                node = node.left
            terms.append(self.build(node, depth + 1))
            return sympy.Add(*reversed(terms))
        if isinstance(node, ast.BinOp):
            left = self.build(node.left, depth + 1)
            right = self.build(node.right, depth + 1)
            if isinstance(node.op, ast.Pow):
                return self.power(left, right)
            op = self._BINOPS.get(type(node.op))
            if op is None:
                hint = " (write ** for powers)" if isinstance(node.op, ast.BitXor) else ""
                self.refuse(f"the operator {type(node.op).__name__} is not allowed{hint}")
            return op(left, right)
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                self.refuse("only named functions may be called (no attribute access)")
            fname = node.func.id
            if fname not in ALLOWED_FUNCTIONS:
                self.refuse(f"the function {fname!r} is not allowed")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                self.refuse(f"{fname}() takes positional arguments only")
            args = [self.build(a, depth + 1) for a in node.args]
            try:
                return ALLOWED_FUNCTIONS[fname](*args)
            except TypeError as exc:
                raise InputError(f"formula {self.text!r}: bad call of {fname}(): {exc}") from None
        if isinstance(node, ast.Attribute):
            self.refuse("attribute access is not allowed")
        self.refuse(f"the syntax {type(node).__name__} is not allowed")
        raise AssertionError  # pragma: no cover (refuse always raises)

    def name(self, name: str) -> sympy.Expr:
        if name.startswith("_"):
            self.refuse(f"the name {name!r} starts with an underscore")
        if name in self.symbols:
            return self.symbols[name]
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        if name in ALLOWED_FUNCTIONS:
            self.refuse(f"the function {name!r} is used without calling it")
        sym = sympy.Symbol(name, real=True)
        self.symbols[name] = sym
        return sym

    def power(self, base: sympy.Expr, exponent: sympy.Expr) -> sympy.Expr:
        # 9**9**9 would make sympy build a gigantic integer: refuse large exact exponents.
        if exponent.is_Number and abs(exponent) > _MAX_EXACT_POWER:
            self.refuse(f"the exponent {exponent} is larger than {_MAX_EXACT_POWER}")
        if base.is_Number and exponent.is_Number and abs(base) > 1 and abs(exponent) * _digits(base) > 10_000:
            self.refuse(f"{base}**{exponent} is too large to compute exactly")
        return base**exponent


def _digits(number: sympy.Expr) -> int:
    num, den = sympy.fraction(sympy.Rational(number)) if number.is_Rational else (number, 1)
    return max(len(str(abs(int(num)))), len(str(abs(int(den)))), 1) if number.is_Rational else 20
