"""Every bad input is refused cleanly and nothing the user owns is touched.

One row per case: a builder makes the files in a temporary folder and returns either a
``pft`` command line (run in-process through :func:`pft.cli.main`) or a callable (the API). Each
row asserts the outcome: exit status 2 (or a :class:`pft.errors.PftError`), a message matching
the row's pattern, no traceback, and every file in the folder byte-for-byte unchanged (sha256
before and after), with no file added or removed.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct

import numpy as np
import pytest
import torch

from pft.cli import main
from pft.errors import OutOfReachError, PftError

N, D = 200, 4


def _acts(seed=0):
    return np.random.default_rng(seed).standard_normal((N, D)).astype(np.float32)


def _pair(t, acts=None, recon=None, names=("a.npy", "r.npy")):
    a = _acts() if acts is None else acts
    r = a + 0.5 * _acts(1) if recon is None else recon
    np.save(t / names[0], a)
    np.save(t / names[1], r)
    return str(t / names[0]), str(t / names[1])


def _score(t, acts_path, *extra, recon=None):
    """`pft score ACTS RECON` with a good reconstruction unless one is given."""
    if recon is None:
        np.save(t / "good_r.npy", _acts(1))
        recon = str(t / "good_r.npy")
    return ["score", str(acts_path), str(recon), "--quiet", *extra]


def _npy_with_header(t, name, header: dict, body: bytes, version=(1, 0)):
    p = t / name
    with open(p, "wb") as fh:
        np.lib.format.write_array_header_1_0(fh, header) if version == (1, 0) else np.lib.format.write_array_header_2_0(fh, header)
        fh.write(body)
    return p


def _st(t, name, header, data=b"", length=None):
    """A .safetensors file with this header (a dict, or raw bytes) and data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    p = t / name
    p.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return p


def _f32(shape, offsets):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": list(offsets)}


def _store_args(t, store, *extra):
    return ["scaling", "--widths", "4", "--depths", "2", "--networks", "100", "--quiet", "--store", str(store), *extra]


def _record(networks=100, fmt="pft.scaling.Study/1"):
    key = {"activation": "relu", "width": 4, "depth": 2, "C_W": 2.0, "C_b": 0.0, "networks": networks,
           "method": "exact", "seed": 0}
    rec = {"key": key, "result": {"excess_kurtosis": 1.0}}
    if fmt:
        rec["format"] = fmt
    return json.dumps(rec, sort_keys=True)


# --------------------------------------------------------------------------------------- rows
# (id, builder(tmp_path) -> argv list or callable, pattern the message must match)
CASES = []


def case(pattern):
    def deco(fn):
        CASES.append(pytest.param(fn, pattern, id=fn.__name__))
        return fn

    return deco


# .npy files: header against file, dtypes, names
@case(r"declares shape \(1000000000000, 4\).*truncated")
def npy_declares_1e12_rows(t):
    p = _npy_with_header(t, "huge.npy", {"descr": "<f4", "fortran_order": False, "shape": (10**12, 4)}, b"\0" * 4000)
    return _score(t, p)


@case(r"truncated")
def npy_cut_short(t):
    np.save(t / "a.npy", _acts())
    p = t / "a.npy"
    p.write_bytes(p.read_bytes()[:-17])
    return _score(t, p)


@case(r"not a plain \.npy file")
def npy_trailing_bytes(t):
    np.save(t / "a.npy", _acts())
    with open(t / "a.npy", "ab") as fh:
        fh.write(b"extra")
    return _score(t, t / "a.npy")


@case(r"datetimes")
def npy_datetime(t):
    np.save(t / "a.npy", np.zeros((N, D), dtype="datetime64[s]"))
    return _score(t, t / "a.npy")


@case(r"time deltas")
def npy_timedelta(t):
    np.save(t / "a.npy", np.zeros((N, D), dtype="timedelta64[s]"))
    return _score(t, t / "a.npy")


@case(r"unicode strings")
def npy_unicode(t):
    np.save(t / "a.npy", np.full((N, D), "x"))
    return _score(t, t / "a.npy")


@case(r"byte strings")
def npy_bytes(t):
    np.save(t / "a.npy", np.full((N, D), b"x"))
    return _score(t, t / "a.npy")


@case(r"raw \(void\) records")
def npy_void(t):
    np.save(t / "a.npy", np.zeros((N, D), dtype="V4"))
    return _score(t, t / "a.npy")


