"""Width-to-depth scaling: finite-width theory of random MLPs at initialisation and ensembles.

At initialisation a wide network's preactivations are nearly Gaussian; the connected four-point
function ``V/n`` grows with depth, so the expansion parameter is ``L/n`` (Roberts, Yaida & Hanin,
*The Principles of Deep Learning Theory*, 2022). :func:`finite_width_theory` computes the
kernel, the four-point vertex and the 1/n kernel shift layer by layer, and
:func:`critical_point` the critical initialisation ``(C_b, C_W, K*)`` of any activation;
:func:`sample_ensemble` draws whole ensembles of networks, either weight by weight or from the
exact conditional Gaussian law of each layer given the previous one; :class:`Study` runs grids of
(activation, width, depth) cells into a resumable store. Beyond 1/n:
:attr:`FiniteWidthTheory.U` is the six-point vertex (the 1/n² sixth cumulant), and
:func:`scale_invariant_law` the exact law of the output variance of ReLU-like networks, a
resummation that holds at any L/n.
"""

from pft.errors import HeavyTailWarning  # its home is pft.errors; kept importable from here
from pft.scaling._critical import CriticalPoint, critical_point
from pft.scaling._ensemble import EnsembleResult, MLPConfig, sample_ensemble
from pft.scaling._exact_law import ScaleInvariantLaw, scale_invariant_law
from pft.scaling._study import Study, StudyResult, scale_invariant_exact_kurtosis
from pft.scaling._theory import FiniteWidthTheory, finite_width_theory

__all__ = [
    "finite_width_theory",
    "FiniteWidthTheory",
    "critical_point",
    "CriticalPoint",
    "MLPConfig",
    "sample_ensemble",
    "EnsembleResult",
    "Study",
    "StudyResult",
    "HeavyTailWarning",
    "scale_invariant_exact_kurtosis",
    "scale_invariant_law",
    "ScaleInvariantLaw",
]
