"""Massive-activation tokens: the few tokens whose activation norm dwarfs every other token's.

Many language models put a handful of tokens (the first token of a sequence, often the first
delimiter after it: attention sinks) at activation norms hundreds to thousands of times the
median token's, along a few fixed coordinates (Sun et al., 2024, "Massive activations in large
language models"). They carry most of any second-moment statistic of a block's output — a
covariance, an SAE's reconstruction error, the energy of a latent — while saying nothing about
the features on ordinary tokens. :func:`massive_tokens` finds them so that they can be left out
(``score(..., mask=~massive)``, or before an SAE is trained), the way position 0 is left out.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pft._validate import as_matrix, check_float, check_int, describe
from pft.errors import InputError

__all__ = ["massive_tokens"]


def massive_tokens(activations: Any, *, ratio: float = 10.0, chunk_rows: int | None = None) -> np.ndarray:
    """Tokens whose activation norm exceeds ``ratio`` times the median token's.

    Parameters
    ----------
    activations : (..., d) array or tensor
        Activations, tokens along the leading axes (``(N, d)`` or ``(batch, seq, d)``); a
        memmap is read ``chunk_rows`` tokens at a time.
    ratio : float, default 10
        A token is massive when ``‖x_t‖ > ratio · median_t ‖x_t‖``. Ordinary tokens of a block's
        output stay within a few times the median (MiniLM-L6 block 3: at most 1.13×), attention
        sinks sit two to three orders of magnitude above it (SmolLM2-135M block 12: ≈ 170×), so
        the answer does not hinge on the exact value.
    chunk_rows : int, optional
        Tokens per read (default: 8 MiB of float64 per chunk).

    Returns
    -------
    ndarray of bool, shape ``activations.shape[:-1]``
        True at massive tokens. Pass ``mask=~massive`` to :func:`pft.residual.score` (True
        marks a token that counts there).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> x = rng.normal(size=(2, 6, 4))
    >>> x[:, 0] *= 500.0                       # an attention sink at position 0 of each sequence
    >>> massive_tokens(x)
    array([[ True, False, False, False, False, False],
           [ True, False, False, False, False, False]])
    """
    check_float(ratio, "ratio", minimum=1, exclusive_minimum=True)
    if chunk_rows is not None:
        check_int(chunk_rows, "chunk_rows", minimum=1)
    shape = tuple(getattr(activations, "shape", ()))
    if len(shape) < 2:
        raise InputError(
            f"`activations` must have tokens along leading axes and features last, e.g. (N, d); got {describe(activations)}."
        )
    d = int(shape[-1])
    n = int(np.prod(shape[:-1]))
    if n == 0 or d == 0:
        raise InputError(f"`activations` has no tokens or no features; got {describe(activations)}.")
    flat = activations.reshape(n, d)
    step = int(chunk_rows) if chunk_rows is not None else max(64, 2**20 // max(d, 1))
    norms = np.empty(n)
    for lo in range(0, n, step):
        rows = as_matrix(flat[lo : lo + step], "activations", row_offset=lo)
        norms[lo : lo + len(rows)] = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    return (norms > float(ratio) * float(np.median(norms))).reshape(shape[:-1])