@case(r"structured records \('a', 'b'\)")
def npy_structured(t):
    np.save(t / "a.npy", np.zeros((N, D), dtype=[("a", "<f4"), ("b", "<f4")]))
    return _score(t, t / "a.npy")


@case(r"Python objects; pft never unpickles")
def npy_object(t):
    np.save(t / "a.npy", np.array([[object()] * D] * N, dtype=object), allow_pickle=True)
    return _score(t, t / "a.npy")


@case(r"complex numbers")
def npy_complex(t):
    np.save(t / "a.npy", np.zeros((N, D), dtype=np.complex64))
    return _score(t, t / "a.npy")


@case(r"not a plain \.npy file")
def npy_not_npy_at_all(t):
    (t / "a.npy").write_text("tokens,features\n1,2\n")
    return _score(t, t / "a.npy")


@case(r"not a plain \.npy file")
def npy_empty_file(t):
    (t / "a.npy").write_bytes(b"")
    return _score(t, t / "a.npy")


@case(r"format version 3")
def npy_version_3(t):
    p = t / "a.npy"
    with open(p, "wb") as fh:
        np.lib.format.write_array(fh, _acts(), version=(3, 0))
    return _score(t, p)


@case(r"streaming needs 2-D")
def npy_one_d(t):
    np.save(t / "a.npy", np.ones(N, dtype=np.float32))
    return _score(t, t / "a.npy")


@case(r"streaming needs 2-D")
def npy_three_d(t):
    np.save(t / "a.npy", np.ones((N, 2, 2), dtype=np.float32))
    return _score(t, t / "a.npy")


@case(r"empty array of shape \(0, 4\)")
def npy_zero_rows(t):
    np.save(t / "a.npy", np.ones((0, D), dtype=np.float32))
    return _score(t, t / "a.npy")


@case(r"holds one array; ':bogus' names nothing")
def npy_colon_name_names_nothing(t):
    np.save(t / "a.npy", _acts())
    return _score(t, f"{t / 'a.npy'}:bogus")


@case(r"Fortran order")
def npy_fortran(t):
    np.save(t / "a.npy", np.asfortranarray(_acts()))
    return _score(t, t / "a.npy")


@case(r"`reconstruction` has shape \(10, 4\)")
def npy_shape_mismatch(t):
    a, _ = _pair(t)
    np.save(t / "short.npy", _acts()[:10])
    return _score(t, a, recon=t / "short.npy")


@case(r"`activations` has 1 NaN value.*\(first at row 199, column 2\)")
def npy_nan_in_last_row(t):
    a = _acts()
    a[-1, 2] = np.nan
    np.save(t / "a.npy", a)
    return _score(t, t / "a.npy")


@case(r"`reconstruction` has 1 inf value")
def npy_inf(t):
    r = _acts(1)
    r[5, 0] = np.inf
    np.save(t / "r.npy", r)
    np.save(t / "a.npy", _acts())
    return _score(t, t / "a.npy", recon=t / "r.npy")


# .safetensors headers
@case(r"header that is not JSON")
def st_bad_json(t):
    return _score(t, _st(t, "a.safetensors", b'{"acts": {"dtype": "F32", '))


@case(r"declares a 99999-byte header")
def st_header_past_eof(t):
    return _score(t, _st(t, "a.safetensors", {"acts": _f32((1, 1), (0, 4))}, b"\0" * 4, length=99999))


@case(r"too short to be a \.safetensors file")
def st_short_file(t):
    (t / "a.safetensors").write_bytes(b"\x05\0\0")
    return _score(t, t / "a.safetensors")


@case(r"tensor 'acts' lacks dtype, shape or data_offsets")
def st_missing_dtype(t):
    return _score(t, _st(t, "a.safetensors", {"acts": {"shape": [N, D], "data_offsets": [0, N * D * 4]}}, b"\0" * (N * D * 4)))


@case(r"dtype 'F8_E4M3', which pft does not read")
def st_unknown_dtype(t):
    return _score(t, _st(t, "a.safetensors", {"acts": {"dtype": "F8_E4M3", "shape": [N, D], "data_offsets": [0, N * D]}}, b"\0" * (N * D)))


@case(r"data_offsets \[-8, 3192\] outside")
def st_negative_offset(t):
    return _score(t, _st(t, "a.safetensors", {"acts": _f32((N, D), (-8, N * D * 4 - 8))}, b"\0" * (N * D * 4)))


