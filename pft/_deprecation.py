"""Old names that still work: renamed keywords, functions and classes, with a warning.

Private. A public name users may have in their code is never simply removed: the old spelling
keeps working for a while and emits :class:`~pft.errors.PftDeprecationWarning` naming the new one.

- :func:`renamed_keywords` wraps a function or method whose keyword arguments were renamed.
- :func:`module_aliases` builds a module-level ``__getattr__`` serving renamed module attributes.
"""

from __future__ import annotations

import functools
import warnings
from typing import Any, Callable

from pft.errors import InputError, PftDeprecationWarning

__all__ = ["renamed_keywords", "module_aliases", "warn_renamed"]


def warn_renamed(old: str, new: str, *, stacklevel: int = 3) -> None:
    """Emit the one deprecation message: ```old` is deprecated; use `new`.``"""
    warnings.warn(f"`{old}` is deprecated; use `{new}`.", PftDeprecationWarning, stacklevel=stacklevel)


def renamed_keywords(**old_to_new: str) -> Callable:
    """Decorator: accept each old keyword, warn, and pass its value as the new keyword.

    Passing both the old and the new keyword raises :class:`~pft.errors.InputError`.

    Examples
    --------
    >>> import warnings
    >>> @renamed_keywords(samples="n_samples")
    ... def draw(n_samples=1):
    ...     return n_samples
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     draw(samples=5)
    5
    >>> str(caught[0].message)
    '`samples` is deprecated; use `n_samples`.'
    """

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise InputError(f"`{old}` and `{new}` are the same argument; pass only `{new}`.")
                    warn_renamed(old, new)
                    kwargs[new] = kwargs.pop(old)
            return fn(*args, **kwargs)

        return inner

    return wrap


def module_aliases(module: str, aliases: dict[str, tuple[str, Callable[[], Any]]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for renamed attributes.

    ``aliases`` maps each old name to ``(new name, loader)``; the loader returns the object, so
    the new module is imported only when the old name is used.

    Examples
    --------
    >>> getattr_ = module_aliases("pft.example", {"old": ("new", lambda: 42)})
    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     getattr_("old")
    42
    """

    def __getattr__(name: str) -> Any:
        if name in aliases:
            new, load = aliases[name]
            warn_renamed(f"{module}.{name}", f"{module}.{new}" if "." not in new else new)
            return load()
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    return __getattr__
