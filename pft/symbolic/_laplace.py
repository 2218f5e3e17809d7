"""Laplace expansion of ``log ∫ exp(-n S(x)) dx`` in powers of ``1/n``, organised as diagrams.

``log Z(n) = -n S* + (d/2) log(2π/n) - ½ log det H + Σ_k c_k n^(-k)``; ``c_k`` is the sum over
connected vacuum diagrams with ``L = k + 1`` loops (vertex ``-λ_j``, edge ``G = H⁻¹``, value
over ``|Aut|``). The moments of ``x`` under ``exp(-n S)/Z`` are the connected diagrams with one
(mean) or two (covariance) external legs: a connected k-point diagram with ``L`` loops scales as
``n^-(L + k - 1)``. Every diagram's value comes from its :class:`ContractionPlan`.

The machinery here is shared: :func:`laplace_expansion` feeds it exact sympy tensors,
:func:`pft.numeric.laplace` autodiff tensors; both build the same :class:`LaplaceExpansion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from numbers import Integral, Number
from string import ascii_letters
from typing import Any

import numpy as np
import sympy

from pft._results import JsonResult
from pft.errors import InputError, NotPositiveDefiniteError, OutOfReachError
from pft.symbolic._enumerate import correlator_diagrams, vacuum_diagrams
from pft.symbolic._plan import ContractionPlan, Operand, contraction_plan

__all__ = [
    "laplace_expansion",
    "LaplaceExpansion",
    "DiagramTerm",
    "CorrelatorExpansion",
    "diagrams_of_order",
    "build_terms",
    "not_positive_definite",
]


# ----------------------------------------------------------------------------- diagrams
@lru_cache(maxsize=None)
def diagrams_of_order(n_external: int, k: int) -> tuple:
    """The connected diagrams with ``n_external`` legs whose value scales as ``n^-k``.

    Vacuum (``n_external = 0``): ``L = k + 1`` loops, vertex degrees ``3 … 2k + 2``; mean
    (1 leg): ``L = k``, degrees up to ``2k + 1``; covariance (2 legs): ``L = k - 1``, degrees up
    to ``2k``. (A connected diagram with V vertices, E edges, k legs and L internal loops has
    ``Σ_v (deg_v - 2) = 2L + n_external - 2``.)

    Examples
    --------
    >>> len(diagrams_of_order(0, 1)), len(diagrams_of_order(0, 2))
    (3, 15)
    """
    loops = k + 1 - n_external
    if loops < 0:
        return ()
    top = max(2 * loops + n_external, 3)
    valences = tuple(range(3, top + 1))
    if n_external == 0:
        found = vacuum_diagrams(valences, loops=loops)
    else:
        found = correlator_diagrams(n_external, valences, loops=loops)
    out = []
    for d in dict.fromkeys(found):  # dedupe: the enumerator may list the bare propagator twice
        plan = contraction_plan(d)
        if plan.n_power != -k:
            raise AssertionError(f"diagram {d!r} scales as n^{plan.n_power}, expected n^{-k}")
        out.append((d, plan))
    return tuple(out)


@dataclass(frozen=True)
class DiagramTerm:
    """One diagram's contribution.

    Attributes
    ----------
    diagram : Diagram
    plan : ContractionPlan
    value : sympy.Expr, float, or array
        ``coefficient · contraction`` (the ``n^n_power`` left out), exact for exact inputs.
    """

    diagram: Any
    plan: ContractionPlan
    value: Any

    def label(self) -> str:
        """Vertices and propagators, e.g. ``λ3² G³``."""
        counts: dict[str, int] = {}
        for op in self.plan.operands:
            counts[str(op)] = counts.get(str(op), 0) + 1
        parts = []
        for name, c in counts.items():
            if c > 1 and "∘" in name:
                name = f"({name})"
            parts.append(name + (str(c).translate(_SUP) if c > 1 else ""))
        return " ".join(parts)

    def to_dict(self) -> dict:
        return {
            "edges": [list(e) for e in self.diagram.edges],
            "valences": list(self.diagram.valences),
            "n_external": self.diagram.n_external,
            "symmetry_factor": str(self.diagram.symmetry_factor),
            "plan": self.plan.to_dict(),
            "value": _jsonable(self.value),
        }


_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def build_terms(engine, n_external: int, k: int) -> tuple[DiagramTerm, ...]:
    """Evaluate every diagram of order ``n^-k`` with ``n_external`` legs on ``engine``."""
    return tuple(DiagramTerm(d, plan, engine.tidy(engine.contract(plan))) for d, plan in diagrams_of_order(n_external, k))


# ------------------------------------------------------------------------------ results
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
            "leading": _jsonable(self.leading),
            "corrections": [_jsonable(c) for c in self.corrections],
            "terms": {str(k): [t.to_dict() for t in v] for k, v in self.terms.items()},
        }

    def __str__(self) -> str:
        head = "⟨x⟩ = x* + Σ_k m_k n^-k" if self.kind == "mean" else "Cov(x) = Σ_k C_k n^-k"
        lines = [f"{self.kind} to order n^-{self.order}: {head}"]
        for k, c in enumerate(self.corrections, start=1):
            lines.append(f"  n^-{k}: {_short(c)}")
        lines.append(_table(self.terms, None))
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
    _engine: Any = field(default=None, repr=False, compare=False)

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
        n = float(n)
        if not n > 0:
            raise InputError(f"`n` must be positive, got {n}")
        out = -n * self.action_value + 0.5 * self.dim * np.log(2 * np.pi / n) - 0.5 * self.log_det_hessian
        return float(out + sum(c * n ** (-k) for k, c in enumerate(self.coefficients, start=1)))

    def mean(self, order: int | None = None) -> CorrelatorExpansion:
        """``⟨x⟩`` to ``n^-order`` (default: the expansion's order): one-leg diagrams."""
        order = self._check_order(order)
        terms = {k: build_terms(self._engine, 1, k) for k in range(1, order + 1)}
        corrections = tuple(self._engine.collect([t.value for t in terms[k]], (self.dim,)) for k in terms)
        return CorrelatorExpansion("mean", order, self.point, corrections, terms, self.exact)

    def covariance(self, order: int | None = None) -> CorrelatorExpansion:
        """``Cov(x)`` to ``n^-order`` (default: the expansion's order): two-leg diagrams."""
        order = self._check_order(order)
        terms = {k: build_terms(self._engine, 2, k) for k in range(1, order + 1)}
        shape = (self.dim, self.dim)
        corrections = tuple(self._engine.collect([t.value for t in terms[k]], shape) for k in terms)
        return CorrelatorExpansion("covariance", order, self._engine.collect([], shape), corrections, terms, self.exact)

    def _check_order(self, order):
        if order is None:
            order = self.order
        if isinstance(order, bool) or not isinstance(order, Integral) or order < 1:
            raise InputError(f"`order` must be a positive integer, got {order!r}")
        if self._engine is None:
            raise InputError("this expansion was loaded without its tensors; rebuild it to get moments")
        return int(order)

    def to_dict(self) -> dict:
        return {
            "variables": list(self.variables),
            "order": self.order,
            "exact": self.exact,
            "point": _jsonable(self.point),
            "action_value": _jsonable(self.action_value),
            "hessian": _jsonable(self.hessian),
            "propagator": _jsonable(self.propagator),
            "log_det_hessian": _jsonable(self.log_det_hessian),
            "coefficients": [_jsonable(c) for c in self.coefficients],
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
        >>> e = laplace_expansion(x**2 / 2 + x**3 / 6, x, order=1, point=0)
        >>> LaplaceExpansion.from_json(e.to_json()).to_dict() == e.to_dict()
        True
        """
        from pft.symbolic._diagram import Diagram

        exact = bool(data["exact"])
        read = _read_exact if exact else _read_float
        terms = {}
        for k, items in data["terms"].items():
            terms[int(k)] = tuple(
                DiagramTerm(
                    Diagram.from_dict({"valences": t["valences"], "n_external": t["n_external"], "edges": t["edges"]}),
                    _plan_from_dict(t["plan"]),
                    read(t["value"]),
                )
                for t in items
            )
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
            f"  x* = {_short(self.point)}   S* = {_short(self.action_value)}   log det H = {_short(self.log_det_hessian)}",
        ]
        for k, c in enumerate(self.coefficients, start=1):
            lines.append(f"  c{k} = {_short(c)}")
        lines.append(_table(self.terms, self.n))
        return "\n".join(lines)


def _read_exact(value):
    from pft.symbolic._parse import parse_expression

    if isinstance(value, list):
        if value and isinstance(value[0], list):
            return sympy.ImmutableMatrix([[_read_exact(v) for v in row] for row in value])
        return sympy.ImmutableMatrix([_read_exact(v) for v in value]) if value else sympy.ImmutableMatrix([])
    return parse_expression(value) if isinstance(value, str) else sympy.sympify(value)


def _read_float(value):
    return np.array(value, dtype=np.float64) if isinstance(value, list) else float(value)


def _plan_from_dict(d: Mapping) -> ContractionPlan:
    from fractions import Fraction

    ops = tuple(Operand(o["kind"], int(o["valence"]), int(o["self_loops"])) for o in d["operands"])
    return ContractionPlan(d["equation"], ops, Fraction(d["coefficient"]), int(d["n_power"]), int(d["n_external"]))


def _short(value) -> str:
    if isinstance(value, np.ndarray):
        return np.array2string(value, precision=6, max_line_width=100, threshold=12)
    if isinstance(value, (float, np.floating)):
        return f"{value:.10g}"
    if isinstance(value, sympy.MatrixBase) and value.cols == 1:
        return str(list(value))
    return str(value)


def _table(terms: Mapping[int, tuple], n) -> str:
    header = ("k", "diagram", "edges", "1/|Aut|", "value")
    if n is not None:
        header = (*header, f"value·n^-k (n={n:g})")
    rows = [header]
    for k, ts in terms.items():
        ordered = list(ts)
        if ordered and all(_is_number(t.value) for t in ordered):
            ordered.sort(key=lambda t: -abs(complex(t.value)))
        for t in ordered:
            edges = " ".join(f"{u}{v}" for u, v in t.diagram.edges)
            row = (str(k), t.label(), edges, str(t.diagram.symmetry_factor), _short(t.value))
            if n is not None:
                row = (*row, f"{float(t.value) * n ** (-k):.4g}" if _is_number(t.value) else "")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    out = []
    for j, r in enumerate(rows):
        out.append("  " + "  ".join(c.ljust(w) if i in (1, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
        if j == 0:
            out.append("  " + "  ".join("-" * w for w in widths))
    return "\n".join(out)


def _is_number(value) -> bool:
    if isinstance(value, (Number, np.number)):
        return True
    return isinstance(value, sympy.Basic) and value.is_number and value.is_real is True


def _jsonable(value):
    if value is None:
        return None
    if isinstance(value, sympy.MatrixBase):
        return [[_jsonable(v) for v in row] for row in value.tolist()]
    if isinstance(value, sympy.NDimArray):
        return _jsonable(np.array(value.tolist(), dtype=object))
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return [_jsonable(v) for v in value] if value.ndim else _jsonable(value[()])
        return value.tolist()
    if isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


# ------------------------------------------------------------------------------- checks
def not_positive_definite(eigenvalues, where: str) -> NotPositiveDefiniteError:
    """The error for a Hessian that is not positive definite, naming its smallest eigenvalues."""
    ev = np.sort(np.asarray(eigenvalues, dtype=np.float64))[:3]
    return NotPositiveDefiniteError(
        f"the Hessian {where} is not positive definite: smallest eigenvalues {np.array2string(ev, precision=6)}; "
        "at a saddle point or a degenerate (singular) minimum the perturbative Laplace expansion does "
        "not exist (look for a non-degenerate minimum, or treat the flat directions exactly)"
    )


# ------------------------------------------------------------------------- exact engine
class _ExactEngine:
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
                    values[key] = _tidy(self.derivative(key).subs(subs))
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
                out[idx] = _tidy(v)
            return out if value.ndim else out[()]
        return _tidy(value)

    def collect(self, values, shape):
        total = np.full(shape, sympy.Integer(0), dtype=object)
        for v in values:
            total = total + v
        total = self.tidy(total)
        if len(shape) == 1:
            return sympy.ImmutableMatrix(list(total))
        return sympy.ImmutableMatrix(total.tolist())


def dress(tensor, self_loops: int, G, einsum):
    """``Λ_{k,s}``: close ``s`` self-loops of a symmetric rank-k tensor with ``G``."""
    if self_loops == 0:
        return tensor
    k = tensor.ndim
    letters = ascii_letters[:k]
    terms = [letters] + [letters[2 * j : 2 * j + 2] for j in range(self_loops)]
    return einsum(",".join(terms) + "->" + letters[2 * self_loops :], tensor, *([G] * self_loops))


def _tidy(expr):
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


# --------------------------------------------------------------------------- front door
#: Highest exact ``order`` per number of variables (measured on a 2-core CPU with symbolic
#: couplings: each limit takes at most about 25 s, one order more from a minute to hours).
#: 5 to 12 variables allow order 1, more only order 0.
MAX_EXACT_ORDER = {1: 4, 2: 2, 3: 2, 4: 2}


def _check_reach(order: int, d: int) -> None:
    limit = MAX_EXACT_ORDER.get(d, 1 if d <= 12 else 0)
    if order > limit or d > 64:
        raise OutOfReachError(
            f"the exact Laplace expansion to order {order} in {d} variable{'s' if d > 1 else ''} is out of reach "
            f"(limit: order {limit} for {d} variable{'s' if d > 1 else ''}, at most 64 variables; one order more "
            "takes minutes to hours). Lower `order` (CLI --order), or use pft.numeric.laplace for numbers."
        )


def laplace_expansion(action, variables, *, order: int, point=None) -> LaplaceExpansion:
    """Laplace expansion of ``log ∫ exp(-n S(x)) dx`` to ``order`` in ``1/n``, exactly.

    Parameters
    ----------
    action : sympy.Expr
        ``S(x)``; symbols other than ``variables`` are parameters and stay symbolic.
    variables : sympy.Symbol, str, or sequence of them
        The integration variables ``x_1 … x_d``.
    order : int
        Number of corrections ``c_1 … c_order`` (vertex degrees up to ``2·order + 2``).
    point : mapping, sequence or scalar, optional
        The minimum ``x*`` (checked: ``∇S(x*) = 0``). Without it ``∇S = 0`` is solved and the
        critical point whose Hessian is provably positive definite (the lowest, if several)
        is used.

    Returns
    -------
    LaplaceExpansion
        ``.coefficients``, ``.terms`` (per diagram), ``.log_partition(n)``, ``.mean(order)``,
        ``.covariance(order)``.

    Raises
    ------
    pft.errors.NotPositiveDefiniteError
        If the Hessian at the point is not positive definite (saddle, maximum, or a degenerate
        minimum such as ``S = x⁴``): the expansion does not exist there.
    pft.errors.OutOfReachError
        At once, before any work, beyond :data:`MAX_EXACT_ORDER`: order 4 in one variable, 2 in
        two to four, 1 in five to twelve, 0 beyond (each limit takes at most about 25 s on a
        2-core CPU with symbolic couplings; order 5 in one variable takes minutes).

    Notes
    -----
    ``c_k = Σ_Γ (-1)^V / |Aut Γ| · contraction(Γ)`` over connected vacuum diagrams with
    ``L = k + 1`` loops, vertices ``λ_j = ∂ʲS(x*)``, edges ``G = H⁻¹``. With ``H = 1`` in one
    dimension, ``c_1 = 5λ₃²/24 - λ₄/8``.

    References
    ----------
    .. [1] J. Zinn-Justin, *Quantum Field Theory and Critical Phenomena*, ch. 1-2.

    Examples
    --------
    Stirling's series: ``∫₀^∞ exp(-n(x - log x)) dx = Γ(n+1)/n^(n+1)``.

    >>> import sympy
    >>> x = sympy.Symbol("x", positive=True)
    >>> e = laplace_expansion(x - sympy.log(x), x, order=3)
    >>> e.coefficients
    (1/12, 0, -1/360)

    Under ``exp(-n S)/Z`` here ``x ~ Gamma(n+1, rate n)``: ``<x> = 1 + 1/n``, ``Var x = 1/n + 1/n²``.

    >>> [m[0] for m in e.mean(2).corrections], [c[0] for c in e.covariance(2).corrections]
    ([1, 0], [1, 1])
    """
    if isinstance(order, bool) or not isinstance(order, Integral) or order < 0:
        raise InputError(f"`order` must be a non-negative integer, got {order!r}")
    order = int(order)
    action = _check_action(action)
    xs = _check_variables(variables, action)
    _check_reach(order, len(xs))
    x_star = _resolve_point(action, xs, point)
    subs = dict(zip(xs, x_star))
    d = len(xs)
    hess = sympy.ImmutableMatrix(d, d, lambda i, j: _tidy(sympy.diff(action, xs[i], xs[j]).subs(subs)))
    _check_positive_definite(hess, x_star)
    G = sympy.ImmutableMatrix(hess.inv().applyfunc(_tidy))
    engine = _ExactEngine(action, xs, x_star, G)
    terms = {k: build_terms(engine, 0, k) for k in range(1, order + 1)}
    coefficients = tuple(_tidy(sum((t.value for t in terms[k]), sympy.Integer(0))) for k in terms)
    vertices = {k: sympy.ImmutableDenseNDimArray(engine.full(k).tolist()) for k in range(3, 2 * order + 3)}
    return LaplaceExpansion(
        variables=tuple(str(v) for v in xs),
        order=order,
        point=sympy.ImmutableMatrix(list(x_star)),
        action_value=_tidy(action.subs(subs)),
        hessian=hess,
        propagator=G,
        log_det_hessian=_tidy(sympy.log(hess.det())),
        vertices=vertices,
        coefficients=coefficients,
        terms=terms,
        exact=True,
        _engine=engine,
    )


def _check_action(action) -> sympy.Expr:
    if isinstance(action, str):
        raise InputError(
            "`action` must be a sympy expression, got a str; parse it with pft.symbolic.parse_expression first"
        )
    if isinstance(action, (Number,)):
        action = sympy.sympify(action)
    if not isinstance(action, sympy.Expr):
        raise InputError(f"`action` must be a sympy expression, got {type(action).__name__}")
    return action


def _check_variables(variables, action) -> tuple[sympy.Symbol, ...]:
    if isinstance(variables, (sympy.Symbol, str)):
        variables = [variables]
    if not isinstance(variables, Sequence) or len(variables) == 0:
        raise InputError(f"`variables` must be a symbol or a non-empty sequence of symbols, got {variables!r}")
    by_name = {s.name: s for s in action.free_symbols if isinstance(s, sympy.Symbol)}
    out = []
    for v in variables:
        if isinstance(v, str):
            if v not in by_name:
                raise InputError(f"`variables` names {v!r}, which does not occur in the action (free symbols: {sorted(by_name)})")
            v = by_name[v]
        if not isinstance(v, sympy.Symbol):
            raise InputError(f"`variables` must hold sympy Symbols or names, got {v!r}")
        out.append(v)
    if len(set(out)) != len(out):
        raise InputError(f"`variables` repeats a symbol: {out}")
    return tuple(out)


def _resolve_point(action, xs, point) -> tuple:
    grad = [sympy.diff(action, v) for v in xs]
    if point is None:
        return _solve_minimum(action, xs, grad)
    if isinstance(point, Mapping):
        lookup = {(k.name if isinstance(k, sympy.Symbol) else str(k)): v for k, v in point.items()}
        missing = [v.name for v in xs if v.name not in lookup]
        if missing:
            raise InputError(f"`point` gives no value for {missing}")
        values = [lookup[v.name] for v in xs]
    elif isinstance(point, (Number, sympy.Basic)) and not isinstance(point, sympy.MatrixBase):
        values = [point]
    else:
        values = list(point)
    if len(values) != len(xs):
        raise InputError(f"`point` has {len(values)} coordinates but there are {len(xs)} variables")
    x_star = tuple(sympy.sympify(v) for v in values)
    subs = dict(zip(xs, x_star))
    residual = [_tidy(g.subs(subs)) for g in grad]
    for r in residual:
        if r == 0:
            continue
        if r.is_number and abs(complex(r)) < 1e-12 and any(isinstance(v, sympy.Float) for v in x_star):
            continue
        raise InputError(f"`point` {list(x_star)} is not a critical point: the gradient there is {residual}")
    return x_star


def _solve_minimum(action, xs, grad) -> tuple:
    try:
        solutions = sympy.solve(grad, xs, dict=True)
    except NotImplementedError:
        solutions = []
    candidates = []
    for sol in solutions:
        if any(v not in sol for v in xs):
            continue
        x_star = tuple(sympy.sympify(sol[v]) for v in xs)
        if any(c.is_real is False for c in x_star):
            continue
        subs = dict(zip(xs, x_star))
        hess = sympy.Matrix(len(xs), len(xs), lambda i, j: _tidy(sympy.diff(action, xs[i], xs[j]).subs(subs)))
        candidates.append((x_star, hess, _positive_definite(hess)))
    proven = [c for c in candidates if c[2] is True]
    if len(proven) == 1:
        return proven[0][0]
    if len(proven) > 1:
        values = [action.subs(dict(zip(xs, c[0]))) for c in proven]
        if all(v.is_number for v in values):
            return proven[int(np.argmin([float(v) for v in values]))][0]
        raise InputError(
            f"∇S = 0 has several minima {[list(c[0]) for c in proven]}; choose one with `point=`"
        )
    undecided = [c for c in candidates if c[2] is None]
    if len(undecided) == 1 and len(candidates) == 1:
        return undecided[0][0]
    if candidates and not undecided:
        x_star, hess, _ = candidates[0]
        raise not_positive_definite(_eigenvalues(hess), f"at every critical point found (e.g. x* = {list(x_star)})")
    raise InputError(
        f"could not find a unique minimum by solving ∇S = 0 (critical points found: "
        f"{[list(c[0]) for c in candidates]}); give it with `point=`"
    )


def _positive_definite(hess) -> bool | None:
    """Sylvester's criterion, exact: True, False, or None when undecidable (symbols)."""
    hess = sympy.Matrix(hess)
    status = True
    for m in range(1, hess.rows + 1):
        minor = _tidy(hess[:m, :m].det())
        if minor.is_positive is True:
            continue
        if minor.is_positive is False:
            return False
        status = None
    return status


def _eigenvalues(hess) -> np.ndarray:
    try:
        return np.linalg.eigvalsh(np.array(hess.tolist(), dtype=np.float64))
    except TypeError:
        return np.array([np.nan])


def _check_positive_definite(hess, x_star) -> None:
    if _positive_definite(hess) is False:
        raise not_positive_definite(_eigenvalues(hess), f"at x* = {list(x_star)}")
