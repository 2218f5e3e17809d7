"""The knockout protocol: missed features with a known answer, on the user's own activations.

Latents of a working interpretation are removed from its reconstruction, so their decoder
contributions move into the residual: features the interpretation "missed", whose directions are
known exactly. A twin at exactly the same FVU (the full reconstruction plus Gaussian noise) is the
control: both residuals have the same size, only one carries the missed features.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from pft._results import JsonResult
from pft._deprecation import renamed_keywords
from pft._validate import as_matrix, check_choice, check_float, check_int, check_seed, describe
from pft.errors import InputError

__all__ = ["Knockout", "knockout", "select_latents", "latent_stats", "best_cosines"]

_CHUNK = 8192


def best_cosines(truth: Any, found: Any) -> np.ndarray:
    """For each row of ``truth`` (k, d), the largest ``|cos|`` with any row of ``found`` (m, d)
    (0 when ``found`` is empty)."""
    T = np.atleast_2d(np.asarray(truth, dtype=np.float64))
    F = np.asarray(found, dtype=np.float64)
    if F.size == 0:
        return np.zeros(T.shape[0])
    F = np.atleast_2d(F)
    Tn = T / np.maximum(np.linalg.norm(T, axis=1, keepdims=True), np.finfo(float).tiny)
    Fn = F / np.maximum(np.linalg.norm(F, axis=1, keepdims=True), np.finfo(float).tiny)
    return np.abs(Tn @ Fn.T).max(axis=1)


@dataclass(frozen=True)
class Knockout(JsonResult):
    """A knockout and its twin at the same FVU (see :func:`knockout`).

    Attributes
    ----------
    knockout_reconstruction : (N, d) ndarray
        The full reconstruction minus the knocked-out latents' decoder contributions.
    twin_reconstruction : (N, d) ndarray
        The full reconstruction plus Gaussian noise scaled so that its residual has exactly the
        knockout's ``Σ_t ‖r_t‖²`` (same MSE, same FVU).
    latents : (k,) ndarray of int
        The knocked-out latents.
    directions : (k, d) ndarray
        Their unit decoder directions: the ground truth a direction finder should recover.
    firing_rate : (k,) ndarray
        Fraction of tokens on which each latent is non-zero.
    energy_share : (k,) ndarray
        ``Σ_t ‖c_ti dec_i‖² / Σ_t ‖x_t − x̄‖²``: each latent's contribution as a share of the
        activations' total variance.
    fvu, fvu_full : float
        FVU of the knockout (= the twin's) and of the full reconstruction.
    noise_scale : float
        The factor ``a`` on the unit noise draw in the twin.
    twin : str
        ``"covariance"`` or ``"isotropic"``.
    seed : int
    """

    knockout_reconstruction: np.ndarray = field(repr=False)
    twin_reconstruction: np.ndarray = field(repr=False)
    latents: np.ndarray
    directions: np.ndarray = field(repr=False)
    firing_rate: np.ndarray
    energy_share: np.ndarray
    fvu: float
    fvu_full: float
    noise_scale: float
    twin: str
    seed: int

    def to_dict(self) -> dict[str, Any]:
        """Plain types, without the two (N, d) reconstructions (their shape is kept)."""
        out = super().to_dict()
        for name in ("knockout_reconstruction", "twin_reconstruction"):
            out[name] = {"shape": list(getattr(self, name).shape)}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Knockout":
        """Inverse of :meth:`to_dict`, so ``Knockout.from_json(k.to_json())`` has the same
        ``to_dict()`` as ``k``. The two (N, d) reconstructions are not stored in the JSON: they
        come back as read-only NaN arrays of their shape (no memory is allocated for them).

        Examples
        --------
        >>> k = Knockout.from_dict({
        ...     "knockout_reconstruction": {"shape": [100, 3]}, "twin_reconstruction": {"shape": [100, 3]},
        ...     "latents": [2], "directions": [[1.0, 0.0, 0.0]], "firing_rate": [0.1],
        ...     "energy_share": [0.05], "fvu": 0.3, "fvu_full": 0.25, "noise_scale": 0.4,
        ...     "twin": "covariance", "seed": 0})
        >>> k.knockout_reconstruction.shape, bool(np.isnan(k.twin_reconstruction).all())
        ((100, 3), True)
        >>> Knockout.from_json(k.to_json()).to_dict() == k.to_dict()
        True
        """
        kw = dict(d)
        for name in ("knockout_reconstruction", "twin_reconstruction"):
            v = kw[name]
            shape = tuple(int(n) for n in (v["shape"] if isinstance(v, dict) else np.shape(v)))
            kw[name] = np.asarray(v, dtype=float) if not isinstance(v, dict) else np.broadcast_to(np.nan, shape)
        kw["latents"] = np.asarray(kw["latents"], dtype=np.int64)
        kw["directions"] = np.asarray(kw["directions"], dtype=float)
        if kw["directions"].ndim == 1:
            kw["directions"] = kw["directions"].reshape(len(kw["latents"]), -1)
        for name in ("firing_rate", "energy_share"):
            kw[name] = np.asarray(kw[name], dtype=float)
        for name in ("fvu", "fvu_full", "noise_scale"):
            kw[name] = float(kw[name])
        kw["twin"], kw["seed"] = str(kw["twin"]), int(kw["seed"])
        return cls(**kw)

    def recall(self, found: Any, *, threshold: float = 0.9) -> tuple[int, np.ndarray]:
        """``(number of knocked-out directions matched at |cos| ≥ threshold, best |cos| of each)``
        among the rows of ``found`` (e.g. ``report.nongaussian_directions``)."""
        cos = best_cosines(self.directions, found)
        return int(np.sum(cos >= threshold)), cos

    def __str__(self) -> str:
        lines = [
            f"Knockout of {len(self.latents)} latents: FVU {self.fvu_full:.4f} -> {self.fvu:.4f} "
            f"(twin: full reconstruction + {self.twin} Gaussian noise at the same FVU)",
            f"  {'latent':>7} {'firing rate':>12} {'energy share':>13}",
        ]
        for i, f, e in zip(self.latents, self.firing_rate, self.energy_share):
            lines.append(f"  {int(i):>7} {f:>12.4f} {e:>13.4f}")
        return "\n".join(lines)


def _decoder_parts(interpretation: Any, d: int):
    """(encode(x_chunk) -> (n, m) numpy codes, decoder rows (m, d) as applied, bias (d,))."""
    if isinstance(interpretation, (tuple, list)):
        if len(interpretation) not in (2, 3):
            raise InputError(
                "`interpretation` as arrays must be (codes, decoder) or (codes, decoder, bias); "
                f"got a {type(interpretation).__name__} of length {len(interpretation)}."
            )
        codes = interpretation[0]
        dec = as_matrix(interpretation[1], "interpretation decoder")
        bias = np.zeros(d) if len(interpretation) == 2 else np.asarray(interpretation[2], dtype=np.float64).reshape(-1)
        if not hasattr(codes, "shape") or len(codes.shape) != 2:
            raise InputError(f"`interpretation` codes must be an (N, m) array; got {describe(codes)}.")
        return ("codes", codes), dec, bias
    enc, decode = getattr(interpretation, "encode", None), getattr(interpretation, "decode", None)
    if not (callable(enc) and callable(decode)):
        raise InputError(
            "`interpretation` must expose codes and decoder rows: an object with encode/decode (the SAELens "
            f"shape, pft.models.TopKSAE) or a tuple (codes, decoder[, bias]) of arrays; got {describe(interpretation)}."
        )
    import torch

    W = getattr(interpretation, "W_dec", None)
    if W is None or getattr(W, "ndim", 0) != 2:
        raise InputError("`interpretation` has encode/decode but no 2-D `W_dec` (m, d); pass (codes, decoder) arrays instead.")
    m = int(W.shape[0])
    with torch.no_grad():
        zero = decode(torch.zeros((1, m), dtype=W.dtype, device=W.device))
        # an affine decoder: decode(c) = c·D + b; D's rows are read off unit codes
        D = decode(torch.eye(m, dtype=W.dtype, device=W.device)) - zero
    bias = zero.double().cpu().numpy().reshape(-1)
    dec = D.double().cpu().numpy()

    def encode(xc: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            t = torch.as_tensor(xc).to(dtype=W.dtype, device=W.device)
            c = enc(t)
            if isinstance(c, (tuple, list)):
                raise InputError("`interpretation.encode` returned a tuple (sparsify shape); pass (codes, decoder) arrays.")
            return c.double().cpu().numpy()

    return ("encode", encode), dec, bias


def _code_chunks(src, x, N: int):
    kind, obj = src
    for lo in range(0, N, _CHUNK):
        hi = min(N, lo + _CHUNK)
        if kind == "codes":
            c = as_matrix(obj[lo:hi], "interpretation codes", row_offset=lo)
        else:
            c = obj(np.asarray(x[lo:hi], dtype=np.float64))
        yield lo, hi, c


def latent_stats(activations: Any, interpretation: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(firing_rate, energy_share)`` of every latent of ``interpretation`` on ``activations``
    (same conventions as :class:`Knockout`)."""
    x = as_matrix(activations, "activations")
    N, d = x.shape
    src, dec, _ = _decoder_parts(interpretation, d)
    fires = np.zeros(dec.shape[0])
    c2 = np.zeros(dec.shape[0])
    for _, _, c in _code_chunks(src, x, N):
        fires += (c != 0).sum(axis=0)
        c2 += (c * c).sum(axis=0)
    total = float(((x - x.mean(axis=0)) ** 2).sum())
    return fires / N, c2 * np.sum(dec * dec, axis=1) / total


@renamed_keywords(n="n_latents")
def select_latents(
    activations: Any,
    interpretation: Any,
    n_latents: int,
    *,
    by: str = "energy",
    firing_rate: float | None = None,
    exclude: Sequence[int] = (),
) -> np.ndarray:
    """Pick ``n_latents`` latents to knock out.

    ``by="energy"``: the ``n_latents`` with the largest energy share. ``by="rate"``: the
    ``n_latents`` whose firing rate is closest to ``firing_rate`` on a log scale (dead latents
    never). Latents in ``exclude`` are never picked. (``n=`` is a deprecated spelling of
    ``n_latents``.)

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> dec = np.eye(4)
    >>> codes = rng.exponential(size=(1000, 4)) * [1.0, 3.0, 0.5, 2.0]
    >>> select_latents(codes @ dec, (codes, dec), 2).tolist()   # the two most energetic
    [1, 3]
    """
    check_choice(by, "by", ("energy", "rate"))
    fr, en = latent_stats(activations, interpretation)
    n = check_int(n_latents, "n_latents", minimum=1, maximum=len(fr))
    ok = fr > 0
    ok[list(exclude)] = False
    if by == "energy":
        key = -en
    else:
        if firing_rate is None:
            raise InputError("`firing_rate` must be a number in (0, 1] with by='rate'; got None.")
        check_float(firing_rate, "firing_rate", minimum=0, maximum=1, exclusive_minimum=True)
        key = np.abs(np.log(np.maximum(fr, 1e-300)) - math.log(firing_rate))
    idx = np.flatnonzero(ok)
    if len(idx) < n:
        raise InputError(f"only {len(idx)} live latents are eligible; asked for {n}.")
    return idx[np.argsort(key[idx], kind="stable")[:n]]


def knockout(
    activations: Any,
    interpretation: Any,
    latents: Sequence[int],
    *,
    twin: str = "covariance",
    seed: int = 0,
) -> Knockout:
    """Knock latents out of an interpretation's reconstruction and build its same-FVU twin.

    Parameters
    ----------
    activations : (N, d) array
    interpretation : object or tuple
        Something that exposes codes and decoder rows: an object with ``encode``/``decode`` and a
        ``W_dec`` (m, d) (the SAELens shape, :class:`pft.models.TopKSAE`; its decoder must be
        affine, ``decode(c) = c·D + b``, and ``D`` is read off ``decode`` so any output scaling is
        included), or arrays ``(codes (N, m), decoder (m, d))`` or ``(codes, decoder, bias (d,))``
        with ``x̂ = codes·decoder + bias``.
    latents : sequence of int
        The latents to knock out (see :func:`select_latents`).
    twin : {"covariance", "isotropic"}, default "covariance"
        The twin's noise: Gaussian with the covariance of the full reconstruction's residual, or
        isotropic with the same total variance. It is scaled so that the twin's residual has
        exactly the knockout's sum of squares.
    seed : int, default 0
        Seeds the twin's noise.

    Returns
    -------
    Knockout

    Notes
    -----
    With ``r = x − x̂`` the full residual, ``c_S·D_S`` the knocked-out contributions and ``z`` a
    unit-scale noise draw, the knockout's residual is ``r + c_S·D_S`` and the twin's is
    ``r − a z``, with ``a ≥ 0`` the root of ``a²‖z‖² − 2a⟨r, z⟩ + ‖r‖² = ‖r + c_S·D_S‖²``
    (Frobenius norms over all tokens).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> dec = np.linalg.qr(rng.normal(size=(8, 6)))[0][:, :6].T          # 6 unit decoder rows, d = 8
    >>> codes = rng.exponential(size=(2000, 6)) * (rng.random((2000, 6)) < 0.2)
    >>> x = codes @ dec + 0.1 * rng.normal(size=(2000, 8))
    >>> ko = knockout(x, (codes, dec), [2, 4], seed=0)
    >>> fvu = lambda rec: ((x - rec) ** 2).sum() / ((x - x.mean(0)) ** 2).sum()
    >>> bool(np.isclose(fvu(ko.knockout_reconstruction), fvu(ko.twin_reconstruction)))
    True
    >>> ko.recall(dec[[4, 2]])[0]
    2
    """
    x = as_matrix(activations, "activations")
    N, d = x.shape
    check_choice(twin, "twin", ("covariance", "isotropic"))
    check_seed(seed)
    src, dec, bias = _decoder_parts(interpretation, d)
    if dec.shape[1] != d:
        raise InputError(f"the interpretation's decoder has width {dec.shape[1]} but `activations` has d = {d}.")
    if bias.shape != (d,):
        raise InputError(f"the interpretation's bias must have shape ({d},); got {bias.shape}.")
    m = dec.shape[0]
    S = np.asarray(latents)
    if S.ndim != 1 or S.size == 0 or not np.issubdtype(S.dtype, np.integer) or S.min() < 0 or S.max() >= m:
        raise InputError(f"`latents` must be a non-empty list of integers in [0, {m}); got {latents!r}.")
    if len(np.unique(S)) != len(S):
        raise InputError(f"`latents` has repeats: {latents!r}.")
    norms = np.linalg.norm(dec[S], axis=1)
    if np.any(norms == 0):
        raise InputError(f"latents {S[norms == 0].tolist()} have zero decoder rows; nothing to knock out.")
    if src[0] == "codes" and src[1].shape[0] != N:
        raise InputError(f"`interpretation` codes have {src[1].shape[0]} rows but `activations` has {N}.")
    rec_full = np.empty((N, d))
    rec_ko = np.empty((N, d))
    fires = np.zeros(len(S))
    c2 = np.zeros(len(S))
    for lo, hi, c in _code_chunks(src, x, N):
        if c.shape != (hi - lo, m):
            raise InputError(f"the interpretation's codes have shape {c.shape}; expected ({hi - lo}, {m}).")
        full = c @ dec + bias
        cs = c[:, S]
        rec_full[lo:hi] = full
        rec_ko[lo:hi] = full - cs @ dec[S]
        fires += (cs != 0).sum(axis=0)
        c2 += (cs * cs).sum(axis=0)
    total = float(((x - x.mean(axis=0)) ** 2).sum())
    r = x - rec_full
    F0 = float(np.sum(r * r))
    T = float(np.sum((x - rec_ko) ** 2))
    rng = np.random.default_rng(seed)
    g = rng.standard_normal((N, d))
    if twin == "covariance":
        rc = r - r.mean(axis=0)
        lam, V = np.linalg.eigh(rc.T @ rc / N)
        z = g @ (V * np.sqrt(np.clip(lam, 0.0, None))).T
    else:
        z = g * math.sqrt(float(np.sum((r - r.mean(axis=0)) ** 2)) / N / d)
    Z, C = float(np.sum(z * z)), float(np.sum(r * z))
    disc = C * C + Z * (T - F0)
    if Z == 0 or disc < 0:
        raise InputError(
            "no Gaussian twin reaches the knockout's FVU: the knockout's residual is smaller than the full "
            f"reconstruction's (sum of squares {T:.6g} < {F0:.6g}) by more than noise can make up."
        )
    a = (C + math.sqrt(disc)) / Z
    return Knockout(
        knockout_reconstruction=rec_ko,
        twin_reconstruction=rec_full + a * z,
        latents=S.astype(np.int64),
        directions=dec[S] / norms[:, None],
        firing_rate=fires / N,
        energy_share=c2 * norms**2 / total,
        fvu=T / total,
        fvu_full=F0 / total,
        noise_scale=a,
        twin=twin,
        seed=int(seed),
    )