@case(r"data_offsets \[0, 3200\] outside the 3000 data bytes")
def st_offset_past_eof(t):
    return _score(t, _st(t, "a.safetensors", {"acts": _f32((N, D), (0, N * D * 4))}, b"\0" * 3000))


@case(r"data_offsets \[3200, 0\] outside")
def st_reversed_offsets(t):
    return _score(t, _st(t, "a.safetensors", {"acts": _f32((N, D), (N * D * 4, 0))}, b"\0" * (N * D * 4)))


@case(r"needs 3200 bytes but its data_offsets span 1600")
def st_shape_not_span(t):
    return _score(t, _st(t, "a.safetensors", {"acts": _f32((N, D), (0, 1600))}, b"\0" * 1600))


@case(r"tensors 'acts' and 'recon' overlap")
def st_overlap(t):
    h = {"acts": _f32((N, D), (0, 3200)), "recon": _f32((N, D), (1600, 4800))}
    p = _st(t, "a.safetensors", h, b"\0" * 4800)
    return _score(t, f"{p}:acts")


@case(r"has no tensor 'bogus'")
def st_name_names_nothing(t):
    from safetensors.numpy import save_file

    save_file({"acts": _acts()}, str(t / "a.safetensors"))
    return _score(t, f"{t / 'a.safetensors'}:bogus")


@case(r"holds 2 tensors \['acts', 'recon'\]; choose one")
def st_two_tensors_no_name(t):
    from safetensors.numpy import save_file

    save_file({"acts": _acts(), "recon": _acts(1)}, str(t / "a.safetensors"))
    return _score(t, t / "a.safetensors")


@case(r"header that is not a JSON object")
def st_header_is_list(t):
    return _score(t, _st(t, "a.safetensors", [1, 2, 3]))


@case(r"ends in ':' but names no tensor")
def st_empty_name(t):
    from safetensors.numpy import save_file

    save_file({"acts": _acts()}, str(t / "a.safetensors"))
    return _score(t, f"{t / 'a.safetensors'}:")


@case(r"impossible shape \[-200, 4\]")
def st_negative_shape(t):
    return _score(t, _st(t, "a.safetensors", {"acts": _f32((-N, D), (0, 0))}))


@case(r"holds no tensors")
def st_only_metadata(t):
    return _score(t, _st(t, "a.safetensors", {"__metadata__": {"a": "b"}}))


# .pt files
@case(r"weights_only=True")
def pt_pickle(t):
    import fractions

    torch.save({"x": fractions.Fraction(1, 2)}, t / "a.pt")
    return _score(t, t / "a.pt")


@case(r"holds a list, not a tensor")
def pt_list(t):
    torch.save([1, 2, 3], t / "a.pt")
    return _score(t, t / "a.pt")


@case(r"holds one Tensor, not a dict; ':x' names nothing")
def pt_tensor_with_name(t):
    torch.save(torch.ones(N, D), t / "a.pt")
    return _score(t, f"{t / 'a.pt'}:x")


@case(r"meta tensor")
def pt_meta_tensor(t):
    torch.save(torch.empty(N, D, device="meta"), t / "a.pt")
    return _score(t, t / "a.pt")


@case(r"has no tensor 'recon'")
def pt_dict_missing_key(t):
    torch.save({"acts": torch.ones(N, D)}, t / "a.pt")
    return _score(t, f"{t / 'a.pt'}:recon")


@case(r"`codes` is 1-D; it must be 2-D")
def codes_one_d(t):
    a, r = _pair(t)
    np.save(t / "codes.npy", np.ones(N, dtype=np.float32))
    return ["score", a, r, "--codes", str(t / "codes.npy"), "--quiet"]


# paths and outputs
@case(r"no such file")
def path_missing(t):
    return _score(t, t / "nope.npy")


@case(r"is a directory")
def path_directory_as_input(t):
    (t / "d.npy").mkdir()
    return _score(t, t / "d.npy")


@case(r"unsupported file type '\.csv'")
def path_csv(t):
    (t / "a.csv").write_text("1,2\n")
    return _score(t, t / "a.csv")


@case(r"`--json` .* is also an input; pft never writes over what it reads")
def out_json_onto_acts(t):
    a, r = _pair(t)
    return ["score", a, r, "--json", a, "--quiet"]


