"""Contraction plans: a diagram's value as one einsum over vertex and propagator tensors.

A plan is the single source of truth for a diagram's value. The exact (sympy / Fraction)
evaluation in :func:`pft.symbolic.laplace_expansion` and the floating-point evaluation in
:func:`pft.numeric.laplace` both run the same plan; only the arrays (and the einsum that
executes it) differ.

Operands are of two kinds:

* ``vertex(k, s)``: the degree-k vertex tensor ``λ_k = ∂ᵏS(x*)`` with its ``s`` self-loops
  already closed by the propagator, ``Λ_{k,s} = λ_k[G, …, G, ·]`` (contract indices
  ``2j, 2j+1`` with ``G`` for ``j < s``), a symmetric tensor of rank ``k - 2s``. Closing the
  loops inside the operand keeps large tensors out of the plan: the figure-eight needs the
  scalar ``Λ_{4,2}``, never the ``d⁴`` tensor ``λ_4``.
* ``propagator``: ``G = H⁻¹``, one per edge that is not a self-loop (an edge to an external
  leg carries the leg's output index).

The value is ``coefficient · einsum(equation, *operands) · n^n_power`` with
``coefficient = (-1)^V / |Aut|`` (each vertex is ``-λ_k``) and ``n_power = V - E``.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from string import ascii_letters

import numpy as np
import sympy

from pft._results import JsonResult
from pft.errors import InputError, OutOfReachError

__all__ = ["contraction_plan", "ContractionPlan", "Operand"]


@dataclass(frozen=True, order=True)
class Operand:
    """The role of one einsum operand.

    Attributes
    ----------
    kind : str
        ``"vertex"`` or ``"propagator"``.
    valence : int
        Degree k of the vertex (0 for a propagator).
    self_loops : int
        Self-loops closed inside the vertex operand (0 for a propagator).
    """

    kind: str
    valence: int = 0
    self_loops: int = 0

    @property
    def rank(self) -> int:
        """Number of indices the operand has in the equation."""
        return 2 if self.kind == "propagator" else self.valence - 2 * self.self_loops

    def __str__(self) -> str:
        if self.kind == "propagator":
            return "G"
        loops = {0: "", 1: "∘G"}.get(self.self_loops, f"∘G{str(self.self_loops).translate(_SUPERSCRIPT)}")
        return f"λ{self.valence}{loops}"


_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


PROPAGATOR = Operand("propagator")


@dataclass(frozen=True)
class ContractionPlan(JsonResult):
    """How to compute a diagram's value.

    Attributes
    ----------
    equation : str
        einsum equation, one comma-separated term per operand; output indices (one per
        external leg, in label order) after ``->``.
    operands : tuple of Operand
        Role of each operand, in the order of the equation.
    coefficient : fractions.Fraction
        ``(-1)^V / |Aut|``.
    n_power : int
        The diagram scales as ``n^n_power`` (``V - E``, legs' propagators included).
    n_external : int
        Number of output indices.
    """

    equation: str
    operands: tuple[Operand, ...]
    coefficient: Fraction
    n_power: int
    n_external: int

    @property
    def vertex_roles(self) -> tuple[Operand, ...]:
        """The distinct vertex operands the plan needs, sorted."""
        return tuple(sorted({op for op in self.operands if op.kind == "vertex"}))

    def evaluate(self, lookup, *, einsum=None):
        """``coefficient · einsum(equation, *operands)`` (without the power of n).

        Parameters
        ----------
        lookup : callable
            ``lookup(operand) -> array``: the tensor for each role (``G`` for the propagator).
        einsum : callable, optional
            An einsum with numpy's signature, for floating-point arrays (the coefficient is
            applied as a float). By default ``numpy.einsum(..., optimize=True)`` and the
            coefficient exactly (object arrays of sympy numbers or Fractions stay exact).
        """
        arrays = [lookup(op) for op in self.operands]
        if einsum is not None:  # floating point (numpy, torch): the coefficient as a float
            return einsum(self.equation, *arrays) * float(self.coefficient)
        value = np.einsum(self.equation, *arrays, optimize=len(arrays) > 2)
        return value * _as_scalar(self.coefficient, value)

    def to_dict(self) -> dict:
        return {
            "equation": self.equation,
            "operands": [
                {"kind": op.kind, "valence": op.valence, "self_loops": op.self_loops} for op in self.operands
            ],
            "coefficient": str(self.coefficient),
            "n_power": self.n_power,
            "n_external": self.n_external,
        }

    @classmethod
    def from_dict(cls, data) -> "ContractionPlan":
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> from pft.symbolic import Diagram
        >>> p = contraction_plan(Diagram.from_edges([(0, 1)] * 3))
        >>> ContractionPlan.from_json(p.to_json()) == p
        True
        """
        ops = tuple(Operand(o["kind"], int(o["valence"]), int(o["self_loops"])) for o in data["operands"])
        return cls(data["equation"], ops, Fraction(data["coefficient"]), int(data["n_power"]), int(data["n_external"]))

    def __str__(self) -> str:
        ops = ", ".join(str(op) for op in self.operands)
        return f"{self.coefficient} · einsum('{self.equation}', {ops}) · n^{self.n_power}"


