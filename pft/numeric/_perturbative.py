"""The perturbative background: a Gaussian plus third- and fourth-cumulant corrections.

Why one file: one class (a little over 500 lines, most of them its documentation); the fit is one
sequence of passes over the same rows (split, choose directions, estimate, calibrate) sharing its
splits; the cumulant tensors live in :mod:`pft.numeric._cumulant_tensors` and chunked input in
:mod:`pft.numeric._chunks`.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from pft._device import as_device_matrix, concat, host, is_tensor, like, resolve_device
from pft._validate import as_matrix, check_bool, check_choice, check_float, check_int, check_seed
from pft.errors import InputError, NotFittedError
from pft.numeric._background import GaussianBackground
from pft.numeric._ica import kurtosis_directions
from pft.numeric._pursuit import search_and_select
from pft.numeric._chunks import array_passes, chunk_passes
from pft.numeric._cumulant_tensors import CumulantSums, edgeworth_polynomial, soft_threshold
from pft.numeric._moments import Moments, _is_chunk
from pft.distributed import Reducer, reducer, uniforms

__all__ = ["PerturbativeBackground"]


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
        Seeds the random splits of the rows, the ICA start, and :meth:`sample` when it is given
        no seed of its own.
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
    >>> pb.sample(5).shape                           # draws from the fitted density
    (5, 4)
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
        check_choice(self.basis, "basis", ("features", "ica", "principal"))
        check_int(self.order, "order", minimum=1, maximum=2)
        check_float(self.threshold, "threshold", minimum=0)
        check_float(self.floor, "floor", minimum=0, exclusive_minimum=True)
        check_seed(self.seed)
        if self.max_ica_rows is not None:
            check_int(self.max_ica_rows, "max_ica_rows", minimum=1)
        return resolve_device(self.device)

    def fit(
        self, X: Any, y: None = None, *, progress: bool = False, distributed: bool = False, group: Any = None
    ) -> "PerturbativeBackground":
        """Fit from an (N, d) array or tensor, or from chunks of rows read in several passes.

        The Gaussian is fitted (unless ``gaussian`` was given), the directions chosen and their
        cumulants estimated and calibrated, each on its own random part of the rows.

        ``X`` is one of:

        - an (N, d) array or tensor (a tensor is worked on where it lives);
        - a list or tuple of (n_i, d) chunks, or any iterable that starts again each time it is
          iterated (a ``numpy.memmap`` cut into slices, a dataset object): every pass reads it
          again, so memory stays O(d²) plus one chunk plus the bounded direction-search sample,
          whatever N (about seven passes, most over a part of the rows);
        - a function returning a fresh iterator of chunks, ``X()``, called once per pass. When it
          takes a keyword ``keep``, it is called as ``X(keep=keep)``: it must call ``keep(n)``
          once per chunk, in order, with the chunk's number of rows, and yield only the rows of
          the boolean mask that returns (rows a pass does not use need then never be read or
          computed).

        A one-shot iterator (a generator) cannot be read twice: pass a function returning it.
        A :class:`Moments` holds second-order statistics only and cannot give the cumulants;
        fit a :class:`GaussianBackground` on it and pass that as ``gaussian`` with the rows.

        With ``distributed=True`` each rank passes its own rows and every sum is reduced over
        the ``torch.distributed`` ``group``; the random splits follow global row indices, so
        the result equals a one-process fit on the concatenated rows (up to rounding).
        ``progress`` shows a bar over the passes.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = np.c_[rng.exponential(size=(8000, 1)), rng.normal(size=(8000, 2))]
        >>> whole = PerturbativeBackground(n_directions=1, basis="principal").fit(x)
        >>> chunks = [x[a : a + 1000] for a in range(0, 8000, 1000)]
        >>> parts = PerturbativeBackground(n_directions=1, basis="principal").fit(chunks)
        >>> bool(np.allclose(whole.kappa3_, parts.kappa3_))
        True
        """
        device = self._check_settings()
        check_bool(progress, "progress")
        check_bool(distributed, "distributed")
        red = reducer(distributed, group)
        if isinstance(X, Moments):
            raise InputError(
                "`X` is a Moments (second-order statistics); a perturbative background needs the rows for "
                "its third and fourth cumulants: pass the rows (an array or chunks), and "
                "gaussian=GaussianBackground().fit(moments) to build on the moments."
            )
        if _is_chunk(X) or (isinstance(X, (list, tuple)) and X and not _is_chunk(X[0])):
            need = 1 if distributed else 2
            if device is not None or is_tensor(X):
                X = as_device_matrix(X, "X", device if device is not None else X.device)
                if X.shape[0] < need:
                    raise InputError(f"`X` has {X.shape[0]} row; at least {need} are needed.")
            else:
                X = as_matrix(X, "X", min_rows=need)
            offset, N = red.offset_and_total(X.shape[0])
            return self._fit_passes(array_passes(X, offset), red, X.shape[1], N, progress)
        passes, d, N = chunk_passes(X, red, device)
        return self._fit_passes(passes, red, d, N, progress)

    def _fit_passes(self, chunks: Callable, red: Reducer, d: int, N: int, progress: bool = False
                    ) -> "PerturbativeBackground":
        """The fit, as passes over ``chunks(keep=None)``: an iterator of ``(global index of the
        first row, (n, d) float64 rows)`` — validated numpy arrays, or float64 tensors on one
        device. ``keep``, when given, is called as ``keep(index of the chunk's first row, n)``
        and returns a boolean mask of the chunk's rows to yield (the index is that of the first
        row before masking). ``N``: the rows over all ranks.
        Memory: O(d²) plus one chunk plus the ICA sample."""
        device = self._check_settings()
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=3, desc="perturbative fit", unit="stage")
        try:
            return self._fit_stages(chunks, red, d, N, device, bar)
        finally:
            if bar is not None:
                bar.close()

    def _fit_stages(self, chunks: Callable, red: Reducer, d: int, N: int, device: Any, bar: Any
                    ) -> "PerturbativeBackground":
        def stage(name: str) -> None:
            if bar is not None:
                bar.set_postfix_str(name)
                bar.update(1)

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
        stage("gaussian")
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

        stage("directions")
        acc = CumulantSums(B.shape[0])
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
        k3 = soft_threshold(k3, se3, self.threshold)
        k4 = soft_threshold(k4, se4, self.threshold) if self.order == 2 else np.zeros_like(k4)
        # The cumulant series is only perturbative for small cumulants; for a sparse feature
        # (excess kurtosis in the hundreds) the raw correction over-shoots badly. Its overall
        # amplitude t is therefore set by maximum likelihood on calibration rows that neither
        # chose the directions nor estimated the cumulants (so noise cumulants get t ≈ 0).
        e_g2 = float(np.sum(k3 * k3)) / 6.0 + float(np.sum(k4 * k4)) / 24.0
        amplitude = 0.0
        if e_g2 > 0:
            eps = float(self.floor)
            grid = np.concatenate([[0.0], np.logspace(-4, 0, 161)])
            sums = np.zeros(len(grid))
            for y, _ in projected("calibrate"):
                g = edgeworth_polynomial(k3, k4, y)
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
        self.kappa3_, self.kappa4_ = k3, k4
        self.normalizer_ = 1.0 + float(np.sum(k3 * k3)) / 24.0 + float(np.sum(k4 * k4)) / 96.0
        self.n_features_in_ = d
        stage("cumulants")
        return self

    def _check_fitted(self) -> None:
        if not hasattr(self, "gaussian_"):
            raise NotFittedError("this PerturbativeBackground is not fitted yet; call fit(X) first.")

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

    def coordinates(self, X: Any) -> Any:
        """(N, r) coordinates ``y = B w`` of each row along the corrected directions (``w`` its
        whitened coordinates under ``gaussian_``, ``B`` the orthonormal ``basis_``): the
        variables of the cumulant correction. A tensor for a tensor (on its device), else numpy.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = np.c_[rng.exponential(size=(4000, 1)), rng.normal(size=(4000, 2))]
        >>> pb = PerturbativeBackground(n_directions=1, basis="principal").fit(x)
        >>> y = pb.coordinates(x)
        >>> y.shape, bool(np.allclose(pb.gain(x), pb.gain_from_coordinates(y)))
        ((4000, 1), True)
        """
        self._check_fitted()
        w = self.gaussian_._whiten(self._rows(X))
        return like(host(w @ like(self.basis_.T, w)), X)

    def gain_from_coordinates(self, y: Any) -> Any:
        """(N,) log-likelihood gain (nats) over the Gaussian background from the rows'
        :meth:`coordinates` ``y`` (N, r): ``log[(1 + g(y)/2)² + ε] − log(normalizer_ + ε)``
        with ``g`` the :func:`edgeworth_polynomial` of ``kappa3_``, ``kappa4_`` and ``ε`` the
        ``floor``. For a caller that already has the projections (e.g. from the filters
        ``gaussian_.filter(basis_)`` applied to ``x − μ``), this skips the whitening.

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = np.c_[rng.exponential(size=(4000, 1)), rng.normal(size=(4000, 2))]
        >>> pb = PerturbativeBackground(n_directions=1, basis="principal").fit(x)
        >>> y = (x - pb.gaussian_.mean_) @ pb.gaussian_.filter(pb.basis_).T   # projections on the filters
        >>> bool(np.allclose(pb.gain_from_coordinates(y), pb.gain(x)))
        True
        """
        self._check_fitted()
        r = self.basis_.shape[0]
        arr = as_matrix(y, "y")
        if arr.shape[1] != r:
            raise InputError(f"`y` must have {r} columns (one per corrected direction); got {arr.shape[1]}.")
        g = edgeworth_polynomial(self.kappa3_, self.kappa4_, arr)
        eps = float(self.floor)
        out = np.log((1.0 + 0.5 * g) ** 2 + eps) - math.log(self.normalizer_ + eps)
        return like(out, y)

    def gain(self, X: Any) -> Any:
        """(N,) log-likelihood gain (nats) of each row over the Gaussian background (a tensor on
        the input's device for a tensor, else numpy): :meth:`gain_from_coordinates` of the
        rows' :meth:`coordinates`."""
        self._check_fitted()
        w = self.gaussian_._whiten(self._rows(X))
        return like(self.gain_from_coordinates(host(w @ like(self.basis_.T, w))), X)

    def logpdf(self, X: Any) -> Any:
        """(N,) log-density of each row."""
        self._check_fitted()
        return self.gaussian_.logpdf(X) + self.gain(X)

    def score_samples(self, X: Any) -> Any:
        """(N,) log-density of each row (scikit-learn's name for :meth:`logpdf`).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = np.c_[rng.exponential(size=(4000, 1)), rng.normal(size=(4000, 2))]
        >>> pb = PerturbativeBackground(n_directions=1, basis="principal").fit(x)
        >>> bool(np.array_equal(pb.score_samples(x[:5]), pb.logpdf(x[:5])))
        True
        """
        return self.logpdf(X)

    def score(self, X: Any, y: None = None) -> float:
        """Mean log-likelihood per row (nats)."""
        return float(np.mean(host(self.logpdf(X))))

    def sample(
        self, n_samples: int, *, seed: int | np.random.Generator | None = None, n_proposals: int = 64
    ) -> np.ndarray:
        """(n_samples, d) draws from the fitted density.

        Parameters
        ----------
        n_samples : int
            Number of draws.
        seed : int or numpy Generator, optional
            An integer seeds a fresh generator; a ``numpy.random.Generator`` is drawn from as it
            is (a caller drawing several batches from one stream). Default (None): this
            background's own ``seed``, so repeated calls give the same draws.
        n_proposals : int, default 64
            Gaussian proposals per draw for the importance-resampling step.

        Returns
        -------
        (n_samples, d) ndarray

        Notes
        -----
        In the whitened coordinates ``w`` of the Gaussian the density is ``φ(w) h(Bw)`` with
        ``h(y) = [(1 + g(y)/2)² + ε] / [normalizer_ + ε]`` on the ``r`` corrected directions
        (orthonormal rows of ``B = basis_``) and standard normal on their complement. So
        ``w = Bᵀy + (I − BᵀB) z`` with ``z ~ N(0, I)`` and ``y`` drawn from ``φ_r(y) h(y)``.
        ``h`` is an unbounded polynomial, which rules out plain rejection from ``φ``; ``y`` is
        drawn by sampling–importance–resampling (Rubin 1988): ``n_proposals · n_samples``
        proposals from ``φ_r`` are resampled with probabilities ``∝ (1 + g/2)² + ε``. The
        weights have finite variance, so expectations converge to the density's with a bias of
        order ``1/n_proposals``; draws are not exactly independent (a proposal can be picked
        twice). Activations are ``x = μ + V Λ^{1/2} w``. Along a corrected direction the draws
        follow the model density, whose variance exceeds the data's by the ``g²/4`` term (see
        the class notes), not the data's moments.

        References
        ----------
        .. [1] D. B. Rubin, "Using the SIR algorithm to simulate posterior distributions",
           Bayesian Statistics 3 (1988).

        Examples
        --------
        >>> rng = np.random.default_rng(0)
        >>> x = np.c_[rng.exponential(size=(20000, 1)), rng.normal(size=(20000, 2))]
        >>> pb = PerturbativeBackground(n_directions=1, seed=0).fit(x)
        >>> s = pb.sample(20000)
        >>> s.shape
        (20000, 3)
        >>> u = s[:, 0] - s[:, 0].mean()
        >>> bool(np.mean(u**3) / np.mean(u**2) ** 1.5 > 0.5)   # skewed like the exponential column
        True
        """
        self._check_fitted()
        k = check_int(n_samples, "n_samples", minimum=0)
        pool = check_int(n_proposals, "n_proposals", minimum=1)
        if not isinstance(seed, np.random.Generator):
            seed = check_seed(self.seed if seed is None else seed)
        rng = np.random.default_rng(seed)
        gauss = self.gaussian_
        if k == 0:
            return np.zeros((0, self.n_features_in_))
        B = np.asarray(self.basis_)
        r, rank = B.shape
        eps = float(self.floor)
        Y = rng.standard_normal((k * pool, r))
        g = edgeworth_polynomial(self.kappa3_, self.kappa4_, Y)
        wts = (1.0 + 0.5 * g) ** 2 + eps
        idx = rng.choice(len(Y), size=k, replace=True, p=wts / wts.sum())
        y = Y[idx]
        z = rng.standard_normal((k, rank))
        w = z - (z @ B.T) @ B + y @ B
        return gauss.mean_ + gauss.pattern(w)

    def __repr__(self) -> str:
        return (
            f"PerturbativeBackground(n_directions={self.n_directions}, basis={self.basis!r}, "
            f"order={self.order})"
        )
