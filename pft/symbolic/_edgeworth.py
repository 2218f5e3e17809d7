"""Edgeworth expansion of a nearly Gaussian density, and the Cornish–Fisher quantile series.

For a standardized variable (``κ₁ = 0``, ``κ₂ = 1``) with higher cumulants ``κ_r``, the
characteristic function is ``exp(-t²/2 + Σ_{r≥3} κ_r (it)^r / r!)``; expanding the exponential
and inverting term by term gives

    f(x) = φ(x) [1 + Σ_{multisets {r_i}} (∏ κ_{r_i} / r_i!) / (∏_r m_r!) He_{Σ r_i}(x)]

with probabilists' Hermite polynomials ``He`` and ``m_r`` the multiplicity of ``r``. For a
standardized sum of n iid terms ``κ_r ∝ n^(1-r/2)``, so a product is of size ``n^(-k/2)`` with
``k = Σ (r_i - 2)``; "order k" keeps all products with ``Σ (r_i - 2) ≤ k``. In d dimensions,
in whitened coordinates, ``κ_r`` are symmetric tensors and ``He`` the tensor Hermite
polynomials ``He_{i1…iR}(x) = (-1)^R φ(x)⁻¹ ∂_{i1}⋯∂_{iR} φ(x)``; because ``φ`` factorises,
``He_{i1…iR}(x) = ∏_j He_{m_j}(x_j)`` with ``m_j`` the number of times ``j`` occurs.

References
----------
.. [1] P. McCullagh, *Tensor Methods in Statistics* (1987), ch. 5.
.. [2] S. Blinnikov and R. Moessner, "Expansions for nearly Gaussian distributions",
   Astron. Astrophys. Suppl. Ser. 130, 193 (1998).
.. [3] E. A. Cornish and R. A. Fisher, "Moments and cumulants in the specification of
   distributions", Rev. Inst. Int. Stat. 5, 307 (1938).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from itertools import product
from math import factorial, prod
import sympy

from pft._results import JsonResult
from pft._text import table
from pft._validate import check_int
from pft.errors import OutOfReachError

__all__ = ["edgeworth", "EdgeworthExpansion", "EdgeworthTerm", "edgeworth_terms", "multiplicities"]

_MAX_SYMBOLIC_COMBOS = 200_000

#: Highest symbolic ``order`` per dimension (measured on a 2-core CPU: each limit takes at most
#: about 20 s, one order more takes from half a minute to many minutes). Dimensions 5 to 16
#: allow order 1, higher ones order 0 only.
MAX_SYMBOLIC_ORDER = {1: 4, 2: 4, 3: 3, 4: 2}


def _max_order(dim: int) -> int:
    return MAX_SYMBOLIC_ORDER.get(dim, 1 if dim <= 16 else 0)


@dataclass(frozen=True)
class EdgeworthTerm:
    """One product of cumulants in the Edgeworth series.

    Attributes
    ----------
    order : int
        ``k = Σ (r_i - 2)``: the term is of size ``n^(-k/2)`` for a standardized sum.
    coefficient : fractions.Fraction
        ``∏ 1/r_i! / ∏_r m_r!``.
    ranks : tuple of int
        The cumulant orders ``r_i`` (sorted); the Hermite polynomial has degree ``Σ r_i``.
    """

    order: int
    coefficient: Fraction
    ranks: tuple[int, ...]

    @property
    def degree(self) -> int:
        """Degree ``Σ r_i`` of the Hermite polynomial the term multiplies."""
        return sum(self.ranks)


def edgeworth_terms(order: int) -> tuple[EdgeworthTerm, ...]:
    """The terms of the Edgeworth series up to ``order``, by order then ranks.

    Examples
    --------
    >>> [(t.coefficient, t.ranks) for t in edgeworth_terms(2)]
    [(Fraction(1, 6), (3,)), (Fraction(1, 24), (4,)), (Fraction(1, 72), (3, 3))]
    """
    return _terms(check_int(order, "order", minimum=0))


@lru_cache(maxsize=None)
def _terms(order: int) -> tuple[EdgeworthTerm, ...]:
    out = []
    for k in range(1, order + 1):
        for parts in _partitions(k, k):
            ranks = tuple(sorted(p + 2 for p in parts))
            coef = Fraction(1, prod(factorial(r) for r in ranks))
            coef /= prod(factorial(m) for m in Counter(ranks).values())
            out.append(EdgeworthTerm(k, coef, ranks))
    out.sort(key=lambda t: (t.order, len(t.ranks), t.ranks))
    return tuple(out)


def _partitions(n: int, largest: int):
    """Integer partitions of n into parts <= largest, parts non-increasing."""
    if n == 0:
        yield ()
        return
    for part in range(min(n, largest), 0, -1):
        for rest in _partitions(n - part, part):
            yield (part, *rest)


def multiplicities(r: int, d: int):
    """Multiplicity vectors ``(m_0, …, m_{d-1})`` with ``Σ m_j = r``: one per distinct sorted
    index tuple of a symmetric rank-r tensor in d dimensions, with ``multinomial(m)`` index
    tuples each.

    Examples
    --------
    >>> list(multiplicities(2, 2))
    [(2, 0), (1, 1), (0, 2)]
    """
    if d == 1:
        yield (r,)
        return
    for first in range(r, -1, -1):
        for rest in multiplicities(r - first, d - 1):
            yield (first, *rest)


def multinomial(m) -> int:
    """``(Σ m)! / ∏ m_j!``: the number of index tuples with multiplicity vector ``m``."""
    return factorial(sum(m)) // prod(factorial(x) for x in m)


def index_of(m) -> tuple[int, ...]:
    """The sorted index tuple with multiplicity vector ``m``."""
    return tuple(j for j, c in enumerate(m) for _ in range(c))


def hermite(k: int, x):
    """Probabilists' Hermite polynomial ``He_k(x)`` by ``He_{k+1} = x He_k - k He_{k-1}``
    (works for sympy expressions and numpy arrays alike)."""
    prev, cur = 1 + 0 * x, x
    if k == 0:
        return prev
    for j in range(1, k):
        prev, cur = cur, x * cur - j * prev
    return cur


@dataclass(frozen=True)
class EdgeworthExpansion(JsonResult):
    """Symbolic Edgeworth density of a standardized (whitened) variable.

    Attributes
    ----------
    order : int
        Highest order k kept (terms of size ``n^(-k/2)``).
    dim : int
        Dimension d.
    variables : tuple of sympy.Symbol
        ``(x,)`` in one dimension, ``(x_0, …, x_{d-1})`` otherwise.
    cumulants : dict
        Cumulant symbols: ``{r: kappa_r}`` in one dimension; ``{(i1, …, ir): kappa_i1_…_ir}``
        keyed by sorted index tuples otherwise (the tensors are symmetric).
    terms : tuple of EdgeworthTerm
        The cumulant products kept, with their exact coefficients.
    corrections : tuple of sympy.Expr
        ``P_1 … P_order``: ``density = φ(x) (1 + P_1 + … + P_order)``, ``P_k`` of size
        ``n^(-k/2)``.
    density : sympy.Expr
        The expanded density.
    quantile : sympy.Expr or None
        Cornish–Fisher: the standardized quantile ``w(z)`` in terms of the normal quantile
        ``z`` (symbol ``z``), to the same order; ``None`` when ``dim > 1``.
    """

    _json_options = {"indent": 2}

    order: int
    dim: int
    variables: tuple
    cumulants: dict = field(repr=False)
    terms: tuple = field(repr=False)
    corrections: tuple = field(repr=False)
    density: sympy.Expr = field(repr=False)
    quantile: sympy.Expr | None = field(repr=False)

    def to_dict(self) -> dict:
        """Plain-data form: expressions as strings (``sympy.srepr``-free, readable)."""
        return {
            "order": self.order,
            "dim": self.dim,
            "variables": [str(v) for v in self.variables],
            "terms": [
                {"order": t.order, "coefficient": str(t.coefficient), "ranks": list(t.ranks)} for t in self.terms
            ],
            "corrections": [str(c) for c in self.corrections],
            "density": str(self.density),
            "quantile": None if self.quantile is None else str(self.quantile),
        }

    @classmethod
    def from_dict(cls, data) -> "EdgeworthExpansion":
        """Inverse of :meth:`to_dict`: the expressions are re-read by the whitelist parser (nothing
        is evaluated) with the same real symbols :func:`edgeworth` uses.

        Examples
        --------
        >>> e = edgeworth(2)
        >>> back = EdgeworthExpansion.from_json(e.to_json())
        >>> back.to_dict() == e.to_dict(), back.density == e.density
        (True, True)
        """
        from pft.symbolic._parse import read_expression

        order, dim = int(data["order"]), int(data["dim"])
        variables, kappa = _symbols(order, dim)
        names = {str(s): s for s in (*variables, *kappa.values(), sympy.Symbol("z", real=True))}
        read = lambda text: read_expression(text, symbols=names)  # noqa: E731
        terms = tuple(
            EdgeworthTerm(int(t["order"]), Fraction(t["coefficient"]), tuple(int(r) for r in t["ranks"]))
            for t in data["terms"]
        )
        quantile = None if data["quantile"] is None else read(data["quantile"])
        corrections = tuple(read(c) for c in data["corrections"])
        return cls(order, dim, variables, kappa, terms, corrections, read(data["density"]), quantile)

    def __str__(self) -> str:
        rows = [("order", "coefficient", "cumulants", "Hermite degree")]
        for t in self.terms:
            rows.append((str(t.order), str(t.coefficient), " ".join(f"κ{r}" for r in t.ranks), str(t.degree)))
        lines = [f"Edgeworth expansion, dim={self.dim}, order={self.order}: f = φ(x) (1 + Σ terms)",
                 table(rows[0], rows[1:])]
        if self.dim == 1:
            for k, c in enumerate(self.corrections, start=1):
                lines.append(f"P{k}(x) = {c}")
        return "\n".join(lines)


def edgeworth(order: int, *, dim: int = 1) -> EdgeworthExpansion:
    """Symbolic Edgeworth expansion to ``order``: standard normal times Hermite polynomials in
    the standardized cumulants.

    Parameters
    ----------
    order : int
        Keep the cumulant products of size up to ``n^(-order/2)`` (``order >= 0``).
    dim : int, default 1
        Dimension. For ``dim > 1`` the variable is whitened (identity covariance) and the
        cumulants are symmetric tensors (tensor Hermite polynomials); meant for small d.

    Returns
    -------
    EdgeworthExpansion

    Raises
    ------
    pft.errors.OutOfReachError
        At once, beyond :data:`MAX_SYMBOLIC_ORDER`: order 4 in 1 and 2 dimensions, 3 in 3, 2 in
        4, 1 up to 16, 0 up to 64 (each limit takes at most about 20 s on a 2-core CPU).

    Notes
    -----
    ``f(x) = φ(x) [1 + Σ_k Σ_{Σ(r_i-2)=k} (∏ κ_{r_i}/r_i!)/(∏ m_r!) He_{Σ r_i}(x)]``; in d
    dimensions the products are contracted with ``He_{i1…iR}(x) = ∏_j He_{m_j}(x_j)``.
    Cornish–Fisher inverts ``F(w) = Φ(z)`` order by order in the same bookkeeping.

    Examples
    --------
    >>> e = edgeworth(2)
    >>> e.corrections[0]
    kappa_3*(x**3 - 3*x)/6
    >>> e.quantile
    -kappa_3**2*z*(2*z**2 - 5)/36 + kappa_3*(z - 1)*(z + 1)/6 + kappa_4*z*(z**2 - 3)/24 + z
    """
    order = check_int(order, "order", minimum=0)
    dim = check_int(dim, "dim", minimum=1)
    if order > _max_order(dim) or dim > 64:
        raise OutOfReachError(
            f"the symbolic Edgeworth series at order {order}, dim {dim} is out of reach (limit: order "
            f"{_max_order(dim)} in {dim} dimension{'s' if dim > 1 else ''}, dim at most 64; one order more takes "
            "minutes). Lower `order` (CLI --order) or `dim` (--dim), or evaluate numbers with "
            "pft.numeric.edgeworth_pdf (CLI: --cumulants)."
        )
    terms = _terms(order)
    variables, kappa = _symbols(order, dim)
    if dim == 1:
        (x,) = variables
        corrections = []
        for k in range(1, order + 1):
            expr = sympy.Integer(0)
            for t in terms:
                if t.order == k:
                    coef = sympy.Rational(t.coefficient.numerator, t.coefficient.denominator)
                    expr += coef * prod(kappa[r] for r in t.ranks) * sympy.expand(hermite(t.degree, x))
            corrections.append(expr)
        phi = sympy.exp(-(x**2) / 2) / sympy.sqrt(2 * sympy.pi)
        quantile = _cornish_fisher(order)
    else:
        combos = sum(prod(_count(r, dim) for r in t.ranks) for t in terms)
        if combos > _MAX_SYMBOLIC_COMBOS:
            raise OutOfReachError(
                f"the symbolic Edgeworth series at order {order}, dim {dim} has {combos} tensor "
                f"terms (limit {_MAX_SYMBOLIC_COMBOS}); use pft.numeric.edgeworth_pdf for numbers"
            )
        herm = {}
        corrections = []
        for k in range(1, order + 1):
            expr = sympy.Integer(0)
            for t in terms:
                if t.order != k:
                    continue
                coef = sympy.Rational(t.coefficient.numerator, t.coefficient.denominator)
                for ms in product(*(list(multiplicities(r, dim)) for r in t.ranks)):
                    total = tuple(map(sum, zip(*ms)))
                    weight = prod(multinomial(m) for m in ms)
                    if total not in herm:
                        herm[total] = sympy.expand(prod(hermite(c, v) for c, v in zip(total, variables)))
                    expr += coef * weight * prod(kappa[index_of(m)] for m in ms) * herm[total]
            corrections.append(expr)
        phi = sympy.exp(-sum(v**2 for v in variables) / 2) / (2 * sympy.pi) ** sympy.Rational(dim, 2)
        quantile = None
    density = phi * (1 + sum(corrections))
    return EdgeworthExpansion(order, dim, variables, kappa, terms, tuple(corrections), density, quantile)


def _symbols(order: int, dim: int) -> tuple[tuple, dict]:
    """The variables and the cumulant symbols of an expansion (all real): ``x`` and
    ``{r: kappa_r}`` in one dimension, ``x_j`` and ``{(i1, …, ir): kappa_i1_…_ir}`` otherwise."""
    if dim == 1:
        return (sympy.Symbol("x", real=True),), {r: sympy.Symbol(f"kappa_{r}", real=True) for r in range(3, order + 3)}
    variables = tuple(sympy.Symbol(f"x_{j}", real=True) for j in range(dim))
    kappa = {}
    for r in range(3, order + 3):
        for m in multiplicities(r, dim):
            idx = index_of(m)
            kappa[idx] = sympy.Symbol("kappa_" + "_".join(map(str, idx)), real=True)
    return variables, kappa


def _count(r: int, d: int) -> int:
    return factorial(r + d - 1) // (factorial(r) * factorial(d - 1))


@lru_cache(maxsize=None)
def _cornish_fisher(order: int) -> sympy.Expr:
    """Solve ``F(z + δ) = Φ(z)`` for ``δ = Σ_k ε^k a_k(z)`` order by order in ε.

    With ``κ_r → ε^(r-2) κ_r`` and ``d^j/dz^j [φ He_m] = (-1)^j φ He_{m+j}``:
    ``(F(z+δ) - Φ(z))/φ(z) = Σ_{j≥1} (-1)^(j-1) He_{j-1} δ^j/j!
    - Σ_terms c ∏κ ε^k Σ_{j≥0} (-1)^j He_{R-1+j} δ^j/j!``, a polynomial in z, δ and ε.
    """
    z, eps = sympy.Symbol("z", real=True), sympy.Symbol("epsilon")
    kappa = {r: sympy.Symbol(f"kappa_{r}", real=True) for r in range(3, order + 3)}
    a = [sympy.Integer(0)] * (order + 1)
    for k in range(1, order + 1):
        # δ up to order k with the unknown a_k: its coefficient in ε^k is +a_k (from j = 1).
        ak = sympy.Symbol("a_k")
        delta = sum(a[j] * eps**j for j in range(1, k)) + ak * eps**k
        expr = sympy.Integer(0)
        for j in range(1, k + 1):
            expr += (-1) ** (j - 1) * hermite(j - 1, z) * delta**j / factorial(j)
        for t in _terms(order):
            if t.order > k:
                continue
            c = sympy.Rational(t.coefficient.numerator, t.coefficient.denominator)
            kp = c * prod(kappa[r] for r in t.ranks) * eps**t.order
            for j in range(0, k - t.order + 1):
                expr -= kp * (-1) ** j * hermite(t.degree - 1 + j, z) * delta**j / factorial(j)
        coeff = sympy.expand(expr).coeff(eps, k)
        a[k] = sympy.factor_terms(sympy.expand(sympy.solve(coeff, ak)[0]))
    return _collect_by_kappa(z + sum(a[1:]), kappa, z)


def _collect_by_kappa(expr: sympy.Expr, kappa: dict, z: sympy.Symbol) -> sympy.Expr:
    """Group a polynomial by its cumulant monomials, each multiplying a factored poly in z."""
    poly = sympy.Poly(sympy.expand(expr), *kappa.values())
    out = sympy.Integer(0)
    for monom, coeff in poly.terms():
        mono = prod(s**e for s, e in zip(kappa.values(), monom))
        out += mono * sympy.factor(coeff)
    return out
