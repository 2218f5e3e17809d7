"""Reading activations and writing results: .npy (memory-mapped), .safetensors, .pt.

``.pt`` files are read with ``torch.load(..., weights_only=True)``: pft never unpickles.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any, Iterator

import numpy as np

from pft._validate import check_int
from pft.errors import InputError

__all__ = ["load_array", "iter_chunks", "RowReader", "SUFFIXES"]

SUFFIXES = (".npy", ".safetensors", ".pt", ".pth")


def _split_key(path: str, name: str) -> tuple[str, str | None]:
    # "file.safetensors:name" selects one tensor of several.
    low = path.lower()
    for suf in SUFFIXES:
        marker = suf + ":"
        i = low.rfind(marker)
        if i >= 0 and not os.path.exists(path):
            head, key = path[: i + len(suf)], path[i + len(marker) :]
            if not key:
                raise InputError(f"`{name}`: {path!r} ends in ':' but names no tensor; write FILE:NAME or just FILE.")
            return head, key
    return path, None


def _pick(tensors: dict, key: str | None, path: str, name: str):
    if key is not None:
        if key not in tensors:
            raise InputError(f"`{name}`: {path} has no tensor {key!r}; it has {sorted(tensors)[:8]}.")
        return tensors[key]
    if len(tensors) != 1:
        raise InputError(
            f"`{name}`: {path} holds {len(tensors)} tensors {sorted(tensors)[:8]}; "
            f"choose one with {path}:NAME."
        )
    return next(iter(tensors.values()))


def _check_file(path: str, name: str) -> int:
    """The file's size; a missing path or a directory is an InputError."""
    if not os.path.exists(path):
        raise InputError(f"`{name}`: no such file {path!r}.")
    if os.path.isdir(path):
        raise InputError(f"`{name}`: {path!r} is a directory; pass a .npy, .safetensors or .pt file.")
    try:
        return os.path.getsize(path)
    except OSError as exc:
        raise InputError(f"`{name}`: cannot read {path!r} ({exc.strerror or exc}).") from exc


def load_array(path: str | os.PathLike, *, name: str = "path") -> Any:
    """Load a 2-D array of activations from disk without unpickling anything.

    Parameters
    ----------
    path : str or PathLike
        ``.npy`` (memory-mapped, read-only), ``.safetensors`` (memory-mapped; bfloat16 comes back
        as a torch tensor) or ``.pt``/``.pth`` (a tensor, or a dict of tensors read with
        ``weights_only=True``). Append ``:NAME`` to choose one tensor from a file that holds
        several (``acts.safetensors:resid_post``); a ``:NAME`` that names nothing is an error.
    name : str
        The argument name used in error messages.

    Returns
    -------
    numpy.ndarray or numpy.memmap or torch.Tensor

    Raises
    ------
    pft.errors.InputError
        Before anything is allocated, when what a header declares does not fit the file: a
        ``.npy`` whose shape × dtype is not its size, a datetime, string, void, structured,
        complex or object dtype; a ``.safetensors`` header that is not JSON, runs past the end of
        the file, lacks a dtype/shape/offsets, has negative, overlapping or past-the-end
        offsets or a span that is not shape × dtype; a ``.pt`` meta tensor.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "x.npy")
    >>> np.save(p, np.ones((3, 2), dtype=np.float32))
    >>> load_array(p).shape
    (3, 2)
    """
    path, key = _split_key(os.fspath(path), name)
    size = _check_file(path, name)
    lower = path.lower()
    if lower.endswith(".npy"):
        if key is not None:
            raise InputError(f"`{name}`: {path} is a .npy file, which holds one array; ':{key}' names nothing in it.")
        offset, shape, dtype, fortran = _npy_layout(path, name, size)
        if int(np.prod(shape, dtype=object)) == 0:
            return np.zeros(shape, dtype=dtype)
        try:
            return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F" if fortran else "C")
        except (ValueError, OSError) as exc:
            raise InputError(f"`{name}`: could not map {path} ({exc}).") from exc
    if lower.endswith(".safetensors"):
        offset, shape, dtype, key = _safetensors_layout(path, key, name, size)
        if dtype == "bf16":  # no numpy dtype: torch reads that one tensor
            from safetensors import safe_open

            with safe_open(path, framework="pt") as fh:
                return fh.get_tensor(key)
        if int(np.prod(shape, dtype=object)) == 0:
            return np.zeros(shape, dtype=dtype)
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)
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
        elif key is not None:
            raise InputError(f"`{name}`: {path} holds one {type(obj).__name__}, not a dict; ':{key}' names nothing in it.")
        if not isinstance(obj, torch.Tensor):
            raise InputError(f"`{name}`: {path} holds a {type(obj).__name__}, not a tensor.")
        if obj.is_meta:
            raise InputError(f"`{name}`: {path} holds a meta tensor (a shape without data); save the real tensor.")
        return obj
    raise InputError(
        f"`{name}`: unsupported file type {os.path.splitext(path)[1] or '(none)'!r} for {path}; "
        f"use one of {', '.join(SUFFIXES)}."
    )


