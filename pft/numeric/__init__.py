"""pft.numeric (see the package docstring of pft for an overview)."""

from pft.numeric._edgeworth import cornish_fisher, edgeworth_logpdf, edgeworth_pdf
from pft.numeric._laplace import laplace

__all__: list[str] = [
    "cornish_fisher",
    "edgeworth_logpdf",
    "edgeworth_pdf",
    "laplace",
]
