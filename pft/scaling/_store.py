"""The append-only, resumable JSON-lines store of a :class:`pft.scaling.Study`.

Every finished cell is one line written in one ``write`` and ``fsync``-ed under an advisory lock;
a file is proven to be a store from its first bytes before anything is read or touched, a torn
last line (a writer killed mid-write) is the only thing ever removed, and a store holds one
``networks``/``method``/``seed`` setting.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

from pft.distributed import Reducer
from pft.errors import InputError

__all__ = ["read_store", "append_record", "share_from_rank0", "FORMAT"]

# Every record is one JSON line written with sorted keys, so every line of a store begins with
# _PREFIX (stores written before the format marker begin with _LEGACY): the first bytes of a
# file prove whether it is a store before anything else is read or touched.
FORMAT = "pft.scaling.Study/1"
_PREFIX = ('{"format": "' + FORMAT + '", "key": {').encode()
_LEGACY = b'{"key": {"C_W": '
_CELL_FIELDS = {"activation", "width", "depth", "C_W", "C_b", "networks", "method", "seed"}
_CONFIG = ("networks", "method", "seed")


@contextlib.contextmanager
def _locked(fd: int):
    """An exclusive advisory lock on an open store (POSIX ``flock``; a no-op where there is none):
    two pft writers never interleave a repair and an append."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


def _not_a_store(path: Path, why: str) -> InputError:
    return InputError(
        f"`store` {str(path)!r} is not a pft scaling store ({why}); it was left untouched. "
        "Pass a new file name (it is created) or an existing store."
    )


def _looks_torn(fragment: bytes) -> bool:
    """A final line without its newline that a killed writer may have left: a JSON object cut
    short (it begins like one and does not parse)."""
    if not (_PREFIX.startswith(fragment[: len(_PREFIX)]) or fragment.startswith(b'{"')):
        return False
    try:
        json.loads(fragment)
    except (ValueError, RecursionError):
        return True
    return False


def _parse_record(line: bytes) -> dict | None:
    """``{"key", "result"}`` of one store line, or None when it is not a study record."""
    try:
        rec = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(rec, dict) or not isinstance(rec.get("key"), dict) or not isinstance(rec.get("result"), dict):
        return None
    if set(rec["key"]) != _CELL_FIELDS or rec.get("format", FORMAT) != FORMAT:
        return None
    return {"key": rec["key"], "result": rec["result"]}


def _repair_tail(fd: int, path: Path) -> None:
    """Under the lock: if the file does not end in a newline, keep a complete final record (add
    its newline) or drop a torn one (truncate to the last newline). Nothing else is changed."""
    size = os.fstat(fd).st_size
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    start = max(0, size - (1 << 20))  # a record is under a kilobyte
    os.lseek(fd, start, os.SEEK_SET)
    tail = os.read(fd, size - start)
    cut = tail.rfind(b"\n") + 1
    last = tail[cut:]
    if cut == 0 and start > 0:
        raise _not_a_store(path, "its last line is over a megabyte long")
    if _parse_record(last) is not None:
        os.lseek(fd, 0, os.SEEK_END)
        os.write(fd, b"\n")
    elif _looks_torn(last):
        os.ftruncate(fd, start + cut)
    else:
        raise _not_a_store(path, "its last line is neither a study record nor a record cut short")
    os.fsync(fd)


def read_store(path: Path, config: dict | None = None) -> dict[str, dict]:
    """Complete records of the store by key (first record of a key wins, so two writers that
    both finished a cell are harmless).

    The file is proven to be a store from its first bytes before anything else is read, a torn
    last line (a writer killed mid-write) is the only thing ever removed, a complete last line
    missing its newline is kept, and a store whose cells were run with other ``networks``,
    ``method`` or ``seed`` than ``config`` is refused.
    """
    if not path.exists():
        return {}
    if path.is_dir():
        raise InputError(f"`store` {str(path)!r} is a folder; pass a .jsonl file name.")
    with open(path, "rb") as fh:
        head = fh.read(len(_PREFIX))
    family = _PREFIX[: _PREFIX.index(b"/") + 1]  # any version: a newer one is named below
    if head and not (head.startswith((_LEGACY, family)) or (b"\n" not in head and _PREFIX.startswith(head))):
        raise _not_a_store(path, "its first bytes are not a study record")
    if os.access(path, os.W_OK):
        fd = os.open(path, os.O_RDWR)
        try:
            with _locked(fd):
                _repair_tail(fd, path)
                with open(path, "rb") as fh:
                    data = fh.read()
        finally:
            os.close(fd)
    else:  # a read-only store is read as it is; a torn last line is skipped, not cut
        data = path.read_bytes()
        cut = data.rfind(b"\n") + 1
        if cut < len(data) and _parse_record(data[cut:]) is None:
            data = data[:cut]
    records: dict[str, dict] = {}
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        rec = _parse_record(line)
        if rec is None:
            raise InputError(
                f"`store` {str(path)!r} line {lineno} is not a study record of this pft ({FORMAT}); "
                "the file was left untouched — use a new store file."
            )
        if config is not None:
            theirs = {k: rec["key"][k] for k in _CONFIG}
            if theirs != config:
                raise InputError(
                    f"`store` {str(path)!r} holds cells run with "
                    + ", ".join(f"{k}={theirs[k]!r}" for k in _CONFIG)
                    + "; this study asks "
                    + ", ".join(f"{k}={config[k]!r}" for k in _CONFIG)
                    + ". A store keeps one setting: use another store file, or the store's settings."
                )
        records.setdefault(json.dumps(rec["key"], sort_keys=True), rec)
    return records


def append_record(path: Path, record: dict) -> None:
    """Append one record as one line in one ``write``, under the store's lock, then ``fsync``."""
    line = (json.dumps({"format": FORMAT, **record}, sort_keys=True) + "\n").encode()
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        with _locked(fd):
            _repair_tail(fd, path)  # another writer killed mid-line must not glue onto this one
            os.lseek(fd, 0, os.SEEK_END)
            os.write(fd, line)
            os.fsync(fd)
    finally:
        os.close(fd)


def share_from_rank0(red: Reducer, obj):
    """Rank 0's JSON-able ``obj`` on every rank (JSON bytes over a sum all-reduce; never pickle)."""
    if not red.distributed:
        return obj
    data = json.dumps(obj).encode() if red.rank == 0 else b""
    size = int(red.sum(np.array([float(len(data))]))[0])
    buf = np.zeros(size)
    if red.rank == 0:
        buf[:] = np.frombuffer(data, dtype=np.uint8)
    return json.loads(red.sum(buf).astype(np.uint8).tobytes())