@case(r"`--json` .* is also an input")
def out_json_onto_named_safetensors(t):
    from safetensors.numpy import save_file

    save_file({"acts": _acts(), "recon": _acts(1)}, str(t / "ar.safetensors"))
    p = str(t / "ar.safetensors")
    return ["score", f"{p}:acts", f"{p}:recon", "--json", p, "--quiet"]


@case(r"`--json` .* is also an input")
def out_json_onto_codes(t):
    a, r = _pair(t)
    np.save(t / "codes.npy", np.ones((N, 3), dtype=np.float32))
    return ["score", a, r, "--codes", str(t / "codes.npy"), "--json", str(t / "codes.npy"), "--quiet"]


@case(r"`--json` .* lies under .*a\.npy', which is a file, not a folder")
def out_under_a_file(t):
    a, r = _pair(t)
    return ["score", a, r, "--json", os.path.join(a, "out.json"), "--quiet"]


@case(r"`--json` .* folder .* does not exist; create it first")
def out_missing_folder(t):
    a, r = _pair(t)
    return ["score", a, r, "--json", str(t / "no" / "such" / "r.json"), "--quiet"]


@case(r"`--json` .* is a folder; give a file name")
def out_is_a_folder(t):
    a, r = _pair(t)
    (t / "out").mkdir()
    return ["score", a, r, "--json", str(t / "out"), "--quiet"]


@case(r"`--plot` .* unknown figure format '\.xyz'")
def out_unknown_plot_format_before_json(t):
    a, r = _pair(t)  # the JSON must not be written either: the folder's files are checked
    return ["score", a, r, "--json", str(t / "r.json"), "--plot", str(t / "r.xyz"), "--quiet"]


@case(r"`--plot` .* unknown figure format '\(no extension\)'")
def out_plot_without_extension(t):
    a, r = _pair(t)
    return ["score", a, r, "--plot", str(t / "figure"), "--quiet"]


@case(r"`--json` and `--plot` are the same file")
def out_json_equals_plot(t):
    a, r = _pair(t)
    return ["score", a, r, "--json", str(t / "r.png"), "--plot", str(t / "r.png"), "--quiet"]


@case(r"`--distributed` runs under torchrun")
def score_distributed_outside_torchrun(t):
    a, r = _pair(t)
    return ["score", a, r, "--distributed", "--quiet"]


@case(r"`--distributed` runs under torchrun")
def scaling_distributed_outside_torchrun(t):
    return ["scaling", "--widths", "4", "--depths", "2", "--networks", "100", "--distributed", "--quiet"]


@case(r"`--out` .* lies under .*, which is a file, not a folder")
def demo_out_under_a_file(t):
    (t / "f.txt").write_text("mine")
    return ["demo", "--out", str(t / "f.txt" / "sub"), "--quiet"]


@case(r"`--out` .* exists and is not a folder")
def catalog_out_is_a_file(t):
    (t / "f.txt").write_text("mine")
    return ["diagrams", "catalog", "--out", str(t / "f.txt")]


@case(r"`--plot` .* unknown figure format '\.xyz'")
def scaling_plot_unknown_format(t):
    return ["scaling", "--widths", "4", "--depths", "2", "--networks", "100", "--quiet", "--plot", str(t / "f.xyz")]


@case(r"`--store` .* is a folder")
def scaling_store_is_a_folder(t):
    (t / "s").mkdir()
    return _store_args(t, t / "s")


@case(r"`--plot` .* is also an input")
def scaling_plot_onto_store(t):
    (t / "s.jsonl").write_text(_record() + "\n")
    return _store_args(t, t / "s.jsonl", "--plot", str(t / "s.jsonl"))


# stores: proven before touched, refused and left as they are
@case(r"is not a pft scaling store \(its first bytes are not a study record\); it was left untouched")
def store_is_a_json_report(t):
    (t / "report.json").write_text(json.dumps({"fvu": 0.2, "rows": [1, 2, 3]}, indent=1))  # no final newline
    return _store_args(t, t / "report.json")


@case(r"is not a pft scaling store")
def store_is_an_npy(t):
    np.save(t / "acts.npy", _acts())
    return _store_args(t, t / "acts.npy")


@case(r"is not a pft scaling store")
def store_is_text(t):
    (t / "notes.txt").write_text("my notes\nsecond line without newline")
    return _store_args(t, t / "notes.txt")


@case(r"line 2 is not a study record")
def store_with_a_bad_middle_line(t):
    (t / "s.jsonl").write_text(_record() + "\n{oops}\n" + _record() + "\n")
    return _store_args(t, t / "s.jsonl")


