"""The Gaussian (free-theory) background: a shrunk covariance fitted from streamed moments."""

from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from pft._device import as_device_matrix, host, is_tensor, like, resolve_device, rowsq
from pft._deprecation import renamed_keywords
from pft._validate import as_matrix, check_bool, check_choice, check_float, check_int, check_seed
from pft.errors import InputError, NotFittedError, NotPositiveDefiniteError
from pft.numeric._moments import Moments, _is_chunk

__all__ = ["GaussianBackground", "spectral_cutoff"]

_SHRINKAGES = ("ledoit-wolf", "oas")


def spectral_cutoff(eigenvalues: np.ndarray, eps: float) -> float:
    """The one threshold under which an eigenvalue counts as zero: ``λ_max · d · eps``.

    ``eps`` is the machine epsilon of the data's dtype (float32 data cannot resolve more), the
    same rule as ``numpy.linalg.matrix_rank``.
    """
    lam_max = float(np.max(eigenvalues)) if eigenvalues.size else 0.0
    return max(lam_max, 0.0) * eigenvalues.size * eps


def _eps_of(x: Any) -> float:
    dt = getattr(x, "dtype", None)
    try:
        if dt is not None and "torch" in type(dt).__module__:
            return float(__import__("torch").finfo(dt).eps) if dt.is_floating_point else float(np.finfo(np.float64).eps)
        dt = np.dtype(dt) if dt is not None else np.dtype(np.float64)
        return float(np.finfo(dt).eps) if np.issubdtype(dt, np.floating) else float(np.finfo(np.float64).eps)
    except TypeError:
        return float(np.finfo(np.float64).eps)


def _all_max(value: float, group: Any) -> float:
    """The largest ``value`` over the ranks of ``group``."""
    from pft.distributed import DistributedReducer

    return float(DistributedReducer(group).gather_rows(np.array([[value]])).max())


def _eigh(cov: np.ndarray, device: Any) -> tuple[np.ndarray, np.ndarray]:
    """Eigenvalues (descending) and eigenvectors (columns) of a symmetric matrix, each vector's
    sign fixed so that its largest-magnitude entry is positive: the same decomposition on the
    host and on a device (where the O(d³) work runs when ``device`` is set), whatever sign the
    solver returns."""
    if device is None:
        lam, V = np.linalg.eigh(cov)
    else:
        import torch

        lam_t, V_t = torch.linalg.eigh(torch.as_tensor(cov, dtype=torch.float64, device=device))
        lam, V = lam_t.cpu().numpy(), V_t.cpu().numpy()
    lam, V = lam[::-1].copy(), V[:, ::-1].copy()
    idx = np.argmax(np.abs(V), axis=0)
    V *= np.where(V[idx, np.arange(V.shape[1])] < 0, -1.0, 1.0)
    return lam, V


def _same_kind(out: Any, X: Any) -> Any:
    """Per-row results in the kind of array that came in: a tensor for a tensor, else numpy."""
    return out if is_tensor(X) else host(out)


