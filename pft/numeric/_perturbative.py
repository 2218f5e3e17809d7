"""The perturbative background: a Gaussian plus third- and fourth-cumulant corrections."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._device import as_device_matrix, concat, host, is_tensor, like, resolve_device
from pft._validate import as_matrix
from pft.errors import InputError, NotFittedError
from pft.numeric._background import GaussianBackground
from pft.numeric._ica import kurtosis_directions
from pft.numeric._pursuit import search_and_select
from pft.numeric._moments import Moments
from pft.distributed import LocalReducer, Reducer, reducer, uniforms

__all__ = ["PerturbativeBackground", "sample_cumulants"]


def _block_rows(r: int) -> int:
    """Rows per block of the (rows, r²) outer-product matrices: 4 MiB each."""
    return max(16, 2**19 // (r * r))


class _CumulantSums:
    """Two passes over chunks of rows (a mean pass, then a central pass) that add up to the
    third and fourth joint cumulants with per-entry standard errors."""

    def __init__(self, r: int) -> None:
        self.r = r
        self.n = 0.0
        self.s1 = np.zeros(r)
        self.C = np.zeros((r, r))
        self.m3 = np.zeros((r, r, r))
        self.s3 = np.zeros((r, r, r))
        self.m4 = np.zeros((r, r, r, r))
        self.s4 = np.zeros((r, r, r, r))

    def add_mean(self, y: np.ndarray) -> None:
        self.n += y.shape[0]
        self.s1 += y.sum(axis=0)

    def set_mean(self, red: Reducer) -> None:
        self.n = float(red.sum(self.n))
        self.mean = red.sum(self.s1) / self.n

    def add_central(self, y: np.ndarray) -> None:
        # every sum is a Gram product of per-row outer products (r² columns), so the r⁴ tensors
        # come from one matrix product per chunk instead of r⁴-wide elementwise work:
        # Σ z_i z_j z_k z_l = (VᵀV)_(ij)(kl) with V = z ⊗ z, and the squares' sums likewise from
        # a = z ∘ z.
        z = y - self.mean
        r = self.r
        self.C += z.T @ z
        step = _block_rows(r)
        for a in range(0, z.shape[0], step):
            zc = z[a : a + step]
            sq = zc * zc
            V = (zc[:, :, None] * zc[:, None, :]).reshape(len(zc), r * r)
            U = (sq[:, :, None] * sq[:, None, :]).reshape(len(zc), r * r)
            self.m3 += (V.T @ zc).reshape(r, r, r)
            self.s3 += (U.T @ sq).reshape(r, r, r)
            self.m4 += (V.T @ V).reshape(r, r, r, r)
            self.s4 += (U.T @ U).reshape(r, r, r, r)

    def result(self, red: Reducer) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        N = self.n
        C, m3, s3, m4, s4 = (red.sum(t) / N for t in (self.C, self.m3, self.s3, self.m4, self.s4))
        k3_se = np.sqrt(np.maximum(s3 - m3**2, 0.0) / N)
        k4_se = np.sqrt(np.maximum(s4 - m4**2, 0.0) / N)
        gauss = (
            np.einsum("ij,kl->ijkl", C, C) + np.einsum("ik,jl->ijkl", C, C) + np.einsum("il,jk->ijkl", C, C)
        )
        return m3, k3_se, m4 - gauss, k4_se


def sample_cumulants(
    y: np.ndarray, *, reduce: Reducer | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Third and fourth joint cumulant tensors of the columns of ``y`` (N, r), with the
    standard error of every entry.

    Returns ``(k3, k3_se, k4, k4_se)`` with ``k3`` of shape (r, r, r) and ``k4`` (r, r, r, r).
    ``k4_ijkl = E[y_i y_j y_k y_l] − C_ij C_kl − C_ik C_jl − C_il C_jk`` about the sample mean,
    ``C`` the sample covariance. The standard errors are ``std(product)/√N`` of the per-token
    products, which is what the estimate's sampling noise is to leading order. With a
    distributed ``reduce`` the rows of all ranks count.
    """
    red = reduce or LocalReducer()
    acc = _CumulantSums(y.shape[1])
    acc.add_mean(y)
    acc.set_mean(red)
    acc.add_central(y)
    return acc.result(red)


