"""Every exception and warning pft raises or emits.

Every error pft raises on purpose derives from :class:`PftError` and every warning from
:class:`PftWarning`, so a caller can catch the library's own failures with one ``except`` clause
and filter its warnings with one ``warnings.filterwarnings`` category. Input validation raises
:class:`InputError`, which is also a :class:`ValueError` so code written against
numpy/scikit-learn habits keeps working; each other class also derives from the built-in class
a caller would expect (``MemoryError`` for :class:`OutOfReachError`, ``UserWarning`` for the
warnings, and so on).

Examples
--------
>>> from pft.errors import InputError, PftError
>>> issubclass(InputError, PftError) and issubclass(InputError, ValueError)
True
"""

from __future__ import annotations

import warnings

__all__ = [
    "PftError",
    "InputError",
    "NotFittedError",
    "NotPositiveDefiniteError",
    "OutOfReachError",
    "PatchError",
    "SamplerDivergenceError",
    "PftWarning",
    "PftDeprecationWarning",
    "MixingWarning",
    "StepSizeWarning",
    "HeavyTailWarning",
]


# ---------------------------------------------------------------------- errors


class PftError(Exception):
    """Base class of every exception pft raises deliberately."""


class InputError(PftError, ValueError):
    """An argument was malformed: wrong shape, dtype, non-finite values, bad setting.

    The message names the argument (in backticks), says what was expected and what came in.
    """


class NotFittedError(PftError, AttributeError):
    """An estimator was used before ``fit`` was called."""


class NotPositiveDefiniteError(PftError, ValueError):
    """A matrix that must be positive definite (a Hessian, a covariance) is not."""


class OutOfReachError(PftError, MemoryError):
    """A requested computation would need more memory or time than is sensible; the message
    says how much and what to change."""


class PatchError(PftError, RuntimeError):
    """A patched model run went wrong in a way that is not a malformed argument (a failed
    sanity check, a non-finite loss)."""


class SamplerDivergenceError(PftError, FloatingPointError):
    """An SGLD chain left the neighbourhood of ``w*``: a non-finite loss or parameter, or a
    loss so far above ``L(w*)`` that the chain is running away (the step size is too large
    for the curvature ``n β H + γ``)."""


# ---------------------------------------------------------------------- warnings


class PftWarning(UserWarning):
    """Base class of every warning pft emits."""


class PftDeprecationWarning(PftWarning, DeprecationWarning):
    """A name or keyword was renamed; the old one still works for now and says what to use."""


class MixingWarning(PftWarning):
    """The chains have not mixed (split R-hat above the threshold) or the loss trace is
    still drifting after burn-in; estimates from them are not yet trustworthy."""


class StepSizeWarning(PftWarning):
    """The step size is large for the curvature at ``w*``: ``ε (n β h_max + γ)`` is close to
    the stability limit 4 of the Langevin step, so the draws are over-dispersed (by the factor
    ``1 / (1 - ε p / 4)`` in variance along a direction of precision ``p``)."""


class HeavyTailWarning(PftWarning):
    """A moment estimate is dominated by a few networks; its standard error is not trustworthy."""


class _DivergentExpansionError(PftError, ArithmeticError):
    """Never raised by pft; kept so that ``except DivergentExpansionError`` in user code still
    parses. Expansions outside their reach raise :class:`OutOfReachError`; a Hessian that is not
    positive definite raises :class:`NotPositiveDefiniteError`."""


def _deprecated_error(name: str, *, stacklevel: int = 3):
    """The deprecated exception ``name``, warning at the caller's line (``stacklevel``)."""
    if name != "DivergentExpansionError":
        raise AttributeError(f"module 'pft.errors' has no attribute {name!r}")
    warnings.warn(
        "`DivergentExpansionError` is deprecated; use `OutOfReachError` or `NotPositiveDefiniteError` "
        "(pft never raised it).",
        PftDeprecationWarning,
        stacklevel=stacklevel,
    )
    return _DivergentExpansionError


def __getattr__(name: str):
    return _deprecated_error(name)
