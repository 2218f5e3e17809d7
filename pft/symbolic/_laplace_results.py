"""Results of the Laplace expansion: :class:`LaplaceExpansion` (``log Z``) and
:class:`CorrelatorExpansion` (``⟨x⟩`` and ``Cov(x)``), with their JSON forms.

Both are filled by an engine (:mod:`pft.symbolic.engine`): exact ones by
:func:`pft.symbolic.laplace_expansion`, floating-point ones by :func:`pft.numeric.laplace`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sympy

from pft._results import JsonResult
from pft._validate import check_float, check_int
from pft.errors import InputError
from pft.symbolic._serial import jsonable, read_exact_matrix, read_float, short
from pft.symbolic._terms import DiagramTerm, term_table
from pft.symbolic.engine import build_terms

__all__ = ["LaplaceExpansion", "CorrelatorExpansion"]


def _first_leaf_is_text(value) -> bool:
    """Whether JSON written by :func:`~pft.symbolic._serial.jsonable` holds exact values (text)."""
    while isinstance(value, list) and value:
        value = value[0]
    return isinstance(value, str)


def _read_terms(data: Mapping, exact: bool) -> dict:
    return {int(k): tuple(DiagramTerm.from_dict(t, exact=exact) for t in items) for k, items in data.items()}


@dataclass(frozen=True)
class CorrelatorExpansion(JsonResult):
    """The ``1/n`` series of ``⟨x⟩`` or ``Cov(x)`` under ``exp(-n S)/Z``.

    ``mean``: ``⟨x⟩ = x* + Σ_{k=1}^{order} corrections[k-1] n^(-k) + O(n^(-order-1))``;
    ``covariance``: ``Cov(x) = Σ_{k=1}^{order} corrections[k-1] n^(-k) + …`` with
    ``corrections[0] = G``.

    Attributes
    ----------
    kind : str
        ``"mean"`` or ``"covariance"``.
    order : int
    leading : array or sympy.Matrix
        ``x*`` for the mean, zero for the covariance.
    corrections : tuple
        One vector (mean) or matrix (covariance) per power of ``1/n``.
    terms : dict of int to tuple of DiagramTerm
        The diagrams behind each correction.
    exact : bool
        Whether values are exact sympy objects.
    """

    _json_options = {"indent": 2}

    kind: str
    order: int
    leading: Any
    corrections: tuple
    terms: Mapping[int, tuple]
    exact: bool = True

    def at(self, n):
        """The truncated series at ``n``."""
        n = sympy.sympify(n) if self.exact else float(n)
        total = self.leading
        for k, c in enumerate(self.corrections, start=1):
            total = total + c * n ** (-k)
        return total

    def to_dict(self) -> dict:
        return {
            "kind": self.kind,
            "order": self.order,
            "leading": jsonable(self.leading),
            "corrections": [jsonable(c) for c in self.corrections],
            "terms": {str(k): [t.to_dict() for t in v] for k, v in self.terms.items()},
            "exact": self.exact,
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "CorrelatorExpansion":
        """Inverse of :meth:`to_dict` (exact values re-read by the whitelist parser).

        Examples
        --------
        >>> import sympy
        >>> from pft.symbolic import laplace_expansion
        >>> x = sympy.Symbol("x", real=True)
        >>> m = laplace_expansion(x**2 / 2 + x**3 / 6, x, order=1, point=0).mean(1)
        >>> CorrelatorExpansion.from_json(m.to_json()).to_dict() == m.to_dict()
        True
        """
        exact = bool(data["exact"]) if "exact" in data else _first_leaf_is_text(data["leading"])  # older files
        read = read_exact_matrix if exact else read_float
        return cls(
            kind=data["kind"],
            order=int(data["order"]),
            leading=read(data["leading"]),
            corrections=tuple(read(c) for c in data["corrections"]),
            terms=_read_terms(data["terms"], exact),
            exact=exact,
        )

    def __str__(self) -> str:
        head = "⟨x⟩ = x* + Σ_k m_k n^-k" if self.kind == "mean" else "Cov(x) = Σ_k C_k n^-k"
        lines = [f"{self.kind} to order n^-{self.order}: {head}"]
        for k, c in enumerate(self.corrections, start=1):
            lines.append(f"  n^-{k}: {short(c)}")
        lines.append(term_table(self.terms, None))
        return "\n".join(lines)


@dataclass(frozen=True)
class LaplaceExpansion(JsonResult):
    """The Laplace (saddle-point) expansion of ``log ∫ exp(-n S(x)) dx``.

    ``log Z(n) ≈ -n S(x*) + (d/2) log(2π/n) - ½ log det H + Σ_{k=1}^{order} c_k n^(-k)``.

    Attributes
    ----------
    variables : tuple of str
        Names of the coordinates.
    order : int
        Number of ``1/n`` corrections.
    point : sympy.Matrix or numpy.ndarray, shape (d,)
        The minimum ``x*``.
    action_value : sympy.Expr or float
        ``S(x*)``.
    hessian, propagator : (d, d)
        ``H = ∂²S(x*)`` and ``G = H⁻¹``.
    log_det_hessian : sympy.Expr or float
    vertices : dict of int to array
        The vertex tensors ``λ_k = ∂ᵏS(x*)`` that were formed in full (exact: all
        ``3 … 2·order+2``; numeric: those a plan needed whole; self-loops are closed inside
        the derivative otherwise).
    coefficients : tuple
        ``(c_1, …, c_order)``.
    terms : dict of int to tuple of DiagramTerm
        ``terms[k]``: the diagrams of ``c_k`` with their values.
    exact : bool
        Whether values are exact sympy objects.
    n : float or None
        An ``n`` to show term sizes ``value · n^-k`` at (numeric results).
    engine : Engine or None
        The engine that built the tensors (:mod:`pft.symbolic.engine`); ``.mean`` and
        ``.covariance`` evaluate more diagrams on it. None for an expansion loaded from JSON.
    """

    _json_options = {"indent": 2}

    variables: tuple
    order: int
    point: Any
    action_value: Any
    hessian: Any
    propagator: Any
    log_det_hessian: Any
    vertices: Mapping[int, Any] = field(repr=False)
    coefficients: tuple = ()
    terms: Mapping[int, tuple] = field(default_factory=dict, repr=False)
    exact: bool = True
    n: Any = None
    engine: Any = field(default=None, repr=False, compare=False)

    @property
    def dim(self) -> int:
        return len(self.variables)

    def log_partition(self, n=None):
        """``-n S* + (d/2) log(2π/n) - ½ log det H + Σ c_k n^-k``.

        ``n`` may be a number or a sympy symbol (exact results); defaults to ``self.n``.
        """
        if n is None:
            n = self.n
        if n is None:
            raise InputError("`n` is required (no default n was given when the expansion was built)")
        if self.exact:
            n = sympy.sympify(n)
            out = -n * self.action_value + sympy.Rational(self.dim, 2) * sympy.log(2 * sympy.pi / n)
            out -= self.log_det_hessian / 2
            return out + sum(c * n ** (-k) for k, c in enumerate(self.coefficients, start=1))
        n = check_float(n, "n", minimum=0, exclusive_minimum=True)
        out = -n * self.action_value + 0.5 * self.dim * np.log(2 * np.pi / n) - 0.5 * self.log_det_hessian
        return float(out + sum(c * n ** (-k) for k, c in enumerate(self.coefficients, start=1)))

    def mean(self, order: int | None = None) -> CorrelatorExpansion:
        """``⟨x⟩`` to ``n^-order`` (default: the expansion's order): one-leg diagrams."""
        order = self._check_order(order)
        terms = {k: build_terms(self.engine, 1, k) for k in range(1, order + 1)}
        corrections = tuple(self.engine.collect([t.value for t in terms[k]], (self.dim,)) for k in terms)
        return CorrelatorExpansion("mean", order, self.point, corrections, terms, self.exact)

    def covariance(self, order: int | None = None) -> CorrelatorExpansion:
        """``Cov(x)`` to ``n^-order`` (default: the expansion's order): two-leg diagrams."""
        order = self._check_order(order)
        terms = {k: build_terms(self.engine, 2, k) for k in range(1, order + 1)}
        shape = (self.dim, self.dim)
        corrections = tuple(self.engine.collect([t.value for t in terms[k]], shape) for k in terms)
        return CorrelatorExpansion("covariance", order, self.engine.collect([], shape), corrections, terms, self.exact)

    def _check_order(self, order):
        if order is None:
            order = self.order
        order = check_int(order, "order", minimum=1)
        if self.engine is None:
            raise InputError("this expansion was loaded without its tensors; rebuild it to get moments")
        return int(order)

    def to_dict(self) -> dict:
        return {
            "variables": list(self.variables),
            "order": self.order,
            "exact": self.exact,
            "point": jsonable(self.point),
            "action_value": jsonable(self.action_value),
            "hessian": jsonable(self.hessian),
            "propagator": jsonable(self.propagator),
            "log_det_hessian": jsonable(self.log_det_hessian),
            "coefficients": [jsonable(c) for c in self.coefficients],
            "terms": {str(k): [t.to_dict() for t in v] for k, v in self.terms.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping) -> "LaplaceExpansion":
        """Inverse of :meth:`to_dict` (exact values are re-read by the whitelist parser). The
        loaded expansion has no tensors behind it: ``.mean``/``.covariance`` need a rebuild.

        Examples
        --------
        >>> import sympy
        >>> x = sympy.Symbol("x", real=True)
        >>> from pft.symbolic import laplace_expansion
        >>> e = laplace_expansion(x**2 / 2 + x**3 / 6, x, order=1, point=0)
        >>> LaplaceExpansion.from_json(e.to_json()).to_dict() == e.to_dict()
        True
        """
        exact = bool(data["exact"])
        read = read_exact_matrix if exact else read_float
        terms = _read_terms(data["terms"], exact)
        point = read(data["point"])
        return cls(
            variables=tuple(data["variables"]),
            order=int(data["order"]),
            point=point,
            action_value=read(data["action_value"]),
            hessian=read(data["hessian"]),
            propagator=read(data["propagator"]),
            log_det_hessian=read(data["log_det_hessian"]),
            vertices={},
            coefficients=tuple(read(c) for c in data["coefficients"]),
            terms=terms,
            exact=exact,
        )

    def __str__(self) -> str:
        lines = [
            f"Laplace expansion in 1/n, d = {self.dim}, order {self.order}:",
            "  log Z(n) = -n S* + (d/2) log(2π/n) - ½ log det H + Σ_k c_k n^-k",
            f"  x* = {short(self.point)}   S* = {short(self.action_value)}   log det H = {short(self.log_det_hessian)}",
        ]
        for k, c in enumerate(self.coefficients, start=1):
            lines.append(f"  c{k} = {short(c)}")
        lines.append(term_table(self.terms, self.n))
        return "\n".join(lines)
