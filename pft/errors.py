"""The exceptions pft raises.

Every error pft raises on purpose derives from :class:`PftError`, so a caller can catch the
library's own failures with one ``except`` clause. Input validation raises :class:`InputError`,
which is also a :class:`ValueError` so code written against numpy/scikit-learn habits keeps
working.
"""

from __future__ import annotations

__all__ = [
    "PftError",
    "InputError",
    "NotFittedError",
    "NotPositiveDefiniteError",
    "DivergentExpansionError",
    "OutOfReachError",
]


class PftError(Exception):
    """Base class of every exception pft raises deliberately."""


class InputError(PftError, ValueError):
    """An argument was malformed: wrong shape, dtype, non-finite values, bad setting."""


class NotFittedError(PftError, AttributeError):
    """An estimator was used before ``fit`` was called."""


class NotPositiveDefiniteError(PftError, ValueError):
    """A matrix that must be positive definite (a Hessian, a covariance) is not."""


class DivergentExpansionError(PftError, ArithmeticError):
    """A perturbative expansion does not exist or has left its domain of validity."""


class OutOfReachError(PftError, MemoryError):
    """A requested computation would need more memory or time than is sensible; the message
    says how much and what to change."""