@case(r"holds cells run with networks=50, method='exact', seed=0; this study asks networks=100")
def store_of_another_config(t):
    (t / "s.jsonl").write_text(_record(networks=50) + "\n")
    return _store_args(t, t / "s.jsonl")


@case(r"line 1 is not a study record of this pft")
def store_of_a_future_format(t):
    (t / "s.jsonl").write_text(_record(fmt="pft.scaling.Study/1").replace("Study/1", "Study/2") + "\n")
    return _store_args(t, t / "s.jsonl")


@case(r"its last line is neither a study record nor a record cut short")
def store_with_a_foreign_last_line(t):
    (t / "s.jsonl").write_text(_record() + "\n" + "[1, 2]")
    return _store_args(t, t / "s.jsonl")


# values
@case(r"`--seed` must be a non-negative integer.*; got -1\.")
def seed_negative_cli(t):
    a, r = _pair(t)
    return ["score", a, r, "--seed", "-1", "--quiet"]


@case(r"`--seed` must be a non-negative integer.*; got '1.5'")
def seed_float_cli(t):
    a, r = _pair(t)
    return ["score", a, r, "--seed", "1.5", "--quiet"]


@case(r"`--seed` must be a non-negative integer.*; got 'abc'")
def seed_string_cli(t):
    return ["scaling", "--seed", "abc", "--quiet"]


@case(r"`seed` must be a non-negative integer")
def seed_negative_api(t):
    from pft.residual import score

    a = _acts()
    return lambda: score(a, a + _acts(1), seed=-1, progress=False)


@case(r"`seed` must be a non-negative integer")
def seed_float_api(t):
    from pft.residual import score

    a = _acts()
    return lambda: score(a, a + _acts(1), seed=1.5, progress=False)


@case(r"`seed` must be a non-negative integer")
def seed_string_api(t):
    from pft.residual import score

    a = _acts()
    return lambda: score(a, a + _acts(1), seed="0", progress=False)


@case(r"`seed` must be a non-negative integer")
def seed_bool_api(t):
    from pft.toy import superposition

    return lambda: superposition(100, d=4, n_features=8, seed=True)


@case(r"`seed` must be a non-negative integer")
def seed_negative_background(t):
    from pft.numeric import PerturbativeBackground

    x = np.random.default_rng(0).standard_normal((400, 3))
    return lambda: PerturbativeBackground(n_directions=1, seed=-2).fit(x)


@case(r"`X` is a one-shot iterator .* pass a list of chunks, or a function returning a fresh iterator")
def perturbative_fit_on_a_generator(t):
    from pft.numeric import PerturbativeBackground

    x = np.random.default_rng(0).standard_normal((400, 3))
    return lambda: PerturbativeBackground(n_directions=1).fit(c for c in (x[:200], x[200:]))


@case(r"`X` is a Moments \(second-order statistics\); a perturbative background needs the rows")
def perturbative_fit_on_moments(t):
    from pft.numeric import Moments, PerturbativeBackground

    x = np.random.default_rng(0).standard_normal((400, 3))
    return lambda: PerturbativeBackground(n_directions=1).fit(Moments.from_array(x))


@case(r"`chunk_rows` must be an integer >= 1; got 2.5\.")
def massive_tokens_fractional_chunk(t):
    from pft.residual import massive_tokens

    return lambda: massive_tokens(np.ones((5, 4)), chunk_rows=2.5)


@case(r"`seed` must be a non-negative integer")
def seed_float_kurtosis_directions(t):
    from pft.numeric import kurtosis_directions

    w = np.random.default_rng(0).standard_normal((400, 3))
    return lambda: kurtosis_directions(w, 1, seed=0.5)


@case(r"`device` is 'meta'")
def device_meta_api(t):
    from pft.residual import score

    a = _acts()
    return lambda: score(a, a + _acts(1), device="meta", progress=False)


@case(r"`activations` is a meta tensor")
def meta_tensor_api(t):
    from pft.residual import score

    m = torch.empty(N, D, device="meta")
    return lambda: score(m, m, progress=False)


@case(r"`holdout` must be a finite number > 0 and < 1; got 1.5\.")
def holdout_out_of_range(t):
    a, r = _pair(t)
    return ["score", a, r, "--holdout", "1.5", "--quiet"]


