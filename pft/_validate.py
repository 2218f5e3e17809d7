"""Input checks shared by every numeric entry point: fail at the boundary, name the argument.

Private: the public functions call these and document what they accept.

Every message has one form: ```name` must be <what is accepted>; got <what came in>.``
(sometimes followed by one sentence on what to do). Scalars are checked by :func:`check_int`,
:func:`check_float`, :func:`check_bool`, :func:`check_choice` and :func:`check_seed`; arrays by
:func:`as_matrix`. ``bool`` is never accepted where a number is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pft.errors import InputError

__all__ = [
    "as_matrix",
    "check_finite",
    "check_seed",
    "check_int",
    "check_float",
    "check_bool",
    "check_choice",
    "describe",
]


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



def _bound_text(lo: Any, hi: Any, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    return " and ".join(parts)


def check_int(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (Python or numpy; not bool, float or str) within ``[minimum, maximum]``.

    Examples
    --------
    >>> check_int(3, "n_tokens", minimum=1)
    3
    >>> check_int(True, "n_tokens", minimum=1)
    Traceback (most recent call last):
    ...
    pft.errors.InputError: `n_tokens` must be an integer >= 1; got True.
    """
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = int(value)
        ok = (minimum is None or v >= minimum) and (maximum is None or v <= maximum)
    if not ok:
        bounds = _bound_text(minimum, maximum, False, False)
        raise InputError(f"`{name}` must be an integer{' ' + bounds if bounds else ''}; got {value!r}.")
    return int(value)


def check_float(
    value: Any,
    name: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    allow_inf: bool = False,
) -> float:
    """A real number (int, float, numpy scalar; not bool or str), finite unless ``allow_inf``,
    within the bounds (closed unless ``exclusive_*``).

    Examples
    --------
    >>> check_float(0.5, "fvu", minimum=0, maximum=1)
    0.5
    >>> check_float(0.0, "lr", minimum=0, exclusive_minimum=True)
    Traceback (most recent call last):
    ...
    pft.errors.InputError: `lr` must be a finite number > 0; got 0.0.
    """
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    if ok:
        v = float(value)
        ok = not np.isnan(v) and (allow_inf or np.isfinite(v))
        if ok and minimum is not None:
            ok = v > minimum if exclusive_minimum else v >= minimum
        if ok and maximum is not None:
            ok = v < maximum if exclusive_maximum else v <= maximum
    if not ok:
        bounds = _bound_text(minimum, maximum, exclusive_minimum, exclusive_maximum)
        kind = "a number (or inf)" if allow_inf else "a finite number"
        raise InputError(f"`{name}` must be {kind}{' ' + bounds if bounds else ''}; got {value!r}.")
    return float(value)


def check_bool(value: Any, name: str) -> bool:
    """``True`` or ``False`` (numpy bools too; not 0/1 or strings).

    Examples
    --------
    >>> check_bool("yes", "progress")
    Traceback (most recent call last):
    ...
    pft.errors.InputError: `progress` must be True or False; got 'yes'.
    """
    if not isinstance(value, (bool, np.bool_)):
        raise InputError(f"`{name}` must be True or False; got {value!r}.")
    return bool(value)


def check_choice(value: Any, name: str, choices: Any) -> Any:
    """One of ``choices`` (compared with ``==``; strings are not case-folded).

    Examples
    --------
    >>> check_choice("features", "basis", ("features", "eigen"))
    'features'
    >>> check_choice("Eigen", "basis", ("features", "eigen"))
    Traceback (most recent call last):
    ...
    pft.errors.InputError: `basis` must be one of 'features', 'eigen'; got 'Eigen'.
    """
    choices = tuple(choices)
    try:
        hit = any(type(value) is type(c) and value == c for c in choices)
    except Exception:  # pragma: no cover - exotic __eq__
        hit = False
    if not hit:
        listed = ", ".join(repr(c) for c in choices)
        raise InputError(f"`{name}` must be one of {listed}; got {value!r}.")
    return value
