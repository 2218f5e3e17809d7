"""Numeric layer: streaming moments, Gaussian and perturbative backgrounds."""

from pft.numeric._background import GaussianBackground
from pft.numeric._ica import kurtosis_directions
from pft.numeric._moments import Moments
from pft.numeric._perturbative import PerturbativeBackground

__all__ = ["Moments", "GaussianBackground", "PerturbativeBackground", "kurtosis_directions"]