@case(r"`n_directions` must be an integer >= 1 and <= 4; got 0\.")
def directions_zero(t):
    a, r = _pair(t)
    return ["score", a, r, "--directions", "0", "--quiet"]


# degenerate data: a clear error, never a silent 0, inf or NaN
@case(r"`activations` are the same vector for every token")
def constant_activations(t):
    a = np.ones((N, D), dtype=np.float32)
    a, r = _pair(t, acts=a, recon=a + _acts(1))
    return ["score", a, r, "--quiet"]


@case(r"at the rounding level of the float32 inputs")
def constant_float32_offset(t):
    a = _acts()
    a, r = _pair(t, acts=a, recon=a - np.float32(0.5))
    return ["score", a, r, "--quiet"]


@case(r"has zero variance on the training split")
def exact_reconstruction(t):
    a = _acts()
    a, r = _pair(t, acts=a, recon=a.copy())
    return ["score", a, r, "--quiet"]


@case(r"`activations` has values as large as .*e\+70")
def overflowing_magnitudes(t):
    a = _acts().astype(np.float64) * 1e70
    a, r = _pair(t, acts=a, recon=a * 0.5)
    return ["score", a, r, "--quiet"]


@case(r"`reconstruction` has values as large as 3e\+70")
def overflowing_reconstruction(t):
    a = _acts().astype(np.float64)
    r = a.copy()
    r[5, 2] = 3e70  # one entry: the row-norm bound triggers the exact maximum, which is named
    a, r = _pair(t, acts=a, recon=r)
    return ["score", a, r, "--quiet"]


@case(r"has RMS .*e-7\d, below 1e-60")
def underflowing_residual(t):
    a = _acts().astype(np.float64) * 1e-70
    a, r = _pair(t, acts=a, recon=a * 0.5)
    return ["score", a, r, "--quiet"]


@case(r"`--x` 1e\+308 is too far out")
def edgeworth_x_1e308(t):
    return ["edgeworth", "--cumulants", "0,1,0.3,0.2", "--x", "1e308"]


@case(r"`--x` must be comma-separated finite real numbers")
def edgeworth_x_not_a_number(t):
    return ["edgeworth", "--cumulants", "0,1,0.3,0.2", "--x", "inf"]


@case(r"`--order` must be an integer >= 0; got -1\.")
def edgeworth_negative_order(t):
    return ["edgeworth", "--order", "-1"]


# expressions and symbolic sizes: refused at once, naming the size and the knob
@case(r"exact Laplace expansion to order 5 in 1 variable is out of reach .* Lower `order` \(CLI --order\)")
def laplace_order_5(t):
    return ["laplace", "x**2/2 + a*x**3/6 + b*x**4/24", "--var", "x", "--order", "5", "--point", "0"]


@case(r"order 3 in 2 variables is out of reach")
def laplace_two_variables_order_3(t):
    return ["laplace", "x**2/2 + y**2/2 + a*x*y**2", "--var", "x,y", "--order", "3", "--point", "0,0"]


@case(r"symbolic Edgeworth series at order 6, dim 1 is out of reach .* Lower `order` \(CLI --order\)")
def edgeworth_order_6(t):
    return ["edgeworth", "--order", "6"]


@case(r"order 2, dim 5 is out of reach")
def edgeworth_dim_5(t):
    return ["edgeworth", "--order", "2", "--dim", "5"]


@case(r"7 loops with 0 external legs needs diagrams of up to 12 positions .* Lower `loops`")
def diagrams_loops_7(t):
    return ["diagrams", "--valences", "3", "--loops", "7"]


@case(r"3 loops with 6 external legs needs diagrams of up to 16 positions")
def diagrams_many_legs(t):
    return ["diagrams", "--valences", "3,4", "--loops", "3", "--external", "6"]


@case(r"1000000 loops with 0 external legs needs diagrams of up to 1999998 positions")
def diagrams_a_million_loops(t):
    return ["diagrams", "--valences", "3,4", "--loops", "1000000"]


@case(r"this vertex content with 0 external legs needs diagrams of up to 40 positions")
def diagrams_many_valence_two_vertices(t):
    return ["diagrams", "--valences", "2", "--vertices", "2:40"]


@case(r"nested too deeply")
def formula_deep_unary(t):
    return ["laplace", "x*" + "-" * 5000 + "x", "--var", "x"]


@case(r"too many nested parentheses|nested too deeply")
def formula_deep_parentheses(t):
    return ["laplace", "(" * 300 + "x" + ")" * 300, "--var", "x"]


