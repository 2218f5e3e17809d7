"""pft.degrade: tempered local posterior sampling (SGLD) and the local learning coefficient.

- :class:`TemperedPosterior` -- SGLD on ``p_β(w) ∝ exp(-nβ L_n(w) - (γ/2)‖w - w*‖²)`` around
  trained weights ``w*``; ``.sample`` returns a :class:`SampleResult`,
  ``.learning_coefficient`` a :class:`LearningCoefficient` ``λ̂ = nβ (E_β L - L(w*))``.
- :func:`degraded_models` -- copies of a model at weights drawn over a range of temperatures.
- :class:`SamplerDivergenceError`, :class:`MixingWarning`, :class:`StepSizeWarning` -- what a bad run raises or warns.
- :func:`effective_sample_size`, :func:`split_rhat` -- the chain diagnostics.
"""

from pft.degrade._degraded import DegradedModel, degraded_models
from pft.degrade._diagnostics import (
    MixingWarning,
    SamplerDivergenceError,
    StepSizeWarning,
    effective_sample_size,
    split_rhat,
)
from pft.degrade._posterior import TemperedPosterior
from pft.degrade._results import ChainDiagnostics, LearningCoefficient, SampleResult

__all__ = [
    "TemperedPosterior",
    "degraded_models",
    "DegradedModel",
    "SampleResult",
    "LearningCoefficient",
    "ChainDiagnostics",
    "SamplerDivergenceError",
    "MixingWarning",
    "StepSizeWarning",
    "effective_sample_size",
    "split_rhat",
]
