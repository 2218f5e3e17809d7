"""Arrays that are numpy or torch: one code path for the host and for a torch device.

Private. The numeric passes are written once against a few operations that behave the same on
numpy arrays and torch tensors. Heavy per-row work (products with d × d matrices) stays on the
rows' device; what comes back to the host is small — per-row numbers, d-vectors, d × d sums —
and is always float64 numpy. Fitted parameters live on the host as numpy and are copied to the
rows' device when used (``like``), which costs O(d²) per chunk against the chunk's O(n d²).

The one device rule. ``device=None`` means numpy on the host for the numeric passes
(:func:`resolve_device`), and, for code that runs a torch model (``patch_scores``, the model
loaders), the model's own device (:func:`torch_device` with ``default=`` the model). A device
that is given is validated once, here; nothing else in pft chooses a device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Iterator

import numpy as np

from pft._validate import as_matrix, check_finite, describe
from pft.errors import InputError

__all__ = [
    "is_tensor", "host", "like", "like_dtype", "single", "matmul_precision", "rowsq", "rowdot", "concat",
    "resolve_device", "torch_device", "module_device", "to_device", "as_device_matrix", "tensor_from_numpy",
]


def is_tensor(a: Any) -> bool:
    return type(a).__module__.split(".")[0] == "torch"


def host(a: Any) -> np.ndarray:
    """float64 numpy copy (or view) of an array, scalar or tensor on any device."""
    if is_tensor(a):
        import torch

        return a.detach().to(device="cpu", dtype=torch.float64).numpy()
    return np.asarray(a, dtype=np.float64)


def like(a: Any, ref: Any) -> Any:
    """``a`` (numpy) in the backend of ``ref``: unchanged for numpy, a float64 (or bool) tensor
    on ``ref``'s device for torch."""
    if not is_tensor(ref):
        return a
    import torch

    if is_tensor(a):
        return a.to(ref.device)
    arr = np.asarray(a)
    dtype = torch.bool if arr.dtype == bool else torch.float64
    return torch.as_tensor(np.ascontiguousarray(arr), dtype=dtype, device=ref.device)


def like_dtype(a: Any, ref: Any) -> Any:
    """``a`` (numpy or tensor) in the backend, device and dtype of ``ref`` (so that a product
    with ``ref`` runs in ``ref``'s precision)."""
    if not is_tensor(ref):
        return np.asarray(host(a) if is_tensor(a) else a, dtype=ref.dtype)
    return like(a, ref).to(ref.dtype)


def single(a: Any, scale: float = 1.0) -> Any:
    """A float32 copy of an array or tensor (times ``scale``, applied before the cast), in its
    own backend and on its own device."""
    if scale != 1.0:
        a = a * scale
    if is_tensor(a):
        import torch

        return a.to(torch.float32)
    return np.asarray(a, dtype=np.float32)


@contextlib.contextmanager
def matmul_precision(precision: str) -> Iterator[None]:
    """Within the block, torch's float32 matrix products use TF32 tensor cores when
    ``precision`` is ``"tf32"`` and full float32 otherwise; the previous setting comes back on
    exit (numpy products are unaffected)."""
    import torch

    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high" if precision == "tf32" else "highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(previous)


def rowsq(a: Any) -> Any:
    """Squared norm of each row."""
    return (a * a).sum(dim=1) if is_tensor(a) else np.einsum("ij,ij->i", a, a)


def rowdot(a: Any, b: Any) -> Any:
    """Dot product of matching rows."""
    return (a * b).sum(dim=1) if is_tensor(a) else np.einsum("ij,ij->i", a, b)


def concat(parts: list, width: int, ref: Any = None) -> Any:
    """Rows of ``parts`` stacked (an empty (0, width) block in ``ref``'s backend if none)."""
    if parts and is_tensor(parts[0]):
        import torch

        return torch.cat(parts)
    if parts:
        return np.concatenate(parts)
    return like(np.zeros((0, width)), ref)