@case(r"nested too deeply")
def formula_long_sum(t):
    return ["laplace", "+".join(["x**2"] * 1500), "--var", "x"]


@case(r"the exponent .* is larger than 1000")
def formula_huge_exponent(t):
    return ["laplace", "x**2 + 9**9**9**9", "--var", "x"]


@case(r"attribute access is not allowed")
def formula_injection(t):
    return ["laplace", "x.__class__", "--var", "x"]


@case(r"the function '__import__' is not allowed")
def formula_import(t):
    return ["laplace", "__import__('os')", "--var", "x"]


# --------------------------------------------------------------------------------------- runner
def _snapshot(root):
    out = {}
    for folder, _, names in os.walk(root):
        for n in names:
            p = os.path.join(folder, n)
            with open(p, "rb") as fh:
                out[os.path.relpath(p, root)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def test_the_table_has_at_least_60_rows():
    assert len(CASES) >= 60


@pytest.mark.parametrize("build, pattern", CASES)
def test_bad_input_is_refused_and_nothing_changes(build, pattern, tmp_path, capsys):
    (tmp_path / "bystander.txt").write_text("a file the command must not touch\n")
    what = build(tmp_path)
    before = _snapshot(tmp_path)
    capsys.readouterr()
    if callable(what):
        with pytest.raises(PftError) as info:
            what()
        message = str(info.value)
    else:
        rc = main(what)  # argparse's refusals too: main never exits, it returns the status
        err = capsys.readouterr().err
        assert rc == 2, err
        assert "Traceback" not in err
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"pft {what[0]}: error:"), err
        message = lines[0]
    assert __import__("re").search(pattern, message), message
    assert _snapshot(tmp_path) == before  # every input and bystander byte-for-byte, nothing added


def test_each_symbolic_guard_refuses_at_once():
    """The guards answer before any work (measured well under a second; the bound here is only
    generous so that a loaded machine cannot fail it)."""
    import time

    from pft.symbolic import correlator_diagrams, edgeworth, laplace_expansion, parse_expression

    x = parse_expression("x**2/2 + a*x**3/6 + b*x**4/24")
    for call in (
        lambda: laplace_expansion(x, "x", order=5, point=[0]),
        lambda: edgeworth(6),
        lambda: edgeworth(2, dim=5),
        lambda: correlator_diagrams(0, (3,), loops=7),
        lambda: correlator_diagrams(6, (3, 4), loops=3),
    ):
        t0 = time.perf_counter()
        with pytest.raises(OutOfReachError, match="out of reach|limited to 10 positions"):
            call()
        assert time.perf_counter() - t0 < 30.0


def test_disk_full_while_writing_leaves_the_old_output_and_exits_2(tmp_path, capsys, monkeypatch):
    import errno

    import pft._output

    a, r = _pair(tmp_path)
    out = tmp_path / "r.json"
    out.write_text("the previous report")

    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device", str(dst))

    monkeypatch.setattr(pft._output.os, "replace", full)
    rc = main(["score", a, r, "--json", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "No space left on device" in err
    assert out.read_text() == "the previous report"
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "r.json", "r.npy"]  # the temporary file is gone


def test_api_plots_are_written_atomically_and_background_seeds_are_checked(tmp_path, monkeypatch):
    # A plot that fails half-way through leaves no file (and an existing one untouched); a
    # GaussianBackground draw refuses a bad seed by name.
    import matplotlib.figure

    from pft.errors import InputError
    from pft.numeric import GaussianBackground
    from pft.residual import score
    from pft.toy import interpretations, superposition

    data = superposition(6000, d=16, n_features=48, seed=0)
    rep = score(data.activations, interpretations(data, fvu=0.2, n_missing=2, seed=0)["missing"].reconstruction,
                progress=False)
    out = tmp_path / "r.png"
    out.write_bytes(b"old")

    def broken(self, fname, *a, **k):
        with open(fname, "wb") as fh:
            fh.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken)
    with pytest.raises(OSError):
        rep.plot(str(out))
    assert out.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["r.png"]
    bg = GaussianBackground().fit(np.random.default_rng(0).standard_normal((50, 3)))
    for bad in (-1, 1.5, "a", True):
        with pytest.raises(InputError, match="`seed`"):
            bg.sample(3, seed=bad)
    assert bg.sample(3, seed=np.random.default_rng(1)).shape == (3, 3)
