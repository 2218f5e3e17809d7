"""pft.degrade: tempered local posterior sampling (SGLD) and the local learning coefficient.

- :class:`TemperedPosterior` -- SGLD on ``p_β(w) ∝ exp(-nβ L_n(w) - (γ/2)‖w - w*‖²)`` around
  trained weights ``w*``; ``.sample`` returns a :class:`SampleResult`,
  ``.learning_coefficient`` a :class:`LearningCoefficient` ``λ̂ = nβ (E_β L - L(w*))``.
- :func:`degraded_models` -- copies of a model at weights drawn over a range of temperatures.
- :func:`degrade_experiment` -- the whole experiment on a toy of superposition: ``λ̂``, degraded
  copies, and which interpretation's advantage survives them (:class:`DegradeExperiment`).
- :class:`SamplerDivergenceError`, :class:`MixingWarning`, :class:`StepSizeWarning` -- what a bad
  run raises or warns (defined in :mod:`pft.errors`, importable from here too).
- :func:`effective_sample_size`, :func:`split_rhat` -- the chain diagnostics.
"""

from pft.degrade._degraded import DegradedModel, degraded_models
from pft.degrade._diagnostics import effective_sample_size, split_rhat
from pft.degrade._experiment import DegradeExperiment, degrade_experiment
from pft.degrade._posterior import TemperedPosterior
from pft.degrade._results import ChainDiagnostics, LearningCoefficient, SampleResult
from pft.errors import MixingWarning, SamplerDivergenceError, StepSizeWarning

__all__ = [
    "TemperedPosterior",
    "degraded_models",
    "DegradedModel",
    "degrade_experiment",
    "DegradeExperiment",
    "SampleResult",
    "LearningCoefficient",
    "ChainDiagnostics",
    "SamplerDivergenceError",
    "MixingWarning",
    "StepSizeWarning",
    "effective_sample_size",
    "split_rhat",
]
