"""Aligned plain-text tables: the one table layout behind the results' ``__str__`` and the CLI.

Private. Columns are separated by two spaces; each is as wide as its widest cell (header
included); a rule of dashes under the header unless asked otherwise. ``align`` gives one
character per column: ``">"`` right (the default), ``"<"`` left, ``" "`` as is (no padding;
meant for a free-text last column, so no trailing spaces are written). Without a header the
table is just its aligned rows (key/value listings).

Examples
--------
>>> print(table(["n", "value"], [["1", "0.5"], ["10", "2"]]))
 n  value
--  -----
 1    0.5
10      2
>>> print(table(None, [["d", "3"], ["chains", "2 x 20"]], align="< ", indent="  "))
  d       3
  chains  2 x 20
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table"]

_PAD = {">": str.rjust, "<": str.ljust, " ": lambda cell, width: cell}


def table(
    header: Sequence[str] | None,
    rows: Sequence[Sequence[str]],
    *,
    align: str | None = None,
    indent: str = "",
    rule: bool = True,
) -> str:
    """Lines of an aligned table (no trailing newline).

    Parameters
    ----------
    header : sequence of str or None
        Column titles; None for a table of rows only (no header, no rule).
    rows : sequence of sequences of str
        The cells, already formatted; every row has one cell per column.
    align : str, optional
        One of ``">"``, ``"<"``, ``" "`` per column (right, left, unpadded); all right by default.
    indent : str
        Prefix of every line.
    rule : bool
        Draw a rule of dashes under the header.

    Returns
    -------
    str
    """
    lines = ([list(header)] if header is not None else []) + [list(r) for r in rows]
    if not lines:
        return ""
    n_columns = len(lines[0])
    align = ">" * n_columns if align is None else align
    if len(align) != n_columns or any(a not in _PAD for a in align):
        from pft.errors import InputError

        raise InputError(f"`align` must have one of '>', '<', ' ' per column ({n_columns}); got {align!r}.")
    widths = [max(len(line[i]) for line in lines) for i in range(n_columns)]

    def render(cells: Sequence[str]) -> str:
        return indent + "  ".join(_PAD[a](c, w) for a, c, w in zip(align, cells, widths))

    out = [render(line) for line in lines]
    if header is not None and rule:
        out.insert(1, indent + "  ".join("-" * w for w in widths))
    return "\n".join(out)
