"""One diagram's contribution to a series (:class:`DiagramTerm`) and the table of them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pft._text import table
from pft.symbolic._plan import ContractionPlan
from pft.symbolic._serial import is_number, jsonable, read_exact_array, read_float, short

__all__ = ["DiagramTerm", "term_table"]

_SUP = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


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
            "value": jsonable(self.value),
        }

    @classmethod
    def from_dict(cls, data: Mapping, *, exact: bool = True) -> "DiagramTerm":
        """Inverse of :meth:`to_dict`; ``exact`` says whether the value is exact (sympy) or floats.

        Examples
        --------
        >>> from pft.symbolic import Diagram, contraction_plan
        >>> d = Diagram.from_edges([(0, 0), (0, 0)])
        >>> t = DiagramTerm(d, contraction_plan(d), 0.25)
        >>> DiagramTerm.from_dict(t.to_dict(), exact=False) == t
        True
        """
        from pft.symbolic._diagram import Diagram

        diagram = Diagram.from_dict({"valences": data["valences"], "n_external": data["n_external"], "edges": data["edges"]})
        value = read_exact_array(data["value"]) if exact else read_float(data["value"])
        return cls(diagram, ContractionPlan.from_dict(data["plan"]), value)


def term_table(terms: Mapping[int, tuple], n) -> str:
    """Aligned table of the terms of each order ``k`` (largest first when all are numbers), with
    ``value · n^-k`` when ``n`` is given."""
    header = ("k", "diagram", "edges", "1/|Aut|", "value")
    if n is not None:
        header = (*header, f"value·n^-k (n={n:g})")
    rows = [header]
    for k, ts in terms.items():
        ordered = list(ts)
        if ordered and all(is_number(t.value) for t in ordered):
            ordered.sort(key=lambda t: -abs(complex(t.value)))
        for t in ordered:
            edges = " ".join(f"{u}{v}" for u, v in t.diagram.edges)
            row = (str(k), t.label(), edges, str(t.diagram.symmetry_factor), short(t.value))
            if n is not None:
                row = (*row, f"{float(t.value) * n ** (-k):.4g}" if is_number(t.value) else "")
            rows.append(row)
    return table(rows[0], rows[1:], align=">" + "<<" + ">" * (len(header) - 3), indent="  ")