# safetensors dtype -> numpy dtype (little-endian, as the format stores); bf16 has none.
_ST_DTYPES = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "BF16": "bf16", "I64": "<i8", "I32": "<i4",
              "I16": "<i2", "I8": "i1", "U64": "<u8", "U32": "<u4", "U16": "<u2", "U8": "u1", "BOOL": "?"}
_ST_MAX_HEADER = 100_000_000  # the format's own limit


def _npy_layout(path: str, name: str, size: int | None = None) -> tuple[int, tuple, np.dtype, bool]:
    """Offset of the data, shape, dtype and Fortran flag of a .npy file, after checking that the
    header is a plain numeric array's and that shape × itemsize is exactly what the file holds."""
    if size is None:
        size = _check_file(path, name)
    with open(path, "rb") as fh:
        try:
            major, _ = np.lib.format.read_magic(fh)
            if major not in (1, 2):
                raise ValueError(f"format version {major}.x (pft reads 1.0 and 2.0)")
            read = np.lib.format.read_array_header_1_0 if major == 1 else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(fh)
        except Exception as exc:  # numpy raises ValueError, SyntaxError, EOFError, ... on bad headers
            raise InputError(f"`{name}`: {path} is not a plain .npy file ({exc}).") from exc
        offset = fh.tell()
    if dtype.hasobject:
        raise InputError(f"`{name}`: {path} holds Python objects; pft never unpickles.")
    if dtype.names is not None or dtype.subdtype is not None or dtype.kind not in "biuf":
        what = {"M": "datetimes", "m": "time deltas", "U": "unicode strings", "S": "byte strings",
                "V": "raw (void) records", "c": "complex numbers"}.get(dtype.kind, f"dtype {dtype}")
        if dtype.names is not None:
            what = f"structured records {dtype.names[:6]}"
        raise InputError(
            f"`{name}`: {path} holds {what} (dtype {dtype.str!r}); pft reads real numbers only "
            "(float, int, bool). Convert to a float array first."
        )
    if any(not isinstance(s, int) or s < 0 for s in shape):
        raise InputError(f"`{name}`: {path} declares an impossible shape {shape}.")
    need = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if offset + need != size:
        raise InputError(
            f"`{name}`: {path} declares shape {shape} of {dtype} ({need} bytes after its {offset}-byte header) "
            f"but the file holds {size - offset}: it is {'truncated' if offset + need > size else 'not a plain .npy file'}."
        )
    return offset, tuple(shape), dtype, fortran