class GaussianBackground:
    """A Gaussian fitted to activations or residuals, with optional covariance shrinkage.

    Everything is computed from one pass of streamed, mergeable :class:`Moments`
    (shrinkage included), and every derived quantity (precision, log-determinant, rank,
    whitening) comes from one eigendecomposition of the covariance with one cutoff.

    Parameters
    ----------
    shrinkage : {"ledoit-wolf", "oas"}, float in [0, 1] or None, default "ledoit-wolf"
        Shrink the sample covariance ``S`` (divided by N) towards ``μI`` (``μ = tr S / d``):
        ``(1 − s) S + s μ I`` with ``s`` from Ledoit & Wolf (2004), from OAS (Chen et al. 2010),
        a fixed number, or ``None`` for no shrinkage.
    singular : {"raise", "project"}, default "raise"
        What to do when the covariance has (numerically) zero eigenvalues, which happens
        without shrinkage when ``d ≥ N`` or when the data lie in a subspace. ``"raise"`` raises
        :class:`~pft.errors.NotPositiveDefiniteError` naming the rank; ``"project"`` keeps the
        Gaussian on the numerical support (``rank_`` dimensions): ``logpdf`` is then the density
        of the projection onto that subspace, and ``whiten`` returns ``rank_`` coordinates.
    precision : {"float64", "float32", "tf32"}, default "float64"
        Arithmetic of the O(N d²) products within each chunk (see :meth:`Moments.from_array`);
        chunks are merged, and everything after, in float64. On an H200 a float64 ``XᵀX`` runs
        at ~51 TFLOP/s and a TF32 one at ~237; ``benchmarks/bench_background.py`` measures the
        accuracy cost of float32 on the same data.
    device : str or torch.device, optional
        Where the O(N d²) work runs (``"cuda"``, ``"cuda:1"``, ``"cpu"``): numpy rows passed to
        ``fit``, ``whiten``, ``logpdf``, ... are copied there chunk by chunk (in their own dtype)
        and the results come back as float64 numpy. Torch tensors are always worked on where they
        live, and per-row results come back as float64 tensors on that device. Fitted attributes
        are float64 numpy either way. Default: numpy on the host.

    Attributes
    ----------
    mean_ : (d,) ndarray
    covariance_ : (d, d) ndarray
        The (shrunk) covariance.
    shrinkage_ : float
    precision_ : (d, d) ndarray
        Inverse (pseudo-inverse on the support) of ``covariance_``.
    logdet_ : float
        Log-determinant over the support.
    rank_ : int
        Number of eigenvalues above the cutoff ``λ_max · d · eps`` (eps of the input dtype).
    eigenvalues_ : (d,) ndarray
        Descending.
    sample_eigenvalues_ : (d,) ndarray
        Eigenvalues of the unshrunk sample covariance, descending (the spectrum of the data
        itself, whatever the shrinkage; at ``shrinkage_ = 1`` it cannot be read off
        ``eigenvalues_``, which are then all equal).
    eigenvectors_ : (d, d) ndarray
        Columns, matching ``eigenvalues_``.
    cutoff_ : float
    moments_ : Moments
    n_samples_seen_ : int
    n_features_in_ : int

    Notes
    -----
    ``logpdf(x) = −½ [r log 2π + log det Σ + (x − μ)ᵀ Σ⁻¹ (x − μ)]`` with ``r = rank_``.
    Whitening is PCA whitening: ``w = Λ^{-1/2} Vᵀ (x − μ)``, coordinates in decreasing-variance
    order. A whitened direction ``u`` is the activation-space *pattern* ``V Λ^{1/2} u`` and the
    read-out *filter* ``V Λ^{-1/2} u`` (see :meth:`pattern` and :meth:`filter`).

    References
    ----------
    .. [1] O. Ledoit, M. Wolf, "A well-conditioned estimator for large-dimensional covariance
       matrices", J. Multivariate Anal. 88 (2004).
    .. [2] Y. Chen, A. Wiesel, Y. C. Eldar, A. O. Hero, "Shrinkage algorithms for MMSE
       covariance estimation", IEEE Trans. Signal Process. 58 (2010).

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(2000, 4)) * [1.0, 2.0, 3.0, 4.0]
    >>> bg = GaussianBackground(shrinkage=None).fit(x)
    >>> np.round(np.sqrt(np.diag(bg.covariance_)), 1)
    array([1. , 2. , 3. , 4.1])
    >>> round(bg.score(x), 2)   # minus the entropy, 2(1 + log 2π) + log 24 = 8.85
    -8.86
    """

    def __init__(
        self,
        *,
        shrinkage: str | float | None = "ledoit-wolf",
        singular: str = "raise",
        precision: str = "float64",
        device: Any = None,
    ) -> None:
        self.shrinkage = shrinkage
        self.singular = singular
        self.precision = precision
        self.device = device

    # ------------------------------------------------------------------ fitting
    def _check_settings(self) -> Any:
        s = self.shrinkage
        if isinstance(s, str):
            check_choice(s, "shrinkage", _SHRINKAGES)
        elif s is not None:
            check_float(s, "shrinkage", minimum=0, maximum=1)
        check_choice(self.singular, "singular", ("raise", "project"))
        check_choice(self.precision, "precision", ("float64", "float32", "tf32"))
        return resolve_device(self.device)

    def fit(
        self, X: Any, y: None = None, *, progress: bool = False, distributed: bool = False, group: Any = None
    ) -> "GaussianBackground":
        """Fit from an (N, d) array or tensor, an iterable of (n_i, d) chunks, or a Moments.

        Chunks are consumed once; memory stays O(d²) whatever N. With ``distributed=True``
        each rank passes its own rows and the statistics are merged across the
        ``torch.distributed`` process ``group`` (see :meth:`Moments.all_reduce`): every rank
        ends with the fit of all ranks' rows together.
        """
        device = self._check_settings()
        check_bool(progress, "progress")
        check_bool(distributed, "distributed")
        eps = [float(np.finfo(np.float64).eps)]

        if isinstance(X, Moments):
            moments = X
        elif _is_chunk(X) or (isinstance(X, (list, tuple)) and X and not _is_chunk(X[0])):
            eps[0] = _eps_of(X)
            moments = Moments.from_array(X, name="X", precision=self.precision, device=device)
        else:
            def track(chunks: Iterable[Any]):
                for c in chunks:
                    eps[0] = max(eps[0], _eps_of(c))
                    yield c

            moments = Moments.from_chunks(
                track(X), name="X", progress=progress, precision=self.precision, device=device
            )
        if distributed:
            moments = moments.all_reduce(group)
            eps[0] = _all_max(eps[0], group)
        self._input_eps = eps[0]
        return self._fit_moments(moments)

    def partial_fit(self, X: Any) -> "GaussianBackground":
        """Add a chunk to what was seen so far and refit (streaming use)."""
        device = self._check_settings()
        m = Moments.from_array(X, name="X", precision=self.precision, device=device)
        eps = max(getattr(self, "_input_eps", 0.0), _eps_of(X))
        prev = getattr(self, "moments_", None)
        self._input_eps = eps
        return self._fit_moments(m if prev is None else prev.merge(m))

    def _fit_moments(self, moments: Moments) -> "GaussianBackground":
        n, d = moments.count, moments.d
        if n < 2:
            raise InputError(f"`X` has {n} row{'s' if n != 1 else ''}; a covariance needs at least 2.")
        S = moments.covariance()
        s = self.shrinkage
        if s is None:
            shrink = 0.0
        elif s == "ledoit-wolf":
            shrink = moments.ledoit_wolf_shrinkage()
        elif s == "oas":
            shrink = moments.oas_shrinkage()
        else:
            shrink = float(s)
        mu = float(np.trace(S)) / d
        cov = (1.0 - shrink) * S
        cov[np.diag_indices(d)] += shrink * mu
        cov = 0.5 * (cov + cov.T)

        lam, V = _eigh(cov, resolve_device(self.device))
        cutoff = spectral_cutoff(lam, getattr(self, "_input_eps", float(np.finfo(np.float64).eps)))
        support = lam > cutoff
        rank = int(support.sum())
        if rank == 0:
            raise NotPositiveDefiniteError(
                "`X` has zero variance in every direction (all rows equal); there is no Gaussian to fit."
            )
        if rank < d and self.singular == "raise":
            why = f" (d = {d} ≥ N = {n})" if d >= n else ""
            raise NotPositiveDefiniteError(
                f"the covariance of `X` has numerical rank {rank} < d = {d}{why}; eigenvalues below "
                f"{cutoff:.3g} count as zero. Use shrinkage='ledoit-wolf' (or 'oas', or a number), "
                f"or singular='project' to keep the Gaussian on the {rank}-dimensional support."
            )
        Vs, ls = V[:, :rank], lam[:rank]
        if shrink == 0.0:
            sample = lam.copy()
        elif 1.0 - shrink > 1e-6:  # same eigenvectors: undo (1 − s)λ + sμ
            sample = (lam - shrink * mu) / (1.0 - shrink)
        else:  # the shrunk spectrum is flat: decompose the sample covariance itself
            sample = np.sort(np.linalg.eigvalsh(0.5 * (S + S.T)))[::-1]
        self.sample_eigenvalues_ = np.clip(sample, 0.0, None)
        self.moments_ = moments
        self.n_samples_seen_ = n
        self.n_features_in_ = d
        self.mean_ = moments.mean.copy()
        self.covariance_ = cov
        self.shrinkage_ = float(shrink)
        self.eigenvalues_ = lam
        self.eigenvectors_ = V
        self.cutoff_ = cutoff
        self.rank_ = rank
        self.precision_ = (Vs / ls) @ Vs.T
        self.logdet_ = float(np.sum(np.log(ls)))
        return self

    # ------------------------------------------------------------------ using the fit
    def _check_fitted(self) -> None:
        if not hasattr(self, "mean_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X) first."
            )

    def _check_X(self, X: Any, name: str = "X") -> Any:
        """Validated float64 rows: a tensor where ``X`` is one (on its device) or where
        ``device`` is set, numpy otherwise."""
        self._check_fitted()
        if is_tensor(X):
            arr = as_device_matrix(X, name, X.device)
        elif self.device is not None:
            arr = as_device_matrix(X, name, resolve_device(self.device))
        else:
            arr = as_matrix(X, name)
        if arr.shape[1] != self.n_features_in_:
            raise InputError(
                f"`{name}` has {arr.shape[1]} features but the background was fitted on {self.n_features_in_}."
            )
        return arr

    def _whiten(self, arr: Any) -> Any:
        r = self.rank_
        W = self.eigenvectors_[:, :r] / np.sqrt(self.eigenvalues_[:r])
        return (arr - like(self.mean_, arr)) @ like(W, arr)

    def whiten(self, X: Any) -> Any:
        """(N, rank_) whitened coordinates ``Λ^{-1/2} Vᵀ (x − μ)``, largest-variance first."""
        return _same_kind(self._whiten(self._check_X(X)), X)

    def pattern(self, U: Any) -> np.ndarray:
        """Map whitened directions (rows of a (k, rank_) array) to activation-space patterns
        ``V Λ^{1/2} u`` (the direction a feature moves the activations)."""
        self._check_fitted()
        U = np.atleast_2d(np.asarray(U, dtype=np.float64))
        r = self.rank_
        return U @ (self.eigenvectors_[:, :r] * np.sqrt(self.eigenvalues_[:r])).T

    def filter(self, U: Any) -> np.ndarray:
        """Map whitened directions to read-out filters ``V Λ^{-1/2} u``: ``filterᵀ(x − μ) = uᵀw``."""
        self._check_fitted()
        U = np.atleast_2d(np.asarray(U, dtype=np.float64))
        r = self.rank_
        return U @ (self.eigenvectors_[:, :r] / np.sqrt(self.eigenvalues_[:r])).T

    def mahalanobis2(self, X: Any) -> Any:
        """(N,) squared Mahalanobis distances on the support."""
        return _same_kind(rowsq(self._whiten(self._check_X(X))), X)

    def logpdf(self, X: Any) -> Any:
        """(N,) log-density (natural log) of each row."""
        return _same_kind(self._logpdf(self._check_X(X)), X)

    def _logpdf(self, arr: Any) -> Any:
        """logpdf of validated rows (numpy, or float64 tensors: the result stays there)."""
        q = rowsq(self._whiten(arr))
        return -0.5 * (self.rank_ * math.log(2.0 * math.pi) + self.logdet_ + q)

    def score(self, X: Any, y: None = None) -> float:
        """Mean log-likelihood per row (nats)."""
        return float(np.mean(host(self.logpdf(X))))

    def score_samples(self, X: Any) -> Any:
        """(N,) log-density of each row (scikit-learn's name for :meth:`logpdf`).

        Examples
        --------
        >>> bg = GaussianBackground(shrinkage=None).fit(np.random.default_rng(0).normal(size=(500, 2)))
        >>> bool(np.array_equal(bg.score_samples([[0.0, 0.0]]), bg.logpdf([[0.0, 0.0]])))
        True
        """
        return self.logpdf(X)

    @renamed_keywords(k="n_samples")
    def sample(self, n_samples: int, *, seed: int | np.random.Generator = 0) -> np.ndarray:
        """(n_samples, d) draws from the fitted Gaussian.

        Parameters
        ----------
        n_samples : int
            Number of draws (``k=`` is a deprecated spelling of this keyword).
        seed : int or numpy Generator, default 0
            An integer seeds a fresh generator (the same draws every call); a
            ``numpy.random.Generator`` is drawn from as it is (several batches from one stream).

        Examples
        --------
        >>> bg = GaussianBackground(shrinkage=None).fit(np.random.default_rng(0).normal(size=(500, 2)))
        >>> bg.sample(3, seed=1).shape
        (3, 2)
        >>> bool(np.array_equal(bg.sample(3, seed=1), bg.sample(3, seed=1)))
        True
        """
        self._check_fitted()
        k = check_int(n_samples, "n_samples", minimum=0)
        if not isinstance(seed, np.random.Generator):
            seed = check_seed(seed)
        rng = np.random.default_rng(seed)
        r = self.rank_
        z = rng.standard_normal((k, r))
        return self.mean_ + (z * np.sqrt(self.eigenvalues_[:r])) @ self.eigenvectors_[:, :r].T

    def __repr__(self) -> str:
        fitted = f", rank_={self.rank_}, shrinkage_={self.shrinkage_:.3g}" if hasattr(self, "rank_") else ""
        return f"GaussianBackground(shrinkage={self.shrinkage!r}, singular={self.singular!r}{fitted})"
