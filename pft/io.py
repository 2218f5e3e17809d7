"""Reading activations and writing results: .npy (memory-mapped), .safetensors, .pt.

``.pt`` files are read with ``torch.load(..., weights_only=True)``: pft never unpickles.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from pft.errors import InputError

__all__ = ["load_array", "SUFFIXES"]

SUFFIXES = (".npy", ".safetensors", ".pt", ".pth")


def _split_key(path: str) -> tuple[str, str | None]:
    # "file.safetensors:name" selects one tensor of several.
    for suf in SUFFIXES:
        marker = suf + ":"
        if marker in path:
            head, key = path.split(marker, 1)
            return head + suf, key
    return path, None


def _pick(tensors: dict, key: str | None, path: str, name: str):
    if key is not None:
        if key not in tensors:
            raise InputError(f"`{name}`: {path} has no tensor {key!r}; it has {sorted(tensors)}.")
        return tensors[key]
    if len(tensors) != 1:
        raise InputError(
            f"`{name}`: {path} holds {len(tensors)} tensors {sorted(tensors)[:8]}; "
            f"choose one with {path}:NAME."
        )
    return next(iter(tensors.values()))


def load_array(path: str | os.PathLike, *, name: str = "path") -> Any:
    """Load a 2-D array of activations from disk without unpickling anything.

    Parameters
    ----------
    path : str or PathLike
        ``.npy`` (memory-mapped, read-only), ``.safetensors`` or ``.pt``/``.pth`` (a tensor, or
        a dict of tensors read with ``weights_only=True``). Append ``:NAME`` to choose one
        tensor from a file that holds several (``acts.safetensors:resid_post``).
    name : str
        The argument name used in error messages.

    Returns
    -------
    numpy.ndarray or numpy.memmap or torch.Tensor

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.ones((3, 2), dtype=np.float32))
    >>> load_array(p).shape
    (3, 2)
    """
    path, key = _split_key(os.fspath(path))
    if not os.path.exists(path):
        raise InputError(f"`{name}`: no such file {path!r}.")
    if os.path.isdir(path):
        raise InputError(f"`{name}`: {path!r} is a directory; pass a .npy, .safetensors or .pt file.")
    lower = path.lower()
    if lower.endswith(".npy"):
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except ValueError as exc:
            raise InputError(f"`{name}`: {path} is not a plain numeric .npy file ({exc}).") from exc
    if lower.endswith(".safetensors"):
        from safetensors.numpy import load_file

        try:
            tensors = load_file(path)
        except Exception as exc:
            # bfloat16 has no numpy dtype: fall back to torch.
            try:
                from safetensors.torch import load_file as load_torch

                tensors = load_torch(path)
            except Exception:
                raise InputError(f"`{name}`: could not read {path} as safetensors ({exc}).") from exc
        return _pick(tensors, key, path, name)
    if lower.endswith((".pt", ".pth")):
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise InputError(
                f"`{name}`: could not read {path} with torch.load(weights_only=True) ({type(exc).__name__}); "
                "pft only reads plain tensors or dicts of tensors."
            ) from exc
        if isinstance(obj, dict):
            obj = _pick(obj, key, path, name)
        if not isinstance(obj, torch.Tensor):
            raise InputError(f"`{name}`: {path} holds a {type(obj).__name__}, not a tensor.")
        return obj
    raise InputError(
        f"`{name}`: unsupported file type {os.path.splitext(path)[1] or '(none)'!r} for {path}; "
        f"use one of {', '.join(SUFFIXES)}."
    )