def _safetensors_header(path: str, name: str, size: int) -> tuple[int, dict]:
    """The parsed, checked header of a .safetensors file and the offset of its data."""
    if size < 8:
        raise InputError(f"`{name}`: {path} is {size} bytes, too short to be a .safetensors file.")
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        if n > min(_ST_MAX_HEADER, size - 8):
            raise InputError(
                f"`{name}`: {path} declares a {n}-byte header but holds {size - 8} bytes after the length; "
                "not a .safetensors file (or truncated)."
            )
        raw = fh.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InputError(f"`{name}`: {path} has a header that is not JSON ({exc}); not a .safetensors file.") from None
    if not isinstance(header, dict):
        raise InputError(f"`{name}`: {path} has a header that is not a JSON object; not a .safetensors file.")
    data = size - 8 - n
    spans = []
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        if not isinstance(entry, dict) or not {"dtype", "shape", "data_offsets"} <= set(entry):
            raise InputError(f"`{name}`: {path}: tensor {key!r} lacks dtype, shape or data_offsets in the header.")
        dt, shape, offs = entry["dtype"], entry["shape"], entry["data_offsets"]
        if not isinstance(dt, str) or dt not in _ST_DTYPES:
            raise InputError(
                f"`{name}`: {path}: tensor {key!r} has dtype {dt!r}, which pft does not read "
                f"(it reads {', '.join(_ST_DTYPES)})."
            )
        if not isinstance(shape, list) or any(type(s) is not int or s < 0 for s in shape):
            raise InputError(f"`{name}`: {path}: tensor {key!r} has an impossible shape {shape!r}.")
        if (not isinstance(offs, list) or len(offs) != 2 or any(type(o) is not int for o in offs)
                or not 0 <= offs[0] <= offs[1] <= data):
            raise InputError(
                f"`{name}`: {path}: tensor {key!r} has data_offsets {offs!r} outside the {data} data bytes "
                "(negative, reversed or past the end of the file)."
            )
        itemsize = 2 if dt == "BF16" else np.dtype(_ST_DTYPES[dt]).itemsize
        need = int(np.prod(shape, dtype=object)) * itemsize
        if offs[1] - offs[0] != need:
            raise InputError(
                f"`{name}`: {path}: tensor {key!r} of shape {shape} and dtype {dt} needs {need} bytes "
                f"but its data_offsets span {offs[1] - offs[0]}."
            )
        spans.append((offs[0], offs[1], key))
    spans.sort()
    for (a0, a1, ka), (b0, b1, kb) in zip(spans, spans[1:]):
        if b0 < a1:
            raise InputError(f"`{name}`: {path}: tensors {ka!r} and {kb!r} overlap in the file (bytes {b0}–{a1}).")
    return 8 + n, header


def _safetensors_layout(path: str, key: str | None, name: str, size: int | None = None) -> tuple[int, tuple, Any, str]:
    if size is None:
        size = _check_file(path, name)
    base, header = _safetensors_header(path, name, size)
    header.pop("__metadata__", None)
    if not header:
        raise InputError(f"`{name}`: {path} holds no tensors.")
    entry = _pick(header, key, path, name)
    if key is None:
        key = next(iter(header))
    return base + entry["data_offsets"][0], tuple(entry["shape"]), _st_dtype(entry["dtype"]), key


def _st_dtype(dt: str) -> Any:
    v = _ST_DTYPES[dt]
    return v if v == "bf16" else np.dtype(v)


def _read_rows(fh, offset: int, row_bytes: int, start: int, stop: int, dtype, d: int) -> np.ndarray:
    fh.seek(offset + start * row_bytes)
    want = (stop - start) * row_bytes
    raw = fh.read(want)
    if len(raw) != want:
        raise InputError(
            f"{getattr(fh, 'name', 'the file')} ended after {len(raw)} of the {want} bytes of rows {start}–{stop - 1}: "
            "it was truncated while being read."
        )
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
    chunk_rows = check_int(chunk_rows, "chunk_rows", minimum=1)
    path, key = _split_key(os.fspath(path), name)
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
        path, key = _split_key(os.fspath(path), name)
        size = _check_file(path, name)
        lower = path.lower()
        if lower.endswith(".npy"):
            if key is not None:
                raise InputError(f"`{name}`: {path} is a .npy file, which holds one array; ':{key}' names nothing in it.")
            offset, shape, dtype, fortran = _npy_layout(path, name, size)
            if fortran and len(shape) == 2 and min(shape) > 1:
                raise InputError(
                    f"`{name}`: {path} is stored in Fortran order; rows cannot be streamed. Re-save it C-contiguous."
                )
        elif lower.endswith(".safetensors"):
            offset, shape, dtype, _ = _safetensors_layout(path, key, name, size)
        else:
            raise InputError(f"`{name}`: streaming reads .npy, .safetensors or a directory of them; got {path}.")
        if len(shape) != 2:
            raise InputError(f"`{name}`: {path} holds an array of shape {shape}; streaming needs 2-D (tokens x features).")
        if shape[0] == 0 or shape[1] == 0:
            raise InputError(f"`{name}`: {path} holds an empty array of shape {shape}; pass at least one token and one feature.")
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
