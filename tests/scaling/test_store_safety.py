"""The study store: never truncates a complete record, resumes stores without the format marker,
and two writers sharing one store lose nothing and duplicate nothing."""

import json
import multiprocessing as mp

from pft.scaling import Study
from pft.scaling._store import append_record as _append, read_store as _read_store

GRID = {"activation": "relu", "width": [4], "depth": [2, 3]}


def test_a_complete_last_record_without_newline_survives_a_different_grid(tmp_path):
    store = tmp_path / "s.jsonl"
    first = Study(GRID, n_networks=200, progress=False).run(store=store)
    data = store.read_bytes()
    store.write_bytes(data[:-1])  # the last record is complete but lost its newline
    other = Study({**GRID, "depth": [4]}, n_networks=200, progress=False).run(store=store)
    lines = store.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4  # two old records, one new, all whole
    assert store.read_bytes().startswith(data)  # the old bytes are all still there, in order
    again = Study(GRID, n_networks=200, progress=False).run(store=store)
    assert again.to_json() == first.to_json() and len(other.rows) == 1


def test_a_store_written_before_the_format_marker_is_read_and_extended(tmp_path):
    store = tmp_path / "old.jsonl"
    res = Study(GRID, n_networks=200, progress=False).run()
    legacy = b"".join((json.dumps(r, sort_keys=True) + "\n").encode() for r in res.rows)
    store.write_bytes(legacy)
    again = Study({**GRID, "depth": [2, 3, 4]}, n_networks=200, progress=False).run(store=store)
    assert store.read_bytes().startswith(legacy)
    assert [r["key"]["depth"] for r in again.rows] == [2, 3, 4]
    assert again.rows[0] == res.rows[0]


def _writer(path, depth):
    Study({**GRID, "depth": [depth, 9]}, n_networks=200, progress=False).run(store=path)


def test_two_writers_on_one_store(tmp_path):
    store = str(tmp_path / "shared.jsonl")
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store, d)) for d in (2, 3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    lines = (tmp_path / "shared.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    recs = [json.loads(x) for x in lines[:-1]]  # every line whole: appends never interleaved
    depths = sorted(r["key"]["depth"] for r in recs)
    assert set(depths) == {2, 3, 9} and len(recs) in (3, 4)  # depth 9 may be finished by both
    assert len(_read_store(tmp_path / "shared.jsonl")) == 3  # the reader keeps one record per cell


def test_append_after_a_killed_writer_does_not_glue_onto_its_torn_line(tmp_path):
    store = tmp_path / "s.jsonl"
    Study(GRID, n_networks=200, progress=False).run(store=store)
    whole = store.read_bytes()
    with open(store, "ab") as fh:
        fh.write(b'{"format": "pft.scaling.Study/1", "key": {"C_W"')  # another writer, killed
    rec = json.loads(whole.split(b"\n")[0])
    rec.pop("format")
    rec["key"]["depth"] = 7
    _append(store, rec)
    lines = store.read_bytes().split(b"\n")
    assert store.read_bytes().startswith(whole) and len(lines) == 4 and lines[-1] == b""
    assert json.loads(lines[2])["key"]["depth"] == 7


def test_a_read_only_store_with_every_cell_is_read_without_writing(tmp_path, monkeypatch):
    import pft.scaling._store as study_mod

    store = tmp_path / "s.jsonl"
    first = Study(GRID, n_networks=200, progress=False).run(store=store)
    with open(store, "ab") as fh:
        fh.write(b'{"format": "pft.scaling.Study/1", "ke')  # torn
    before = store.read_bytes()
    # the store is not writable for this user (patched: tests may run as root, whom modes do not bind)
    monkeypatch.setattr(study_mod.os, "access", lambda path, mode: False)
    again = Study(GRID, n_networks=200, progress=False).run(store=store)
    assert again.to_json() == first.to_json() and store.read_bytes() == before
