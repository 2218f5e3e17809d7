"""Mutated .npy and .safetensors headers: every reader either reads what the file holds or
raises a pft error, never anything else, never allocates more than the file holds, and never
changes the file."""

from __future__ import annotations

import hashlib
import json
import os
import struct
import tempfile

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pft.errors import PftError
from pft.io import RowReader, iter_chunks, load_array

_X = np.arange(24, dtype=np.float32).reshape(6, 4)


def _npy_bytes() -> bytes:
    path = os.path.join(tempfile.mkdtemp(), "x.npy")
    np.save(path, _X)
    with open(path, "rb") as fh:
        return fh.read()


def _st_bytes() -> bytes:
    header = {"acts": {"dtype": "F32", "shape": [6, 4], "data_offsets": [0, 96]},
              "__metadata__": {"format": "pt"}}
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + _X.tobytes()


NPY, ST = _npy_bytes(), _st_bytes()
NPY_HEADER = NPY.index(b"\n") + 1  # the header ends with a newline
ST_HEADER = 8 + struct.unpack("<Q", ST[:8])[0]


@st.composite
def mutations(draw, data: bytes, header_end: int):
    """A few edits inside the header: overwrite bytes, insert, delete, or cut the file."""
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 4))):
        if not out:
            break
        kind = draw(st.sampled_from(["set", "insert", "delete", "digit", "cut"]))
        pos = draw(st.integers(0, max(0, min(header_end, len(out)) - 1)))
        if kind == "set":
            out[pos] = draw(st.integers(0, 255))
        elif kind == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del out[pos : pos + draw(st.integers(1, 4))]
        elif kind == "digit":  # numbers are what headers declare: shapes, offsets, lengths
            out[pos] = ord(draw(st.sampled_from("0123456789-e.")))
        else:
            del out[draw(st.integers(0, len(out))):]
    return bytes(out)


def _check(blob: bytes, suffix: str) -> None:
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, "m" + suffix)
    with open(path, "wb") as fh:
        fh.write(blob)
    digest = hashlib.sha256(blob).hexdigest()
    size = len(blob)
    for read in (
        lambda: load_array(path),
        lambda: RowReader(path)[0:3],
        lambda: sum(c.nbytes for c in iter_chunks(path, chunk_rows=2)),
    ):
        try:
            out = read()
        except PftError:
            continue
        nbytes = out if isinstance(out, int) else getattr(out, "nbytes", 0)
        assert nbytes <= size  # nothing beyond what the file holds was allocated
    with open(path, "rb") as fh:
        assert hashlib.sha256(fh.read()).hexdigest() == digest
    assert os.listdir(folder) == ["m" + suffix]


_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(mutations(NPY, NPY_HEADER))
def test_mutated_npy_headers(blob):
    _check(blob, ".npy")


@_SETTINGS
@given(mutations(ST, ST_HEADER))
def test_mutated_safetensors_headers(blob):
    _check(blob, ".safetensors")


@_SETTINGS
@given(st.dictionaries(st.sampled_from(["dtype", "shape", "data_offsets", "other"]),
                       st.one_of(st.integers(-2**70, 2**70), st.text(max_size=6),
                                 st.lists(st.integers(-2**40, 2**40), max_size=3), st.none())))
def test_arbitrary_safetensors_entries(entry):
    raw = json.dumps({"acts": entry}).encode()
    _check(struct.pack("<Q", len(raw)) + raw + _X.tobytes(), ".safetensors")
