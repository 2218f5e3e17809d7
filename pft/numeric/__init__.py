"""pft.numeric (see the package docstring of pft for an overview)."""

from pft.numeric._edgeworth import cornish_fisher, edgeworth_logpdf, edgeworth_pdf

__all__: list[str] = [
    "cornish_fisher",
    "edgeworth_logpdf",
    "edgeworth_pdf",
]
