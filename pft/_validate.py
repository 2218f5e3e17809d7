"""Input checks shared by every numeric entry point: fail at the boundary, name the argument.

Private: the public functions call these and document what they accept.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pft.errors import InputError

__all__ = ["as_matrix", "check_finite", "check_seed", "describe"]


def describe(x: Any) -> str:
    """A short description of what came in, for error messages."""
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"{type(x).__name__} of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__}"


def _to_numpy(x: Any, name: str) -> np.ndarray:
    """numpy view of an array-like; torch tensors (any device, bfloat16 too) are copied to host."""
    mod = type(x).__module__
    if mod.startswith("torch"):
        t = x.detach()
        if t.is_meta:
            raise InputError(f"`{name}` is a meta tensor (a shape without data); pass a tensor that holds values.")
        if t.is_complex():
            raise InputError(f"`{name}` is a complex tensor; pft works with real activations.")
        if not t.is_floating_point() or t.dtype in _low_precision_torch():
            t = t.to(dtype=_torch_float64())
        return t.cpu().numpy()
    try:
        arr = np.asarray(x)
    except Exception as exc:  # pragma: no cover - exotic inputs
        raise InputError(f"`{name}` could not be read as an array ({describe(x)}): {exc}") from exc
    return arr


def _low_precision_torch():
    import torch

    return (torch.float16, torch.bfloat16)


def _torch_float64():
    import torch

    return torch.float64


def check_finite(arr: np.ndarray, name: str, *, row_offset: int = 0, of_rows: str = "") -> None:
    """Raise naming the count and first position of NaN/inf values (rows counted from
    ``row_offset``; ``of_rows`` says which rows were checked when only a block was)."""
    finite = np.isfinite(arr)
    if finite.all():
        return
    bad = ~finite
    count = int(bad.sum())
    first = np.argwhere(bad)[0]
    kinds = []
    if np.isnan(arr).any():
        kinds.append("NaN")
    if np.isinf(arr).any():
        kinds.append("inf")
    where = f"row {first[0] + row_offset}, column {first[1]}" if arr.ndim == 2 else f"index {tuple(first)}"
    raise InputError(
        f"`{name}` has {count} {'/'.join(kinds)} value{'s' if count != 1 else ''}{of_rows} "
        f"(first at {where}); pft does not impute — drop or fix those rows."
    )


def as_matrix(
    x: Any,
    name: str,
    *,
    min_rows: int = 1,
    dtype: Any = np.float64,
    copy: bool = False,
    row_offset: int = 0,
    of_rows: str = "",
) -> np.ndarray:
    """Validate a 2-D (tokens x features) array and return it as a float array.

    Integer, bool, float16 and bfloat16 inputs are upcast (to ``dtype``); float32 and float64
    are converted to ``dtype`` (float64 by default). 1-D input, empty input, complex input,
    non-finite values and fewer than ``min_rows`` rows raise :class:`~pft.errors.InputError`.
    """
    arr = _to_numpy(x, name)
    if arr.dtype == object:
        raise InputError(f"`{name}` must be a numeric array; got {describe(x)} with dtype object.")
    if np.iscomplexobj(arr):
        raise InputError(f"`{name}` is complex ({describe(x)}); pft works with real activations.")
    if arr.ndim != 2:
        hint = (
            " For one token use x[None, :]; for one feature use x[:, None]."
            if arr.ndim == 1
            else " Flatten leading axes first, e.g. x.reshape(-1, x.shape[-1])."
            if arr.ndim > 2
            else ""
        )
        raise InputError(
            f"`{name}` must be 2-D (tokens x features); got {arr.ndim}-D with shape {arr.shape}.{hint}"
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InputError(f"`{name}` is empty (shape {arr.shape}); pass at least one token and one feature.")
    if arr.shape[0] < min_rows:
        raise InputError(
            f"`{name}` has {arr.shape[0]} row{'s' if arr.shape[0] != 1 else ''}; at least {min_rows} are needed."
        )
    out = np.asarray(arr, dtype=dtype)
    if copy and out is arr:
        out = out.copy()
    check_finite(out, name, row_offset=row_offset, of_rows=of_rows)
    return out


def check_seed(seed: Any, name: str = "seed") -> int:
    """A seed: a non-negative integer below 2**63 (numpy integers too; not bool, float or str).

    Examples
    --------
    >>> check_seed(3)
    3
    >>> check_seed(-1)
    Traceback (most recent call last):
    ...
    pft.errors.InputError: `seed` must be a non-negative integer (below 2**63); got -1.
    """
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < 2**63:
        raise InputError(f"`{name}` must be a non-negative integer (below 2**63); got {seed!r}.")
    return int(seed)

