"""The engine protocol of pft.symbolic.engine: both engines satisfy it, a third one written here
gives the known closed form, and pft.numeric reaches the symbolic layer only through public or
non-underscore modules."""

import pathlib
import re

import numpy as np
import sympy

from pft.symbolic import LaplaceExpansion, laplace_expansion
from pft.symbolic.engine import Engine, build_terms, diagrams_of_order, dress


class _Diagonal:
    """A one-dimensional engine with H = h and only λ3 = a, λ4 = b: c1 = (5a²/24h³ - b/8h²)."""

    dim = 1

    def __init__(self, h, a, b):
        self.G = np.array([[1.0 / h]])
        self.full = {3: np.full((1,) * 3, a), 4: np.full((1,) * 4, b)}

    def operand(self, op):
        if op.kind == "propagator":
            return self.G
        tensor = self.full.get(op.valence, np.zeros((1,) * op.valence))
        return dress(tensor, op.self_loops, self.G, np.einsum)

    def contract(self, plan):
        return plan.evaluate(self.operand, einsum=np.einsum)

    def tidy(self, value):
        return float(value) if np.ndim(value) == 0 else np.asarray(value, dtype=float)

    def collect(self, values, shape):
        return sum(values, np.zeros(shape))


def test_a_third_engine_gives_the_closed_form_first_coefficient():
    h, a, b = 2.0, 0.7, -0.3
    engine = _Diagonal(h, a, b)
    assert isinstance(engine, Engine)
    c1 = sum(t.value for t in build_terms(engine, 0, 1))
    assert abs(c1 - (5 * a * a / (24 * h**3) - b / (8 * h**2))) < 1e-15
    # the mean to 1/n: -λ3 G² / 2 (the tadpole), an expansion built on this engine answers it
    e = LaplaceExpansion(("x",), 1, np.zeros(1), 0.0, np.eye(1) * h, engine.G, np.log(h), {}, (c1,), {},
                         exact=False, engine=engine)
    assert abs(e.mean(1).corrections[0][0] - (-a / (2 * h * h))) < 1e-15


def test_both_engines_follow_the_protocol():
    from pft.numeric import laplace

    x = sympy.Symbol("x", real=True)
    exact = laplace_expansion(x**2 / 2 + x**3 / 6, x, order=1, point=0)
    numeric = laplace(lambda v: v[0] ** 2 / 2 + v[0] ** 3 / 6, [0.0], order=1)
    assert isinstance(exact.engine, Engine) and isinstance(numeric.engine, Engine)
    assert abs(float(exact.coefficients[0]) - numeric.coefficients[0]) < 1e-14  # 5/24
    assert exact.coefficients[0] == sympy.Rational(5, 24)
    assert len(diagrams_of_order(1, 1)) == 1  # the tadpole


def test_numeric_imports_only_public_symbolic_modules():
    root = pathlib.Path(__file__).resolve().parents[2] / "pft" / "numeric"
    for name in ("_laplace.py", "_edgeworth.py"):
        text = (root / name).read_text()
        assert not re.search(r"^\s*(from|import)\s+pft\.symbolic\._", text, re.M), name
