"""Ground-truth generators: data with known structure and interpretations with known errors."""

from pft.toy._superposition import Interpretation, ToyData, interpretations, superposition

__all__ = ["superposition", "interpretations", "ToyData", "Interpretation"]
