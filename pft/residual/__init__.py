"""Residual scoring: what an interpretation's residual carries beyond a Gaussian background."""

from pft.residual._across import AcrossReport, score_across
from pft.residual._report import ResidualReport, compare
from pft.residual._score import score

__all__ = ["score", "ResidualReport", "compare", "score_across", "AcrossReport"]
