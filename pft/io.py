"""Reading activations and writing results: .npy (memory-mapped), .safetensors, .pt.

``.pt`` files are read with ``torch.load(..., weights_only=True)``: pft never unpickles.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Iterator

import numpy as np

from pft.errors import InputError

__all__ = ["load_array", "iter_chunks", "RowReader", "SUFFIXES"]

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


_ST_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "BF16": "bf16",
              "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8, "U8": np.uint8}


def _npy_layout(path: str, name: str) -> tuple[int, tuple, np.dtype, bool]:
    with open(path, "rb") as fh:
        try:
            major, _ = np.lib.format.read_magic(fh)
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        except ValueError as exc:
            raise InputError(f"`{name}`: {path} is not a plain .npy file ({exc}).") from exc
        return fh.tell(), shape, dtype, fortran


def _safetensors_layout(path: str, key: str | None, name: str) -> tuple[int, tuple, Any]:
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        header = json.loads(fh.read(n))
    header.pop("__metadata__", None)
    entry = _pick(header, key, path, name)
    dt = _ST_DTYPES.get(entry["dtype"])
    if dt is None:
        raise InputError(f"`{name}`: {path} stores dtype {entry['dtype']}, which pft does not read.")
    return 8 + n + entry["data_offsets"][0], tuple(entry["shape"]), dt


def _read_rows(fh, offset: int, row_bytes: int, start: int, stop: int, dtype, d: int) -> np.ndarray:
    fh.seek(offset + start * row_bytes)
    raw = fh.read((stop - start) * row_bytes)
    if isinstance(dtype, str):  # bfloat16: the top half of a float32
        u = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
        return u.view(np.float32).reshape(stop - start, d)
    return np.frombuffer(raw, dtype=dtype).reshape(stop - start, d)


def iter_chunks(path: str | os.PathLike, *, chunk_rows: int = 65536, name: str = "path") -> Iterator[np.ndarray]:
    """Yield (rows, d) chunks of a 2-D array on disk with memory bounded by one chunk.

    Reads ``.npy`` and ``.safetensors`` (``FILE:NAME`` picks a tensor) with plain file reads —
    no memory map, so the pages read do not stay resident — and a directory of such shards
    in sorted name order. Feed the iterator to :meth:`pft.numeric.GaussianBackground.fit` or
    :meth:`pft.numeric.Moments.from_chunks` to fit a file larger than memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.arange(10.0).reshape(5, 2))
    >>> [c.shape for c in iter_chunks(p, chunk_rows=2)]
    [(2, 2), (2, 2), (1, 2)]
    """
    if not isinstance(chunk_rows, (int, np.integer)) or chunk_rows < 1:
        raise InputError(f"`chunk_rows` must be a positive integer; got {chunk_rows!r}.")
    path, key = _split_key(os.fspath(path))
    if os.path.isdir(path):
        shards = sorted(f for f in os.listdir(path) if f.lower().endswith((".npy", ".safetensors")))
        if not shards:
            raise InputError(f"`{name}`: directory {path!r} holds no .npy or .safetensors shards.")
        d0 = None
        for f in shards:
            for chunk in iter_chunks(os.path.join(path, f) + (f":{key}" if key else ""), chunk_rows=chunk_rows, name=name):
                if d0 is not None and chunk.shape[1] != d0:
                    raise InputError(f"`{name}`: shard {f} has {chunk.shape[1]} columns, earlier shards {d0}.")
                d0 = chunk.shape[1]
                yield chunk
        return
    reader = RowReader(path + (f":{key}" if key else ""), name=name)
    n = reader.shape[0]
    for a in range(0, n, int(chunk_rows)):
        yield reader[a : min(n, a + int(chunk_rows))]


class RowReader:
    """A 2-D array on disk read by row ranges with plain file reads (``.npy``, ``.safetensors``).

    ``reader[a:b]`` returns rows ``a … b−1`` as a numpy array; nothing else stays in memory, and
    unlike a memory map the pages read do not stay in the process's resident set. Pass it to
    :func:`pft.residual.score` to score files larger than memory.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.arange(10.0).reshape(5, 2))
    >>> r = RowReader(p)
    >>> r.shape, r[1:3].tolist()
    ((5, 2), [[2.0, 3.0], [4.0, 5.0]])
    """

    def __init__(self, path: str | os.PathLike, *, name: str = "path") -> None:
        path, key = _split_key(os.fspath(path))
        if not os.path.exists(path):
            raise InputError(f"`{name}`: no such file {path!r}.")
        lower = path.lower()
        if lower.endswith(".npy"):
            offset, shape, dtype, fortran = _npy_layout(path, name)
            if fortran:
                raise InputError(
                    f"`{name}`: {path} is stored in Fortran order; rows cannot be streamed. Re-save it C-contiguous."
                )
            if dtype.hasobject:
                raise InputError(f"`{name}`: {path} holds Python objects; pft never unpickles.")
        elif lower.endswith(".safetensors"):
            offset, shape, dtype = _safetensors_layout(path, key, name)
        else:
            raise InputError(f"`{name}`: streaming reads .npy, .safetensors or a directory of them; got {path}.")
        if len(shape) != 2:
            raise InputError(f"`{name}`: {path} holds an array of shape {shape}; streaming needs 2-D (tokens x features).")
        self.path, self.shape, self.dtype, self._offset = path, tuple(shape), dtype, offset
        self._itemsize = 2 if isinstance(dtype, str) else np.dtype(dtype).itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise InputError("RowReader supports row ranges reader[a:b] only.")
        a, b, _ = index.indices(self.shape[0])
        b = max(a, b)
        with open(self.path, "rb") as fh:
            return _read_rows(fh, self._offset, self.shape[1] * self._itemsize, a, b, self.dtype, self.shape[1])

    def __repr__(self) -> str:
        return f"RowReader({self.path!r}, shape={self.shape})"
