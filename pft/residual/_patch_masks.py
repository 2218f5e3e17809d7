"""Token masks of :func:`pft.residual.patch_scores`: which tokens count, batch by batch.

A mask is given once for all batches (their rows stacked), as one mask per batch, or as a
callable ``batch -> mask``; ``exclude_positions`` drops sequence positions from it.
:class:`TokenMasks` turns that into one boolean mask of the hooked output's leading shape per
batch, and :func:`entry_weights` matches a batch's mask to the entries of its loss or KL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pft._device import tensor_from_numpy
from pft._validate import describe
from pft.errors import InputError

__all__ = ["TokenMasks", "as_bool_mask", "entry_weights"]


def as_bool_mask(v: Any, what: str):
    """``v`` as a boolean tensor: bool, or integers that are all 0/1 (an ``attention_mask``)."""
    import torch

    if isinstance(v, torch.Tensor):
        t = v.detach()
        dtype, floating = t.dtype, t.is_floating_point() or t.is_complex()
    else:
        try:
            arr = np.asarray(v)
        except Exception:
            arr = None
        if arr is None or arr.dtype.kind not in "biufc":
            raise InputError(f"{what} must be a boolean array or tensor (True = the token counts); got {describe(v)}.")
        dtype, floating = arr.dtype, arr.dtype.kind in "fc"
        t = None if floating else tensor_from_numpy(arr)
    if floating:
        raise InputError(
            f"{what} must be boolean (True = the token counts) or integer 0/1 like an attention_mask; got dtype "
            f"{dtype}. Compare it explicitly, e.g. mask > 0.5."
        )
    if t.dtype == torch.bool:
        return t
    if t.numel() and not bool(((t == 0) | (t == 1)).all()):
        raise InputError(
            f"{what} has integer values other than 0 and 1 (dtype {t.dtype}); pass a boolean mask "
            "(True = the token counts)."
        )
    return t != 0


class TokenMasks:
    """The token masks of :func:`patch_scores`, one batch at a time (True = the token counts).

    ``for_batch(i, batch, lead)`` gives batch ``i``'s boolean mask of the hooked output's
    leading shape ``lead`` (None when neither ``mask`` nor ``exclude_positions`` is given);
    ``finish()`` checks that a single stacked array was used up exactly."""

    def __init__(self, mask: Any, exclude_positions: Any, n_batches: int) -> None:
        import torch

        if exclude_positions is not None:
            ep = exclude_positions
            if isinstance(ep, (str, bytes, bool, torch.Tensor)) or not hasattr(ep, "__iter__"):
                raise InputError(f"`exclude_positions` must be a tuple of integer positions, e.g. (0,); got {describe(ep)}.")
            pos = list(exclude_positions)
            if not all(isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)) for p in pos):
                raise InputError(f"`exclude_positions` must hold integers; got {exclude_positions!r}.")
            self.pos = [int(p) for p in pos]
        else:
            self.pos = []
        self.mask = mask
        self.n_batches = n_batches
        self.active = mask is not None or bool(self.pos)
        self.rows_used = 0
        self.stacked = None
        if mask is None:
            pass
        elif isinstance(mask, (torch.Tensor, np.ndarray)):
            self.stacked = as_bool_mask(mask, "`mask`")
        elif isinstance(mask, (list, tuple)):
            if len(mask) != n_batches:
                raise InputError(
                    f"`mask` is a {type(mask).__name__} of {len(mask)} masks but there are {n_batches} batches; "
                    "pass one mask per batch (or one array for all of them, or a callable batch -> mask)."
                )
        elif not callable(mask):
            raise InputError(
                "`mask` must be None, a boolean (rows, seq) array or tensor for all of `batches`, a list with one per "
                f"batch, or a callable batch -> mask; got {describe(mask)}."
            )
        self.description = ", ".join(
            (["mask"] if mask is not None else []) + ([f"positions {tuple(self.pos)}"] if self.pos else [])
        )

    def for_batch(self, i: int, batch: Any, lead: tuple):
        import torch

        if not self.active:
            return None
        mask, lead = self.mask, tuple(lead)
        if mask is None:
            m = torch.ones(lead, dtype=torch.bool)
        elif self.stacked is not None:
            st = self.stacked
            want = (int(st.shape[0]) if st.ndim else None, *lead[1:])
            if not lead or st.ndim != len(lead) or tuple(st.shape[1:]) != lead[1:]:
                raise InputError(
                    f"`mask` has shape {tuple(st.shape)}; one array for all of `batches` must have shape {want} "
                    f"(the hooked output's leading shape is {lead} on batch {i}; the batches' rows stacked along the "
                    "first axis). Pass a list with one mask per batch, or a callable batch -> mask, when the batches differ."
                )
            lo, hi = self.rows_used, self.rows_used + lead[0]
            if hi > st.shape[0]:
                raise InputError(
                    f"`mask` has {st.shape[0]} rows but `batches` give at least {hi} (batch {i} has {lead[0]}); one "
                    "array for all of `batches` has one row per row of every batch, stacked."
                )
            self.rows_used = hi
            m = st[lo:hi]
        elif isinstance(mask, (list, tuple)):
            m = as_bool_mask(mask[i], f"`mask`[{i}]")
        else:
            m = as_bool_mask(mask(batch), f"`mask`(batch {i}) (the callable's result)")
        if tuple(m.shape) != lead:
            raise InputError(
                f"`mask` for batch {i} has shape {tuple(m.shape)} but the hooked output of that batch has "
                f"{len(lead)} leading axes of shape {lead} (one entry per token; its last axis is the width)."
            )
        if self.pos:
            if len(lead) < 2:
                raise InputError(
                    f"`exclude_positions` needs a sequence axis, but the hooked output of batch {i} has leading shape "
                    f"{lead} (rows, width only); pass `mask` with one boolean per token instead."
                )
            bad = [p for p in self.pos if not -lead[1] <= p < lead[1]]
            if bad:
                raise InputError(
                    f"`exclude_positions` {bad} out of range for batch {i}, whose sequences have {lead[1]} positions."
                )
            m = m.clone()  # never write into the caller's tensor
            m[:, self.pos] = False
        return m

    def finish(self) -> None:
        st = self.stacked
        if st is not None and self.rows_used != st.shape[0]:
            raise InputError(
                f"`mask` has shape {tuple(st.shape)}; one array for all of `batches` must have "
                f"{self.rows_used} rows (the rows of every batch, stacked)."
            )


def entry_weights(keep: Any, shape: tuple, loss_name: str):
    """Which entries of a (B, ...) loss or KL tensor count, from the batch's token mask ``keep``
    (the hooked output's leading shape).

    Axes are matched from the left: the first is the row; a position axis of the loss may be as
    long as the mask's or one shorter (next-token losses on ``logits[:, :-1]``: entry ``t`` is the
    prediction made at position ``t``). Mask axes the loss lacks are reduced with ``any`` (a
    per-row loss counts when any of its tokens does); loss axes the mask lacks inherit it.
    """
    if len(shape) == 0:
        return keep.any().reshape(())
    if keep.ndim == 0 or shape[0] != keep.shape[0]:
        rows = keep.shape[0] if keep.ndim else 0
        raise InputError(
            f"{loss_name} has {shape[0]} rows but `mask` has {rows} for this batch; with a mask, the loss's "
            "first axis must be the batch's rows (the hooked output's first axis)."
        )
    k = keep
    for a in range(1, min(len(shape), k.ndim)):
        n, p = shape[a], k.shape[a]
        if n == p:
            continue
        if a == 1 and n == p - 1:
            k = k.narrow(1, 0, n)
            continue
        raise InputError(
            f"{loss_name} has shape {tuple(shape)} but `mask` has shape {tuple(keep.shape)}: axis {a} must have "
            f"{p} entries{' (or ' + str(p - 1) + ' for a next-token loss)' if a == 1 else ''}. Return one loss per "
            "position, or per row (B,) averaged as you wish."
        )
    if k.ndim > len(shape):
        k = k.reshape(*k.shape[: len(shape)], -1).any(dim=-1)
    while k.ndim < len(shape):
        k = k.unsqueeze(-1)
    return k.expand(shape)
