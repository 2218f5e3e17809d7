"""Draws from fitted backgrounds, used as token-independent noise models by patch_scores.

The draws themselves are :meth:`pft.numeric.PerturbativeBackground.sample`; this module keeps
the name patch_scores calls, and the Edgeworth polynomial is the one of
:func:`pft.numeric.edgeworth_polynomial` (re-exported here for existing imports).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pft.errors import NotFittedError
from pft.numeric import PerturbativeBackground, edgeworth_polynomial

__all__ = ["edgeworth_polynomial", "sample_perturbative"]


def sample_perturbative(background: Any, n_samples: int, *, seed: Any = None, pool: int = 64) -> np.ndarray:
    """(n_samples, d) draws from a fitted :class:`~pft.numeric.PerturbativeBackground`:
    ``background.sample(n_samples, seed=seed, n_proposals=pool)`` (see there: ``seed`` an
    integer or a numpy Generator drawn from as it is; None: the background's own seed).

    Examples
    --------
    >>> from pft.numeric import PerturbativeBackground
    >>> rng = np.random.default_rng(0)
    >>> x = np.c_[rng.exponential(size=(4000, 1)), rng.normal(size=(4000, 2))]
    >>> pb = PerturbativeBackground(n_directions=1, seed=0).fit(x)
    >>> bool(np.array_equal(sample_perturbative(pb, 10, seed=1), pb.sample(10, seed=1)))
    True
    """
    if not isinstance(background, PerturbativeBackground) or not hasattr(background, "gaussian_"):
        raise NotFittedError("`background` is not a fitted PerturbativeBackground; call fit(X) first.")
    return background.sample(n_samples, seed=seed, n_proposals=pool)