def _as_scalar(coef: Fraction, like):
    """The coefficient in a type that multiplies ``like`` exactly when ``like`` is exact."""
    sample = like if np.ndim(like) == 0 else np.asarray(like).flat[0]
    if isinstance(sample, np.ndarray):
        sample = sample.reshape(-1)[0] if sample.size else 0
    if isinstance(sample, sympy.Basic):
        return sympy.Rational(coef.numerator, coef.denominator)
    if isinstance(sample, (int, Fraction)):
        return coef
    return float(coef)


def contraction_plan(diagram) -> ContractionPlan:
    """The einsum plan of a diagram's value under pft's conventions.

    Parameters
    ----------
    diagram : Diagram
        A vacuum or correlator diagram (:func:`vacuum_diagrams`, :func:`correlator_diagrams`);
        only ``.graph`` and ``.symmetry_factor`` are read.

    Returns
    -------
    ContractionPlan

    Notes
    -----
    Vertex ``v`` of degree ``k`` with ``s`` self-loops becomes the operand ``Λ_{k,s}`` with one
    index per remaining half-edge; every other edge becomes a propagator operand ``G`` joining
    the two half-edge indices (an external leg's index is an output). Value:
    ``(-1)^V / |Aut| · Σ ∏ operands · n^(V - E)``.

    Examples
    --------
    >>> from pft.symbolic import Diagram
    >>> theta = Diagram.from_edges([(0, 1)] * 3)
    >>> p = contraction_plan(theta)
    >>> p.equation, [str(o) for o in p.operands], p.coefficient, p.n_power
    ('ace,bdf,ab,cd,ef->', ['λ3', 'λ3', 'G', 'G', 'G'], Fraction(1, 12), -1)
    >>> contraction_plan(Diagram.from_edges([(0, 0), (0, 0)])).operands
    (Operand(kind='vertex', valence=4, self_loops=2),)
    """
    try:
        graph = diagram.graph
        symmetry = Fraction(diagram.symmetry_factor)
    except AttributeError:
        raise InputError(
            f"`diagram` must be a pft.symbolic.Diagram (with .graph and .symmetry_factor); got {type(diagram).__name__}."
        ) from None
    internal = sorted(v for v, data in graph.nodes(data=True) if not data.get("external", False))
    labels = {v: data["label"] for v, data in graph.nodes(data=True) if data.get("external", False)}
    n_ext = len(labels)
    letters = iter(ascii_letters[n_ext:])
    outputs = ascii_letters[:n_ext]

    def fresh() -> str:
        try:
            return next(letters)
        except StopIteration:
            raise OutOfReachError(
                f"the diagram has more than {len(ascii_letters) - n_ext} index slots; einsum has 52 letters"
            ) from None

    slots: dict[int, list[str]] = {v: [] for v in internal}
    loops: dict[int, int] = {v: 0 for v in internal}
    props: list[str] = []
    n_edges = 0
    for u, v in sorted((min(e[:2]), max(e[:2])) for e in graph.edges(keys=False)):
        n_edges += 1
        if u == v:
            loops[u] += 1
            continue
        ends = []
        for w in (u, v):
            if w in labels:
                ends.append(outputs[labels[w]])
            else:
                letter = fresh()
                slots[w].append(letter)
                ends.append(letter)
        props.append("".join(ends))
    terms, operands = [], []
    for v in internal:
        k = graph.degree(v)
        operands.append(Operand("vertex", k, loops[v]))
        terms.append("".join(slots[v]))
    terms.extend(props)
    operands.extend([PROPAGATOR] * len(props))
    equation = ",".join(terms) + "->" + outputs
    coefficient = symmetry * (-1) ** len(internal)
    return ContractionPlan(equation, tuple(operands), coefficient, len(internal) - n_edges, n_ext)
