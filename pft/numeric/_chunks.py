"""Rows given as chunks and read in several passes (what :meth:`PerturbativeBackground.fit`
accepts besides one array): a re-iterable, or a function returning a fresh iterator, optionally
told which rows each pass uses (``keep(n)``) so that it never reads the others."""

from __future__ import annotations

import inspect
from typing import Any, Callable, Iterator

import numpy as np

from pft._device import as_device_matrix, is_tensor, like
from pft._validate import as_matrix
from pft.errors import InputError
from pft.distributed import Reducer

__all__ = ["array_passes", "chunk_passes"]


def _takes_keep(fn: Callable) -> bool:
    """Whether a chunk source ``fn`` accepts a ``keep`` keyword (see PerturbativeBackground.fit)."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "keep" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def array_passes(rows: Any, offset: int) -> Callable:
    """``passes(keep=None)`` over one validated block of rows whose first row has global index
    ``offset`` (see :func:`chunk_passes`)."""

    def passes(keep=None):
        if keep is None:
            return iter([(offset, rows)])
        m = keep(offset, int(rows.shape[0]))
        return iter([(offset, rows if m.all() else rows[like(m, rows)])])

    return passes


def chunk_passes(X: Any, red: Reducer, device: Any) -> tuple[Callable, int, int]:
    """``(passes, d, N)`` for chunked input (see :meth:`fit`): ``passes(keep=None)`` iterates
    ``(global index of the chunk's first row, validated rows)``, the rows those of
    ``keep(index, n)`` when given; one counting pass (which reads no rows from a source
    that takes ``keep``) finds the rows on this rank, the width and every rank's offset."""
    if callable(X):
        source, with_keep = X, _takes_keep(X)
    elif hasattr(X, "__iter__"):
        if iter(X) is X:
            raise InputError(
                "`X` is a one-shot iterator (e.g. a generator), but the perturbative fit reads the rows in "
                "several passes; pass a list of chunks, or a function returning a fresh iterator "
                "(fit(lambda: my_chunks()))."
            )
        source, with_keep = (lambda: iter(X)), False
    else:
        raise InputError(
            f"`X` must be an (N, d) array or tensor, chunks of rows, or a function returning chunks; got "
            f"{type(X).__name__}."
        )

    def valid(c: Any, name: str) -> Any:
        """Checked float64 rows: numpy, or a tensor on ``device`` (or on its own device)."""
        empty = getattr(c, "ndim", None) == 2 and c.shape[0] == 0  # a chunk keep() emptied
        if device is not None or is_tensor(c):
            return as_device_matrix(c, name, device if device is not None else c.device, allow_empty=empty)
        return np.zeros((0, c.shape[1])) if empty else as_matrix(c, name)

    def raw(keep_n: Callable[[int], np.ndarray] | None) -> Iterator[tuple[int, Any]]:
        """(number of rows before masking, validated rows) per chunk."""
        pending: list = []

        def keep_hook(n: int) -> np.ndarray:
            if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
                raise InputError(f"`X` called keep with {n!r}; pass each chunk's number of rows.")
            m = np.asarray(keep_n(int(n)), dtype=bool)
            pending.append((int(n), int(m.sum())))
            return m

        it = source(keep=keep_hook) if (with_keep and keep_n is not None) else source()
        for i, c in enumerate(it):
            name = f"X[{i}]"
            if with_keep and keep_n is not None:
                if len(pending) != 1:
                    raise InputError(f"`X` must call keep(n) exactly once before yielding each chunk; {name} "
                                     f"came after {len(pending)} calls.")
                n, kept = pending.pop()
                c = valid(c, name)
                if c.shape[0] != kept:
                    raise InputError(f"`{name}` has {c.shape[0]} rows but keep(n) kept {kept} of its {n}.")
                yield n, c
            else:
                c = valid(c, name)
                n = int(c.shape[0])
                if keep_n is not None:
                    m = keep_n(n)
                    c = c if m.all() else c[like(m, c)]
                yield n, c

    seen, width = 0, None
    for i, (n, c) in enumerate(raw(lambda n: np.zeros(n, dtype=bool))):
        if width is not None and c.shape[1] != width:
            raise InputError(f"`X[{i}]` has {c.shape[1]} features but earlier chunks had {width}.")
        seen, width = seen + n, int(c.shape[1])
    if width is None:
        raise InputError("`X` is an empty iterable of chunks; pass at least one (n, d) array.")
    offset, N = red.offset_and_total(seen)

    def passes(keep=None):
        at = [offset]

        def keep_n(n: int) -> np.ndarray:
            m = np.ones(n, dtype=bool) if keep is None else keep(at[0], n)
            at[0] += n
            return m

        first = offset
        for n, c in raw(keep_n):
            yield first, c
            first += n

    return passes, width, N

