"""Pictures of diagrams for other parts of pft (the CLI): TikZ documents, SVG sheets, the catalog.

Package-internal API (no underscore: importable from outside :mod:`pft.symbolic`); one
diagram's picture is :meth:`pft.symbolic.Diagram.to_tikz` / :meth:`~pft.symbolic.Diagram.to_svg`.

Examples
--------
>>> from pft.symbolic import Diagram
>>> svg_sheet([Diagram.from_edges([(0, 1)] * 3)]).startswith("<svg")
True
"""

from pft.symbolic._catalog import catalog_files, write_catalog
from pft.symbolic._draw import layout, svg_sheet, tikz_document, to_svg, to_tikz

__all__ = ["write_catalog", "catalog_files", "tikz_document", "svg_sheet", "to_tikz", "to_svg", "layout"]
