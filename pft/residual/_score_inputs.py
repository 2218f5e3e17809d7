"""What :func:`pft.residual.score` accepts besides two (N, d) arrays: an interpretation object
(its reconstruction and codes computed in chunks), token masks, leading axes (``(B, L, d)``,
attention ``hook_z`` outputs ``(B, L, n_heads, d_head)``), and SAELens' batch-centred
``explained_variance_legacy``."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from pft._validate import check_int, describe
from pft.errors import InputError

__all__ = ["prepare", "Prepared"]

#: Why a field of a ResidualReport is NaN, when pft knows.
_NO_CODES = (
    "no codes: pass codes= (the (N, m) feature activations) or the interpretation object itself "
    "(with encode/decode) instead of its reconstruction"
)


def _is_array(a: Any) -> bool:
    return hasattr(a, "shape") and hasattr(a, "__getitem__") and not callable(getattr(a, "encode", None))


def _is_interpretation(a: Any) -> bool:
    from pft.residual._interpretation import Interpretation

    if isinstance(a, Interpretation):
        return a.n_tokens is None
    if _is_array(a) or isinstance(a, (list, tuple)):
        return False
    return callable(a) or (callable(getattr(a, "encode", None)) and callable(getattr(a, "decode", None)))


def _bool_mask(mask: Any, lead: tuple, name: str = "`mask`") -> np.ndarray:
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    m = np.asarray(mask)
    if m.dtype.kind == "f" or m.dtype.kind not in "biu":
        raise InputError(
            f"{name} must be boolean (True = the token counts) or integer 0/1 like an attention_mask; got "
            f"{describe(mask)}."
        )
    if m.dtype.kind != "b":
        if m.size and not np.all((m == 0) | (m == 1)):
            raise InputError(f"{name} has integer values other than 0 and 1; pass a boolean mask (True = the token counts).")
        m = m != 0
    if tuple(m.shape) != tuple(lead):
        raise InputError(
            f"{name} has shape {tuple(m.shape)} but the activations have leading shape {tuple(lead)} (one entry "
            "per token; the last axis, or the last two of a hook_z output, is the width)."
        )
    return m


@dataclasses.dataclass
class Prepared:
    """(N, d) activations and reconstruction ready for score, and what :meth:`finish` adds."""

    x: Any
    xhat: Any
    codes: Any
    nz_rows: float | None = None
    active: np.ndarray | None = None
    legacy: tuple | None = None  # (sum of per-token legacy ratios, tokens) over SAELens batches
    excluded: str = ""
    n_excluded: int = 0

    def finish(self, rep: Any, red: Any) -> Any:
        """The report with the interpretation's l0/dead_fraction, the SAELens legacy value, and
        a reason for every NaN field."""
        kw: dict = {}
        N = rep.n_tokens
        if self.nz_rows is not None:
            kw["l0"] = float(red.sum(self.nz_rows)) / N
            kw["dead_fraction"] = float(np.mean(red.sum(self.active.astype(float)) == 0))
        if self.legacy is not None:
            kw["explained_variance_legacy"] = self.legacy[0] / self.legacy[1]
        rep = dataclasses.replace(rep, **kw) if kw else rep
        why = dict(rep.nan_reasons)
        for f in dataclasses.fields(rep):
            v = getattr(rep, f.name)
            if isinstance(v, float) and math.isnan(v) and f.name not in why:
                why[f.name] = _NO_CODES if f.name in ("l0", "dead_fraction") else (
                    "not computable on these tokens (a zero variance or too few held-out tokens)"
                )
        return dataclasses.replace(rep, nan_reasons=why, excluded=self.excluded, n_excluded=self.n_excluded)


def prepare(
    activations: Any,
    reconstruction: Any,
    *,
    codes: Any,
    mask: Any,
    exclude_positions: Any,
    saelens_batch: Any,
    chunk_rows: int | None,
    distributed: bool,
) -> Prepared:
    """Bring score's inputs to (N, d) rows (see :func:`pft.residual.score`)."""
    import torch

    from pft.residual._interpretation import as_interpretation, trailing_axes

    interp = as_interpretation(reconstruction) if _is_interpretation(reconstruction) else None
    x = activations
    if isinstance(x, torch.Tensor):
        x = x.detach()
    elif not (hasattr(x, "shape") and hasattr(x, "__getitem__")):
        try:
            x = np.asarray(x)
        except Exception:
            x = np.empty(0, dtype=object)
        if x.dtype == object:
            raise InputError(
                f"`activations` is a ragged or nested sequence ({describe(activations)}); pass an (N, d) array "
                "or tensor (a list of per-batch arrays: np.concatenate them first)."
            )
    shape = tuple(int(s) for s in x.shape)
    width = interp.d_in if interp is not None else None
    if interp is None and hasattr(reconstruction, "shape") and len(reconstruction.shape) >= 1:
        width = int(reconstruction.shape[-1]) if tuple(reconstruction.shape) != shape else None
    k = trailing_axes(shape, width) if len(shape) > 2 else 1
    if k is None:
        raise InputError(
            f"`activations` has shape {shape}, but the interpretation reads rows of d_in = {width}, and neither "
            "its last axis nor any product of its trailing axes is that wide; pass the activations of the layer "
            "the interpretation was trained on."
        )
    lead = shape[:-k] if len(shape) > 2 else shape[:1]
    if saelens_batch is not None:
        check_int(saelens_batch, "saelens_batch", minimum=1)
        if distributed:
            raise InputError("`saelens_batch` is not available with distributed=True; score on one process.")
    if mask is None and exclude_positions is None and interp is None and len(shape) <= 2 and saelens_batch is None:
        return Prepared(activations, reconstruction, codes)

    def flat(a, name):
        if a is None:
            return None
        s = tuple(int(v) for v in a.shape)
        if len(s) > 2:
            if s[: len(lead)] != lead:
                raise InputError(f"`{name}` has shape {s} but `activations` has {shape}; they must match token for token.")
            a = a.reshape(int(np.prod(lead)), -1)
        return a

    n = int(np.prod(lead))
    x2 = flat(x, "activations")
    keep = None
    desc = ""
    if mask is not None or exclude_positions is not None:
        keep = np.ones(lead, dtype=bool) if mask is None else _bool_mask(mask, lead)
        if exclude_positions is not None:
            ep = exclude_positions
            if isinstance(ep, (str, bytes, bool)) or not hasattr(ep, "__iter__") or not all(
                isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)) for p in ep
            ):
                raise InputError(f"`exclude_positions` must be a tuple of integer positions, e.g. (0,); got {describe(ep)}.")
            pos = [int(p) for p in ep]
            if pos:
                if len(lead) < 2:
                    raise InputError(
                        f"`exclude_positions` needs a sequence axis, but the activations have shape {shape} (tokens, "
                        "width); pass (B, L, d) activations or `mask` with one boolean per token."
                    )
                bad = [p for p in pos if not -lead[1] <= p < lead[1]]
                if bad:
                    raise InputError(f"`exclude_positions` {bad} out of range: the sequences have {lead[1]} positions.")
                keep = keep.copy()
                keep[:, pos] = False
            desc = ", ".join((["mask"] if mask is not None else []) + ([f"positions {tuple(pos)}"] if pos else []))
        else:
            desc = "mask"
        if not keep.any():
            raise InputError(
                f"`mask`/`exclude_positions` ({desc}) exclude every one of the {n} tokens; True marks a token that "
                "counts — check the mask's polarity."
            )
    keep_flat = None if keep is None else keep.reshape(-1)
    n_keep = n if keep_flat is None else int(keep_flat.sum())

    def take(a):
        if a is None or keep_flat is None or keep_flat.all():
            return a
        if isinstance(a, torch.Tensor):
            return a[torch.as_tensor(keep_flat, device=a.device)]
        return np.asarray(a[np.flatnonzero(keep_flat)]) if not isinstance(a, np.ndarray) else a[keep_flat]

    out = Prepared(take(x2), None, None, excluded=desc if n_keep < n else "", n_excluded=n - n_keep)
    if interp is not None:
        if codes is not None:
            raise InputError("`codes` is read from the interpretation object; pass one or the other.")
        d = int(x2.shape[1])
        if chunk_rows is None:
            chunk_rows = max(256, 2**23 // d)
        xs = out.x
        recon = np.empty((n_keep, d), dtype=np.float32 if _is_single(xs) else np.float64)
        nz = 0.0
        active = None
        for lo in range(0, n_keep, int(chunk_rows)):
            hi = min(n_keep, lo + int(chunk_rows))
            xc = xs[lo:hi]
            xt = xc if isinstance(xc, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(xc))
            xh, c = interp.with_codes(xt)
            recon[lo:hi] = xh.detach().cpu().numpy()
            if c is not None:
                nzc = (c != 0)
                nz += float(nzc.sum())
                a = nzc.any(dim=0).cpu().numpy()
                active = a if active is None else (active | a)
        out.xhat = recon
        if active is not None:
            out.nz_rows, out.active = nz, active
    else:
        out.xhat = take(flat(reconstruction, "reconstruction")) if reconstruction is not None else None
        out.codes = take(flat(codes, "codes"))
    if out.xhat is None:
        raise InputError("`reconstruction` is required: an (N, d) array, or the interpretation object (SAE).")
    if tuple(out.xhat.shape) != tuple(out.x.shape):
        raise InputError(
            f"`reconstruction` has shape {tuple(reconstruction.shape)} but `activations` has shape {shape}; they "
            "must match token for token."
        )
    if saelens_batch is not None:
        out.legacy = _legacy_by_batch(out.x, out.xhat, lead, keep_flat, int(saelens_batch), len(shape) > 2)
    return out


def _is_single(a: Any) -> bool:
    dt = getattr(a, "dtype", None)
    return str(dt).endswith(("float32", "float16", "bfloat16"))


def _legacy_by_batch(x, xhat, lead, keep_flat, per_batch: int, sequences: bool):
    """SAELens' ``explained_variance_legacy``: per token ``1 − ‖r‖²/‖x − x̄_b‖²`` with ``x̄_b`` the
    mean over the kept tokens of its batch of ``per_batch`` sequences (tokens for 2-D input)."""
    per_row = int(np.prod(lead[1:])) if sequences else 1
    n_lead = int(lead[0])
    # kept-row index where each batch of `per_batch` leading rows starts
    if keep_flat is None:
        counts = np.full(n_lead, per_row)
    else:
        counts = keep_flat.reshape(n_lead, -1).sum(axis=1)
    bounds = np.concatenate([[0], np.cumsum(counts)])
    total = 0.0
    tokens = 0
    for b0 in range(0, n_lead, per_batch):
        lo, hi = int(bounds[b0]), int(bounds[min(n_lead, b0 + per_batch)])
        if hi <= lo:
            continue
        xb = _f64(x[lo:hi])
        rb = xb - _f64(xhat[lo:hi])
        c = xb - xb.mean(axis=0)
        total += float(np.sum(1.0 - (rb * rb).sum(axis=1) / (c * c).sum(axis=1)))
        tokens += hi - lo
    return total, tokens


def _f64(a):
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    return np.asarray(a, dtype=np.float64)