def _soft_threshold(k: np.ndarray, se: np.ndarray, t: float) -> np.ndarray:
    return np.sign(k) * np.maximum(np.abs(k) - t * se, 0.0)


class PerturbativeBackground:
    """A Gaussian background times a cumulant (Edgeworth-type) correction on a few directions.

    In the whitened coordinates ``w`` of the Gaussian fit, the data are projected on ``r``
    orthonormal directions ``y = B w``; along them the density is corrected with the third and
    fourth joint cumulants, in the other whitened directions it stays standard normal.

    Parameters
    ----------
    n_directions : int, default 8
        Number ``r`` of corrected directions.
    basis : {"features", "ica", "principal"}, default "features"
        ``"features"``: candidate missed features (:func:`pft.numeric.feature_directions`:
        sparse-coding atoms and skew-and-kurtosis pursuit optima); three quarters of the
        choosing half search, the last quarter selects the best ``r`` (orthonormalised in
        whitened space for the correction; the selected directions themselves are
        ``selected_``). ``"ica"``: the directions of extreme excess kurtosis (symmetric FastICA). To keep
        selection and fitting noise from reading as structure, the rows are split at random:
        one half chooses the directions, a quarter estimates the cumulants, a quarter
        calibrates their amplitude. ``"principal"``: the top-r principal directions (half the
        rows estimate, half calibrate). Ignored when ``directions`` is given.
    directions : (r, d) array, optional
        Activation-space *patterns* to correct along (rows need not be orthogonal; they are
        mapped to whitened space by ``Σ^{-1/2}`` and orthonormalised there).
    order : {1, 2}, default 2
        1: third cumulants only; 2: third and fourth.
    shrinkage : as for :class:`GaussianBackground`, default "ledoit-wolf"
    threshold : float, default 1.0
        Each cumulant entry is soft-thresholded at ``threshold`` standard errors
        (``sign(κ) max(|κ| − t·se, 0)``), which removes most pure-noise entries.
    floor : float, default 1e-2
        Weight of the pure Gaussian in the mixture below; keeps the log-density finite.
    seed : int, default 0
        Seeds the random half-split and the ICA start.
    gaussian : GaussianBackground, optional
        An already fitted Gaussian background to build on (it must have been fitted on the
        same rows passed to ``fit``, or on a superset); ``shrinkage`` is then ignored.
    max_ica_rows : int, optional
        FastICA and the pursuit hold their rows in memory: at most this many (a random subset of
        the choosing half, or of the search part, when it is larger). Default
        ``max(4096, 2**22 // d)`` for ``"ica"``, ``max(2048, 2**21 // d)`` for ``"features"``
        (sparse coding streams over every search row).
    device : str or torch.device, optional
        Where the O(N d²) whitening, the FastICA iterations and the projections run (e.g.
        ``"cuda"``); numpy rows are copied there and results come back as numpy. Tensors are
        worked on where they live (per-row results come back as tensors there). The small
        r-dimensional cumulant sums always run on the host in float64.

    Attributes
    ----------
    gaussian_ : GaussianBackground
    basis_ : (r, rank) ndarray
        Orthonormal rows in whitened coordinates.
    directions_ : (r, d) ndarray
        The same directions as unit activation-space patterns.
    selected_ : (r, rank) ndarray
        With ``basis="features"``: the selected directions in whitened coordinates before
        orthonormalisation (what :func:`pft.residual.score` reports); otherwise ``basis_``.
    kappa3_, kappa4_ : (r, r, r), (r, r, r, r) ndarray
        The cumulant tensors used: thresholded, then scaled by ``amplitude_``.
    amplitude_ : float
        Overall scale in [0, 1] of the estimated cumulants, chosen by maximum likelihood on the
        calibration rows (near 1 in the perturbative regime; near 0 for pure noise; small for
        data far from Gaussian, e.g. sparse features, where the raw series over-shoots).
    normalizer_ : float
        ``1 + ‖κ₃‖²/24 + ‖κ₄‖²/96``.

    Notes
    -----
    With ``g(y) = κ₃·He₃(y)/6 + κ₄·He₄(y)/24`` (tensor Hermite polynomials) the order-2
    Edgeworth series is ``φ(y)(1 + g + …)``, which can go negative. pft uses its
    squared-polynomial form (Gallant & Nychka 1987) mixed with the Gaussian:

    ``f(y) = φ(y) [(1 + g/2)² + ε] / [1 + E_φ g²/4 + ε]``,  ``E_φ g² = ‖κ₃‖²/6 + ‖κ₄‖²/24``

    (orthogonality of Hermite tensors: ``E[(T·He_k)²] = k! ‖T‖²`` for symmetric ``T``). It is a
    density for every κ (non-negative, integrating to one exactly), agrees with the Edgeworth
    series to first order in the cumulants, and its expected log-likelihood gain over the
    Gaussian is Comon's negentropy ``‖κ₃‖²/12 + ‖κ₄‖²/48`` at leading order. It is a density
    model, not a moment match: the ``g²/4`` term adds second-order moments of its own, so draws
    from it have somewhat more variance along the corrected directions than the data (about
    1.2× the standard deviation for a strongly non-Gaussian direction).

    References
    ----------
    .. [1] P. Comon, "Independent component analysis, a new concept?", Signal Processing 36 (1994).
    .. [2] A. R. Gallant, D. W. Nychka, "Semi-nonparametric maximum likelihood estimation",
       Econometrica 55 (1987).

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = np.c_[rng.exponential(size=(20000, 1)), rng.normal(size=(20000, 3))]
    >>> pb = PerturbativeBackground(n_directions=1, seed=0).fit(x[:10000])
    >>> bool(np.mean(pb.gain(x[10000:])) > 0.1)   # nats per token gained over the Gaussian
    True
    """

    def __init__(
        self,
        *,
        n_directions: int = 8,
        basis: str = "features",
        directions: Any = None,
        order: int = 2,
        shrinkage: str | float | None = "ledoit-wolf",
        threshold: float = 1.0,
        floor: float = 1e-2,
        seed: int = 0,
        gaussian: GaussianBackground | None = None,
        max_ica_rows: int | None = None,
        device: Any = None,
    ) -> None:
        self.n_directions = n_directions
        self.basis = basis
        self.directions = directions
        self.order = order
        self.shrinkage = shrinkage
        self.threshold = threshold
        self.floor = floor
        self.seed = seed
        self.gaussian = gaussian
        self.max_ica_rows = max_ica_rows
        self.device = device

    def _check_settings(self) -> Any:
        if self.basis not in ("features", "ica", "principal"):
            raise InputError(f"`basis` must be 'features', 'ica' or 'principal'; got {self.basis!r}.")
        if self.order not in (1, 2):
            raise InputError(f"`order` must be 1 or 2; got {self.order!r}.")
        if not (isinstance(self.threshold, (int, float)) and self.threshold >= 0):
            raise InputError(f"`threshold` must be a number ≥ 0; got {self.threshold!r}.")
        if not (isinstance(self.floor, (int, float)) and self.floor > 0):
            raise InputError(f"`floor` must be a number > 0; got {self.floor!r}.")
        return resolve_device(self.device)

    def fit(
        self, X: Any, y: None = None, *, distributed: bool = False, group: Any = None
    ) -> "PerturbativeBackground":
        """Fit the Gaussian, pick the directions and estimate their cumulants from (N, d) ``X``.

        With ``distributed=True`` each rank passes its own rows and every sum is reduced over
        the ``torch.distributed`` ``group``; the random splits follow global row indices, so
        the result equals a one-process fit on the concatenated rows (up to rounding).
        """
        device = self._check_settings()
        need = 1 if distributed else 2
        if device is not None or is_tensor(X):
            X = as_device_matrix(X, "X", device if device is not None else X.device)
            if X.shape[0] < need:
                raise InputError(f"`X` has {X.shape[0]} row; at least {need} are needed.")
        else:
            X = as_matrix(X, "X", min_rows=need)
        red = reducer(distributed, group)
        offset, _ = red.offset_and_total(X.shape[0])
        def chunks(keep=None):
            if keep is None:
                return iter([(offset, X)])
            m = keep(offset, int(X.shape[0]))
            return iter([(offset, X if m.all() else X[like(m, X)])])

        return self._fit_chunks(chunks, red, X.shape[1])

    def _fit_chunks(self, chunks, red: Reducer, d: int, n_rows: int | None = None) -> "PerturbativeBackground":
        """The fit, as passes over ``chunks(keep=None)``: an iterator of ``(global index of the
        first row, (n, d) float64 rows)`` — validated numpy arrays, or float64 tensors on one
        device. ``keep``, when given, is called as ``keep(index of the chunk's first row, n)``
        and returns a boolean mask of the chunk's rows to yield (the index is that of the first
        row before masking); rows it drops need never be read.
        ``n_rows``: the number of rows over all ranks, when the caller knows it (saves a pass).
        Memory: O(d²) plus one chunk plus the ICA sample."""
        device = self._check_settings()
        N = int(n_rows) if n_rows is not None else int(red.sum(sum(len(c) for _, c in chunks())))
        if self.gaussian is not None:
            gauss = self.gaussian
            if not isinstance(gauss, GaussianBackground) or not hasattr(gauss, "mean_"):
                raise InputError("`gaussian` must be a fitted GaussianBackground.")
            if gauss.n_features_in_ != d:
                raise InputError(f"`gaussian` was fitted on {gauss.n_features_in_} features but `X` has {d}.")
        else:
            m = Moments(d=d)
            for _, c in chunks():
                m = m.merge(Moments.from_data_or_empty(c, d))
            gauss = GaussianBackground(shrinkage=self.shrinkage, device=device).fit(red.moments(m))
        rank = gauss.rank_
        ica = self.directions is None and self.basis in ("ica", "features")

        def split(part: str, thin: float = 1.0, half: list | None = None):
            """Rows of one split, chunk by chunk, with the number of calibration rows in the
            chunk. ``ica``: half the rows choose the directions (``thin``: a random fraction of
            that half; for 'features' three quarters of the choosing half search and the last
            quarter selects), a quarter estimates, a quarter calibrates; otherwise half estimate
            and half calibrate. Rows come as they are (not centred: sparse codes are
            non-negative). ``half``, a list, receives for each chunk the mask of the yielded
            rows that fall in half of the split (by the same global uniforms)."""
            n_cal = []

            def keep(off: int, n: int) -> np.ndarray:
                u = uniforms(off, n, self.seed, 11)
                cal = u >= 0.75 if ica else u >= 0.5
                n_cal.append(int(cal.sum()))
                if part == "choose":
                    return u < 0.5 * thin
                if part == "search":
                    if half is not None:
                        half.append((u < 0.1875 * thin)[u < 0.375 * thin])
                    return u < 0.375 * thin
                if part == "select":
                    return (u >= 0.375) & (u < 0.5)
                if part == "estimate":
                    return (u >= 0.5) & (u < 0.75) if ica else u < 0.5
                return cal

            for _, c in chunks(keep):
                yield c, n_cal[-1]

        def projected(part: str):
            """(``w Bᵀ`` on the host, number of calibration rows) for one split, chunk by chunk:
            each row projected on the k filters ``V Λ^{-1/2} Bᵀ`` (d·k per row, no whitening)."""
            F = gauss.filter(B)
            shift = F @ gauss.mean_
            for x, n_cal in split(part):
                yield (host(x @ like(F.T, x)) - shift if len(x) else np.zeros((0, len(F)))), n_cal

        if self.directions is not None:
            P = as_matrix(self.directions, "directions")
            if P.shape[1] != d:
                raise InputError(f"`directions` has {P.shape[1]} columns but `X` has {d} features.")
            # pattern p = V Λ^{1/2} u  =>  u = Λ^{-1/2} Vᵀ p
            U = (P @ gauss.eigenvectors_[:, :rank]) / np.sqrt(gauss.eigenvalues_[:rank])
            Q, R = np.linalg.qr(U.T)
            if np.min(np.abs(np.diag(R))) < 1e-10 * np.max(np.abs(np.diag(R))):
                raise InputError("`directions` are linearly dependent; pass independent rows.")
            B = Q.T * np.sign(np.sum(Q.T * U, axis=1))[:, None]  # keep each row's orientation
        else:
            r = self.n_directions
            if not isinstance(r, (int, np.integer)) or not 1 <= r <= rank:
                raise InputError(
                    f"`n_directions` must be an integer in [1, {rank}] (the rank of the data); got {r!r}."
                )
            if self.basis == "principal":
                B = np.eye(rank)[:r]
            elif self.basis == "features":
                if N < 16:
                    raise InputError(f"`X` has {N} rows; the 'features' basis needs at least 16.")
                cap = self.max_ica_rows if self.max_ica_rows is not None else max(2048, 2**21 // rank)
                frac = min(1.0, cap / (0.375 * N))
                half: list = []
                sample = concat([x for x, _ in split("search", thin=frac, half=half)], d)
                found = search_and_select(
                    lambda: (x for x, _ in split("search")), sample,
                    lambda: (x for x, _ in split("select")), gauss.mean_,
                    gauss.eigenvectors_[:, :rank], gauss.eigenvalues_[:rank], r,
                    sample_half=np.concatenate(half) if half else np.zeros(0, dtype=bool), reduce=red,
                )
                B = found["basis"]
                self.selected_ = found["selected"]
                self.search_ = found
            else:
                if N < 16:
                    raise InputError(f"`X` has {N} rows; the 'ica' basis needs at least 16.")
                # FastICA iterates over its rows, so they are held in memory: at most
                # `max_ica_rows` of them (a random subset of the choosing half when there are more).
                cap = self.max_ica_rows if self.max_ica_rows is not None else max(4096, 2**22 // rank)
                frac = min(1.0, cap / (0.5 * N))
                sample = concat([x for x, _ in split("choose", thin=frac)], d)
                B, _ = kurtosis_directions(gauss._whiten(sample), r, seed=self.seed, reduce=red)

        acc = _CumulantSums(B.shape[0])
        n_cal = 0
        for y, n in projected("estimate"):
            acc.add_mean(y)
            n_cal += n
        if red.sum(acc.n) < 2 or red.sum(n_cal) < 2:
            raise InputError(f"`X` has {N} rows; too few to estimate and calibrate cumulants (need ≥ 8).")
        acc.set_mean(red)
        for y, _ in projected("estimate"):
            acc.add_central(y)
        k3, se3, k4, se4 = acc.result(red)
        k3 = _soft_threshold(k3, se3, self.threshold)
        k4 = _soft_threshold(k4, se4, self.threshold) if self.order == 2 else np.zeros_like(k4)
        # The cumulant series is only perturbative for small cumulants; for a sparse feature
        # (excess kurtosis in the hundreds) the raw correction over-shoots badly. Its overall
        # amplitude t is therefore set by maximum likelihood on calibration rows that neither
        # chose the directions nor estimated the cumulants (so noise cumulants get t ≈ 0).
        e_g2 = float(np.sum(k3 * k3)) / 6.0 + float(np.sum(k4 * k4)) / 24.0
        amplitude = 0.0
        if e_g2 > 0:
            self._set_tensors(k3, k4)
            eps = float(self.floor)
            grid = np.concatenate([[0.0], np.logspace(-4, 0, 161)])
            sums = np.zeros(len(grid))
            for y, _ in projected("calibrate"):
                g = self._g(y)
                sums += [np.sum(np.log((1.0 + 0.5 * t * g) ** 2 + eps)) for t in grid]
            ll = red.sum(sums) / float(red.sum(n_cal)) - np.log(1.0 + grid * grid * e_g2 / 4.0 + eps)
            amplitude = float(grid[int(np.argmax(ll))])
        k3, k4 = amplitude * k3, amplitude * k4
        self.amplitude_ = amplitude
        self.gaussian_ = gauss
        self.basis_ = B
        pat = gauss.pattern(B)
        self.directions_ = pat / np.linalg.norm(pat, axis=1, keepdims=True)
        if not (self.directions is None and self.basis == "features"):
            self.selected_ = B
        self._set_tensors(k3, k4)
        self.normalizer_ = 1.0 + float(np.sum(k3 * k3)) / 24.0 + float(np.sum(k4 * k4)) / 96.0
        self.n_features_in_ = d
        return self

    def _set_tensors(self, k3: np.ndarray, k4: np.ndarray) -> None:
        self.kappa3_ = k3
        self.kappa4_ = k4
        self._v3 = np.einsum("ijj->i", k3)
        self._M4 = np.einsum("iikl->kl", k4)
        self._tr4 = float(np.trace(self._M4))

    def _check_fitted(self) -> None:
        if not hasattr(self, "gaussian_"):
            raise NotFittedError("this PerturbativeBackground is not fitted yet; call fit(X) first.")

    def _g(self, y: np.ndarray) -> np.ndarray:
        """``κ₃·He₃(y)/6 + κ₄·He₄(y)/24`` for rows of y (N, r)."""
        r = self.kappa3_.shape[0]
        K3 = self.kappa3_.reshape(r * r, r)
        K4 = self.kappa4_.reshape(r * r, r * r)
        M4 = self._M4.reshape(r * r)
        out = np.empty(y.shape[0])
        step = _block_rows(r)
        for a in range(0, y.shape[0], step):
            yc = y[a : a + step]
            yy = (yc[:, :, None] * yc[:, None, :]).reshape(len(yc), r * r)  # rows of y ⊗ y
            t3 = np.sum((yy @ K3) * yc, axis=1) - 3.0 * yc @ self._v3
            t4 = np.sum((yy @ K4) * yy, axis=1) - 6.0 * yy @ M4 + 3.0 * self._tr4
            out[a : a + step] = t3 / 6.0 + t4 / 24.0
        return out

    def _rows(self, X: Any) -> Any:
        """Validated rows: a float64 tensor for a tensor (or when ``device`` is set), else numpy."""
        device = resolve_device(self.device)
        if is_tensor(X) or device is not None:
            arr = as_device_matrix(X, "X", X.device if is_tensor(X) else device)
        else:
            arr = as_matrix(X, "X")
        if arr.shape[1] != self.n_features_in_:
            raise InputError(f"`X` has {arr.shape[1]} features but the background was fitted on {self.n_features_in_}.")
        return arr

    def gain(self, X: Any) -> Any:
        """(N,) log-likelihood gain (nats) of each row over the Gaussian background (a tensor on
        the input's device for a tensor, else numpy)."""
        self._check_fitted()
        w = self.gaussian_._whiten(self._rows(X))
        return like(self._gain_of_projection(host(w @ like(self.basis_.T, w))), X)

    def _gain_of_projection(self, y: np.ndarray) -> np.ndarray:
        """The gain from the rows' whitened coordinates along the basis, ``y = w Bᵀ`` (N, r)."""
        g = self._g(y)
        eps = float(self.floor)
        return np.log((1.0 + 0.5 * g) ** 2 + eps) - math.log(self.normalizer_ + eps)

    def logpdf(self, X: Any) -> Any:
        """(N,) log-density of each row."""
        self._check_fitted()
        return self.gaussian_.logpdf(X) + self.gain(X)

    def score(self, X: Any, y: None = None) -> float:
        """Mean log-likelihood per row (nats)."""
        return float(np.mean(host(self.logpdf(X))))

    def __repr__(self) -> str:
        return (
            f"PerturbativeBackground(n_directions={self.n_directions}, basis={self.basis!r}, "
            f"order={self.order})"
        )
