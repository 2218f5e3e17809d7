"""Numeric layer: streaming moments, Gaussian and perturbative backgrounds, autodiff Laplace
expansions and Edgeworth densities."""

from pft.numeric._background import GaussianBackground
from pft.numeric._edgeworth import cornish_fisher, edgeworth_logpdf, edgeworth_pdf
from pft.numeric._ica import kurtosis_directions
from pft.numeric._laplace import laplace
from pft.numeric._moments import Moments
from pft.numeric._cumulant_tensors import edgeworth_polynomial
from pft.numeric._perturbative import PerturbativeBackground
from pft.numeric._directions import FeatureDirections, feature_directions

__all__ = [
    "Moments",
    "GaussianBackground",
    "PerturbativeBackground",
    "edgeworth_polynomial",
    "kurtosis_directions",
    "feature_directions",
    "FeatureDirections",
    "laplace",
    "edgeworth_pdf",
    "edgeworth_logpdf",
    "cornish_fisher",
]
