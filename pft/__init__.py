"""pft: perturbative field-theory analysis of neural-network residuals.

Subpackages (import the one you need; ``import pft`` itself stays light and never loads
torch, sympy or matplotlib):

- :mod:`pft.symbolic` -- Feynman diagrams, Laplace and Edgeworth expansions, Wick contractions.
- :mod:`pft.numeric` -- streaming moments, Gaussian and perturbative backgrounds, autodiff Laplace.
- :mod:`pft.residual` -- score an interpretation's residual ``activations - reconstruction``.
- :mod:`pft.scaling` -- finite-width theory of randomly initialised networks and ensembles.
- :mod:`pft.degrade` -- tempered local posterior sampling and the learning coefficient.
- :mod:`pft.toy` -- ground-truth generators.
- :mod:`pft.models` -- MiniLM-L6 and SmolLM2-135M offline from PyPI packages (extra ``models``).
"""

from __future__ import annotations

import importlib

from pft.errors import (
    InputError,
    NotFittedError,
    NotPositiveDefiniteError,
    OutOfReachError,
    PftError,
    PftWarning,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "PftError",
    "InputError",
    "NotFittedError",
    "NotPositiveDefiniteError",
    "OutOfReachError",
    "PftWarning",
]

_SUBPACKAGES = ("symbolic", "numeric", "residual", "scaling", "degrade", "toy", "models", "io", "distributed")


def __getattr__(name: str):
    # ``pft.numeric`` etc. work after a bare ``import pft`` without paying for them upfront.
    if name == "DivergentExpansionError":
        from pft.errors import _deprecated_error

        return _deprecated_error(name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"pft.{name}")
    raise AttributeError(f"module 'pft' has no attribute {name!r}")
