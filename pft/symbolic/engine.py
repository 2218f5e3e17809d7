"""The engine protocol: how a backend evaluates the symbolic layer's diagrams and series.

Package-internal API (no underscore: other pft subpackages may import it; users need not).
The symbolic layer decides *what* to compute — which diagrams enter a ``1/n`` coefficient and
with which exact coefficient, which cumulant products enter an Edgeworth term — and a backend
(an *engine*) decides *how* to get the numbers. Two engines exist: the exact one behind
:func:`pft.symbolic.laplace_expansion` (numpy object arrays of sympy expressions) and the
floating-point one behind :func:`pft.numeric.laplace` (torch autodiff and einsum). Both fill the
same :class:`pft.symbolic.LaplaceExpansion`, so a result reads the same whichever built it.

Laplace expansions
------------------
:func:`diagrams_of_order` lists the connected diagrams of a given order with their
:class:`~pft.symbolic.ContractionPlan`; :func:`build_terms` evaluates them on an engine. An
engine is any object with (see :class:`Engine`):

``dim``
    The number of variables ``d``.
``operand(op)``
    The array for an :class:`~pft.symbolic.Operand`: ``G = H⁻¹`` for the propagator,
    ``Λ_{k,s}`` (``λ_k = ∂ᵏS(x*)`` with ``s`` self-loops closed by ``G``, rank ``k − 2s``) for
    a vertex. :func:`dress` closes the loops of a full tensor when an engine has ``λ_k`` whole.
``contract(plan)``
    ``plan.evaluate(self.operand)``, optionally with the engine's own einsum
    (``plan.evaluate(self.operand, einsum=...)``; the coefficient is then applied as a float).
``tidy(value)``
    The engine's canonical form of one diagram's value (simplified sympy; a float or a numpy
    array).
``collect(values, shape)``
    The sum of diagram values as a vector ``(d,)`` or matrix ``(d, d)`` in the result's type
    (``sympy.ImmutableMatrix`` or ``numpy.ndarray``); ``collect([], shape)`` is zero.

A backend then builds ``LaplaceExpansion(..., exact=..., engine=engine)``: with the engine
attached, ``.mean(order)`` and ``.covariance(order)`` call :func:`build_terms` with one and two
external legs. A Hessian that is not positive definite is refused with
:func:`not_positive_definite` (one message for every engine).

Edgeworth series
----------------
:func:`edgeworth_terms` lists the cumulant products ``∏ κ_{r_i}`` of each order with their
exact coefficients; a backend contracts them with tensor Hermite polynomials
(:func:`hermite`, and for a symmetric tensor the sorted index tuples :func:`multiplicities`,
their counts :func:`multinomial` and :func:`index_of`), as :func:`pft.numeric.edgeworth_pdf`
does on arrays.

Examples
--------
A minimal floating-point engine for a one-dimensional action with ``H = 1`` and only
``λ_3 = a``, ``λ_4 = b`` non-zero reproduces ``c_1 = 5a²/24 − b/8``:

>>> import numpy as np
>>> class Tiny:
...     dim = 1
...     def operand(self, op):
...         if op.kind == "propagator":
...             return np.eye(1)
...         full = {3: np.full((1, 1, 1), 0.5), 4: np.full((1, 1, 1, 1), 2.0)}.get(op.valence)
...         if full is None:
...             return np.zeros((1,) * op.rank)
...         return dress(full, op.self_loops, np.eye(1), np.einsum)
...     def contract(self, plan):
...         return plan.evaluate(self.operand, einsum=np.einsum)
...     def tidy(self, value):
...         return float(value)
...     def collect(self, values, shape):
...         return sum(values, np.zeros(shape))
>>> round(sum(t.value for t in build_terms(Tiny(), 0, 1)), 12) == round(5 * 0.25 / 24 - 2.0 / 8, 12)
True
"""

from __future__ import annotations

from functools import lru_cache
from string import ascii_letters
from typing import Any, Protocol, runtime_checkable

import numpy as np

from pft.errors import NotPositiveDefiniteError
from pft.symbolic._edgeworth import EdgeworthTerm, edgeworth_terms, hermite, index_of, multinomial, multiplicities
from pft.symbolic._enumerate import correlator_diagrams, vacuum_diagrams
from pft.symbolic._plan import ContractionPlan, Operand, contraction_plan
from pft.symbolic._terms import DiagramTerm

__all__ = [
    "Engine",
    "diagrams_of_order",
    "build_terms",
    "dress",
    "not_positive_definite",
    "ContractionPlan",
    "Operand",
    "DiagramTerm",
    "EdgeworthTerm",
    "edgeworth_terms",
    "hermite",
    "index_of",
    "multinomial",
    "multiplicities",
]


@runtime_checkable
class Engine(Protocol):
    """What :func:`build_terms` and :class:`pft.symbolic.LaplaceExpansion` need of a backend."""

    dim: int

    def operand(self, op: Operand) -> Any:
        """The array of one operand role (``G`` or a dressed vertex ``Λ_{k,s}``)."""

    def contract(self, plan: ContractionPlan) -> Any:
        """``coefficient · einsum(plan)`` on this engine's arrays."""

    def tidy(self, value: Any) -> Any:
        """The canonical form of one diagram's value."""

    def collect(self, values: list, shape: tuple) -> Any:
        """The sum of ``values`` as a vector or matrix of ``shape`` in the result's type."""


@lru_cache(maxsize=None)
def diagrams_of_order(n_external: int, k: int) -> tuple:
    """The connected diagrams with ``n_external`` legs whose value scales as ``n^-k``.

    Vacuum (``n_external = 0``): ``L = k + 1`` loops, vertex degrees ``3 … 2k + 2``; mean
    (1 leg): ``L = k``, degrees up to ``2k + 1``; covariance (2 legs): ``L = k - 1``, degrees up
    to ``2k``. (A connected diagram with V vertices, E edges, k legs and L internal loops has
    ``Σ_v (deg_v - 2) = 2L + n_external - 2``.)

    Returns
    -------
    tuple of (Diagram, ContractionPlan)

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


def build_terms(engine: Engine, n_external: int, k: int) -> tuple[DiagramTerm, ...]:
    """Evaluate every diagram of order ``n^-k`` with ``n_external`` legs on ``engine``."""
    return tuple(DiagramTerm(d, plan, engine.tidy(engine.contract(plan))) for d, plan in diagrams_of_order(n_external, k))


def dress(tensor, self_loops: int, G, einsum):
    """``Λ_{k,s}``: close ``s`` self-loops of a symmetric rank-k tensor with ``G`` (indices
    ``2j, 2j+1`` for ``j < s``) using ``einsum`` (numpy's signature)."""
    if self_loops == 0:
        return tensor
    k = tensor.ndim
    letters = ascii_letters[:k]
    terms = [letters] + [letters[2 * j : 2 * j + 2] for j in range(self_loops)]
    return einsum(",".join(terms) + "->" + letters[2 * self_loops :], tensor, *([G] * self_loops))


def not_positive_definite(eigenvalues, where: str) -> NotPositiveDefiniteError:
    """The error for a Hessian that is not positive definite, naming its smallest eigenvalues."""
    ev = np.sort(np.asarray(eigenvalues, dtype=np.float64))[:3]
    return NotPositiveDefiniteError(
        f"the Hessian {where} is not positive definite: smallest eigenvalues {np.array2string(ev, precision=6)}; "
        "at a saddle point or a degenerate (singular) minimum the perturbative Laplace expansion does "
        "not exist (look for a non-degenerate minimum, or treat the flat directions exactly)"
    )
