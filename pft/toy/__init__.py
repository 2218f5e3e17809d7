"""Ground-truth generators: data with known structure and interpretations with known errors.

- :func:`superposition` -- sparse features in superposition over a Gaussian background (:class:`ToyData`).
- :func:`interpretations` -- reconstructions of it with the same FVU and known kinds of error
  (:class:`ToyInterpretation`; ``pft.toy.Interpretation`` is its deprecated old name).
"""

from pft._deprecation import module_aliases
from pft.toy._superposition import ToyData, ToyInterpretation, interpretations, superposition

__all__ = ["superposition", "interpretations", "ToyData", "ToyInterpretation"]

__getattr__ = module_aliases("pft.toy", {"Interpretation": ("ToyInterpretation", lambda: ToyInterpretation)})
