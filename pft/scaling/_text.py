"""Aligned text tables for the results' ``__str__``."""

from __future__ import annotations

__all__ = ["table"]


def table(header: list[str], rows: list[list[str]]) -> str:
    """Right-aligned columns under a header and a rule of dashes."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])
