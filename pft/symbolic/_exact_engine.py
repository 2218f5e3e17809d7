"""The exact engine: vertex tensors as numpy object arrays of sympy expressions, exact contractions.

It implements the protocol of :mod:`pft.symbolic.engine` for :func:`pft.symbolic.laplace_expansion`.
"""

from __future__ import annotations

import numpy as np
import sympy

from pft.symbolic.engine import ContractionPlan, Operand, dress

__all__ = ["ExactEngine", "tidy"]


class ExactEngine:
    """Tensors as numpy object arrays of sympy expressions; exact contractions."""

    def __init__(self, action, variables, point, propagator):
        self.action = action
        self.variables = variables
        self.point = point
        self.G = np.array(propagator.tolist(), dtype=object)
        self.dim = len(variables)
        self._derivs: dict[tuple, sympy.Expr] = {(): action}
        self._full: dict[int, np.ndarray] = {}
        self._dressed: dict[Operand, np.ndarray] = {}

    def derivative(self, idx: tuple[int, ...]) -> sympy.Expr:
        idx = tuple(sorted(idx))
        if idx not in self._derivs:
            self._derivs[idx] = sympy.diff(self.derivative(idx[:-1]), self.variables[idx[-1]])
        return self._derivs[idx]

    def full(self, k: int) -> np.ndarray:
        if k not in self._full:
            subs = dict(zip(self.variables, self.point))
            values: dict[tuple, sympy.Expr] = {}
            out = np.empty((self.dim,) * k, dtype=object)
            for idx in np.ndindex(*out.shape):
                key = tuple(sorted(idx))
                if key not in values:
                    values[key] = tidy(self.derivative(key).subs(subs))
                out[idx] = values[key]
            self._full[k] = out
        return self._full[k]

    def operand(self, op: Operand):
        if op.kind == "propagator":
            return self.G
        if op not in self._dressed:
            self._dressed[op] = dress(self.full(op.valence), op.self_loops, self.G, lambda e, *a: np.einsum(e, *a, optimize=len(a) > 2))
        return self._dressed[op]

    def contract(self, plan: ContractionPlan):
        return plan.evaluate(self.operand)

    def tidy(self, value):
        if isinstance(value, np.ndarray):
            out = np.empty(value.shape, dtype=object)
            for idx, v in np.ndenumerate(value):
                out[idx] = tidy(v)
            return out if value.ndim else out[()]
        return tidy(value)

    def collect(self, values, shape):
        total = np.full(shape, sympy.Integer(0), dtype=object)
        for v in values:
            total = total + v
        total = self.tidy(total)
        if len(shape) == 1:
            return sympy.ImmutableMatrix(list(total))
        return sympy.ImmutableMatrix(total.tolist())


def tidy(expr):
    """An exact value in a canonical form: rationals as they are, rational functions cancelled
    (expanded when the denominator is a number), other constants simplified."""
    expr = sympy.sympify(expr)
    if expr.is_Rational:
        return expr
    if expr.free_symbols:
        c = sympy.cancel(sympy.together(expr))
        num, den = sympy.fraction(c)
        if not den.free_symbols:
            return sympy.expand(c)
        return c
    return expr if expr.is_Float else sympy.simplify(expr)
