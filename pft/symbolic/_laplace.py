"""Exact Laplace expansion of ``log ∫ exp(-n S(x)) dx`` in powers of ``1/n``: the front door.

``log Z(n) = -n S* + (d/2) log(2π/n) - ½ log det H + Σ_k c_k n^(-k)``; ``c_k`` is the sum over
connected vacuum diagrams with ``L = k + 1`` loops (vertex ``-λ_j``, edge ``G = H⁻¹``, value
over ``|Aut|``). The moments of ``x`` under ``exp(-n S)/Z`` are the connected diagrams with one
(mean) or two (covariance) external legs: a connected k-point diagram with ``L`` loops scales as
``n^-(L + k - 1)``. Every diagram's value comes from its :class:`ContractionPlan`.

This module checks the input, finds the minimum and hands the rest to the shared machinery:
the diagrams and the engine protocol in :mod:`pft.symbolic.engine`, the exact engine in
``_exact_engine``, the result classes in ``_laplace_results``. :func:`pft.numeric.laplace`
plugs a floating-point engine into the same machinery and builds the same
:class:`LaplaceExpansion`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from numbers import Number

import numpy as np
import sympy

from pft._validate import check_int
from pft.errors import InputError, OutOfReachError
from pft.symbolic._exact_engine import ExactEngine, tidy
from pft.symbolic._laplace_results import CorrelatorExpansion, LaplaceExpansion
from pft.symbolic._terms import DiagramTerm
from pft.symbolic.engine import build_terms, not_positive_definite

__all__ = [
    "laplace_expansion",
    "LaplaceExpansion",
    "DiagramTerm",
    "CorrelatorExpansion",
    "MAX_EXACT_ORDER",
]


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
    order = check_int(order, "order", minimum=0)
    action = _check_action(action)
    xs = _check_variables(variables, action)
    _check_reach(order, len(xs))
    x_star = _resolve_point(action, xs, point)
    subs = dict(zip(xs, x_star))
    d = len(xs)
    hess = sympy.ImmutableMatrix(d, d, lambda i, j: tidy(sympy.diff(action, xs[i], xs[j]).subs(subs)))
    _check_positive_definite(hess, x_star)
    G = sympy.ImmutableMatrix(hess.inv().applyfunc(tidy))
    engine = ExactEngine(action, xs, x_star, G)
    terms = {k: build_terms(engine, 0, k) for k in range(1, order + 1)}
    coefficients = tuple(tidy(sum((t.value for t in terms[k]), sympy.Integer(0))) for k in terms)
    vertices = {k: sympy.ImmutableDenseNDimArray(engine.full(k).tolist()) for k in range(3, 2 * order + 3)}
    return LaplaceExpansion(
        variables=tuple(str(v) for v in xs),
        order=order,
        point=sympy.ImmutableMatrix(list(x_star)),
        action_value=tidy(action.subs(subs)),
        hessian=hess,
        propagator=G,
        log_det_hessian=tidy(sympy.log(hess.det())),
        vertices=vertices,
        coefficients=coefficients,
        terms=terms,
        exact=True,
        engine=engine,
    )


def _check_action(action) -> sympy.Expr:
    if isinstance(action, str):
        raise InputError(
            "`action` must be a sympy expression; got a str. Parse it with pft.symbolic.parse_expression first."
        )
    if isinstance(action, (Number,)):
        action = sympy.sympify(action)
    if not isinstance(action, sympy.Expr):
        raise InputError(f"`action` must be a sympy expression; got {type(action).__name__}.")
    return action


def _check_variables(variables, action) -> tuple[sympy.Symbol, ...]:
    if isinstance(variables, (sympy.Symbol, str)):
        variables = [variables]
    if not isinstance(variables, Sequence) or len(variables) == 0:
        raise InputError(f"`variables` must be a symbol or a non-empty sequence of symbols; got {variables!r}.")
    by_name = {s.name: s for s in action.free_symbols if isinstance(s, sympy.Symbol)}
    out = []
    for v in variables:
        if isinstance(v, str):
            if v not in by_name:
                raise InputError(
                    f"`variables` must name free symbols of the action ({sorted(by_name)}); got {v!r}."
                )
            v = by_name[v]
        if not isinstance(v, sympy.Symbol):
            raise InputError(f"`variables` must hold sympy Symbols or names; got {v!r}.")
        out.append(v)
    if len(set(out)) != len(out):
        raise InputError(f"`variables` must not repeat a symbol; got {out!r}.")
    return tuple(out)


def _resolve_point(action, xs, point) -> tuple:
    grad = [sympy.diff(action, v) for v in xs]
    if point is None:
        return _solve_minimum(action, xs, grad)
    if isinstance(point, Mapping):
        lookup = {(k.name if isinstance(k, sympy.Symbol) else str(k)): v for k, v in point.items()}
        missing = [v.name for v in xs if v.name not in lookup]
        if missing:
            raise InputError(f"`point` must give a value for every variable; got none for {missing!r}.")
        values = [lookup[v.name] for v in xs]
    elif isinstance(point, (Number, sympy.Basic)) and not isinstance(point, sympy.MatrixBase):
        values = [point]
    else:
        values = list(point)
    if len(values) != len(xs):
        raise InputError(f"`point` must have one coordinate per variable ({len(xs)}); got {len(values)}.")
    x_star = tuple(sympy.sympify(v) for v in values)
    subs = dict(zip(xs, x_star))
    residual = [tidy(g.subs(subs)) for g in grad]
    for r in residual:
        if r == 0:
            continue
        if r.is_number and abs(complex(r)) < 1e-12 and any(isinstance(v, sympy.Float) for v in x_star):
            continue
        raise InputError(
            f"`point` must be a critical point of the action; got {list(x_star)}, where the gradient is {residual}."
        )
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
        hess = sympy.Matrix(len(xs), len(xs), lambda i, j: tidy(sympy.diff(action, xs[i], xs[j]).subs(subs)))
        candidates.append((x_star, hess, _positive_definite(hess)))
    proven = [c for c in candidates if c[2] is True]
    if len(proven) == 1:
        return proven[0][0]
    if len(proven) > 1:
        values = [action.subs(dict(zip(xs, c[0]))) for c in proven]
        if all(v.is_number for v in values):
            return proven[int(np.argmin([float(v) for v in values]))][0]
        raise InputError(
            "`point` must be given when ∇S = 0 has several minima of undecided depth; "
            f"got point=None and minima {[list(c[0]) for c in proven]}. Choose one with `point=`."
        )
    undecided = [c for c in candidates if c[2] is None]
    if len(undecided) == 1 and len(candidates) == 1:
        return undecided[0][0]
    if candidates and not undecided:
        x_star, hess, _ = candidates[0]
        raise not_positive_definite(_eigenvalues(hess), f"at every critical point found (e.g. x* = {list(x_star)})")
    raise InputError(
        "`point` must be given when solving ∇S = 0 finds no unique minimum; "
        f"got point=None and critical points {[list(c[0]) for c in candidates]}. Give it with `point=`."
    )


def _positive_definite(hess) -> bool | None:
    """Sylvester's criterion, exact: True, False, or None when undecidable (symbols)."""
    hess = sympy.Matrix(hess)
    status = True
    for m in range(1, hess.rows + 1):
        minor = tidy(hess[:m, :m].det())
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
