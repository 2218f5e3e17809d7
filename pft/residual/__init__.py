"""Residual scoring: what an interpretation's residual carries beyond a Gaussian background,
and what the model does when it is replaced by Gaussian noise.

Package-internal module other subpackages may use: :mod:`pft.residual.hooks` (find, call and
hook a module of a torch model).
"""

from pft.residual._across import AcrossReport, score_across
from pft.residual._knockout import Knockout, knockout, select_latents
from pft.residual._massive import massive_tokens
from pft.residual._power import PowerResult, detection_power
from pft.residual._interpretation import Interpretation, as_interpretation
from pft.errors import PatchError
from pft.residual._patch import patch_scores
from pft.residual._patch_report import PatchReport
from pft.residual._report import ResidualReport, compare
from pft.residual._score import score

__all__ = [
    "score",
    "ResidualReport",
    "compare",
    "patch_scores",
    "PatchReport",
    "PatchError",
    "as_interpretation",
    "Interpretation",
    "score_across",
    "AcrossReport",
    "knockout",
    "Knockout",
    "select_latents",
    "massive_tokens",
    "detection_power",
    "PowerResult",
]