def tensor_from_numpy(arr: np.ndarray) -> Any:
    """``torch.from_numpy`` of a C-contiguous copy or view; a read-only array (a memmap opened
    with ``mmap_mode="r"``) is copied first, since torch warns on memory it may not write."""
    import torch

    arr = np.ascontiguousarray(arr)
    if not arr.flags.writeable:
        arr = arr.copy()
    return torch.from_numpy(arr)


def resolve_device(device: Any, name: str = "device") -> Any:
    """``None`` (numpy on the host) or a validated ``torch.device``."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"`{name}` must be a torch device such as 'cpu' or 'cuda:0'; got {device!r}.") from exc
    if dev.type == "meta":
        raise InputError(f"`{name}` is 'meta', which holds shapes without data; pass device=None, 'cpu' or 'cuda'.")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"`{name}` is {device!r} but torch sees no CUDA device; pass device=None or 'cpu'.")
    return dev


def module_device(module: Any) -> Any:
    """The ``torch.device`` of a module's first parameter (else its first buffer); CPU for a
    module that holds neither.

    Examples
    --------
    >>> import torch
    >>> module_device(torch.nn.Linear(2, 2)), module_device(torch.nn.Identity())
    (device(type='cpu'), device(type='cpu'))
    """
    import torch

    for tensors in (module.parameters, module.buffers):
        t = next(iter(tensors()), None)
        if t is not None:
            return t.device
    return torch.device("cpu")


def torch_device(device: Any, *, default: Any = None, name: str = "device") -> Any:
    """A validated ``torch.device`` for code that runs torch: ``device`` when given (checked as
    :func:`resolve_device` checks it), else the device of ``default`` (a module, see
    :func:`module_device`), else the CPU.

    Examples
    --------
    >>> import torch
    >>> torch_device(None), torch_device("cpu"), torch_device(None, default=torch.nn.Linear(1, 1))
    (device(type='cpu'), device(type='cpu'), device(type='cpu'))
    """
    import torch

    if device is not None:
        return resolve_device(device, name)
    if default is not None:
        return module_device(default)
    return torch.device("cpu")


def to_device(obj: Any, device: Any) -> Any:
    """``obj`` with every tensor moved to ``device``, through Mappings (a plain dict comes back:
    ``model(**batch)`` takes any Mapping), tuples and lists; anything else as is."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def as_device_matrix(
    x: Any, name: str, device: Any, *, row_offset: int = 0, of_rows: str = "", allow_empty: bool = False
) -> Any:
    """Validate a 2-D block of rows and return it as a float64 tensor on ``device``.

    The block travels in its own dtype (float32 activations cross the bus at half the bytes)
    and is upcast and checked for NaN/inf on the device; only a bad block is brought back to the
    host, to name the first bad position exactly as :func:`pft._validate.as_matrix` does.
    ``allow_empty``: accept (0, d) (a rank of a distributed run may hold no rows).
    """
    import torch

    if is_tensor(x):
        t = x.detach()
        if t.is_meta:
            raise InputError(f"`{name}` is a meta tensor (a shape without data); pass a tensor that holds values.")
    else:
        try:
            arr = np.asarray(x)
        except Exception:
            arr = None
        if arr is None or arr.dtype.kind not in "fiub":
            arr = as_matrix(x, name, row_offset=row_offset, of_rows=of_rows)  # raises, or converts
        try:
            t = tensor_from_numpy(arr)
        except TypeError:  # a dtype torch cannot take as-is (e.g. ml_dtypes bfloat16)
            t = torch.from_numpy(as_matrix(x, name, row_offset=row_offset, of_rows=of_rows))
    if t.ndim != 2 or (t.shape[0] == 0 and not allow_empty) or t.shape[1] == 0 or t.is_complex():
        as_matrix(t.cpu(), name)  # raises the precise message
    t = t.to(device=device).to(torch.float64)
    if not bool(torch.isfinite(t).all()):
        check_finite(t.cpu().numpy(), name, row_offset=row_offset, of_rows=of_rows)
        raise InputError(f"`{name}` ({describe(x)}) has non-finite values{of_rows}.")  # pragma: no cover
    return t
