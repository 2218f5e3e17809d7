"""The statistics a residual report is made of, each a plain function on arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._device import as_device_matrix, host, is_tensor, like, resolve_device, rowdot, rowsq
from pft.errors import InputError
from pft.numeric._reduce import LocalReducer, Reducer, uniforms

__all__ = ["anchor_metrics", "mardia", "ridge_r2", "participation_ratio", "check_residual_scale"]

# Magnitudes pft's float64 sums resolve: fourth powers of the residual (Ledoit–Wolf, kurtosis)
# neither overflow nor underflow between these, for any realistic N and d.
_MAX_ABS = 1e60
_MIN_RMS = 1e-60


def input_resolution(a: Any) -> float:
    """Relative rounding step of an input's dtype (0 for integers and bools, which are exact)."""
    dt = getattr(a, "dtype", None)
    if isinstance(dt, str):  # RowReader's bfloat16
        return 2.0**-7
    if dt is not None and "torch" in type(dt).__module__:
        import torch

        return float(torch.finfo(dt).eps) if dt.is_floating_point else 0.0
    try:
        dt = np.dtype(dt) if dt is not None else np.dtype(np.float64)
    except TypeError:
        return float(np.finfo(np.float64).eps)
    if np.issubdtype(dt, np.floating):
        return float(np.finfo(dt).eps)
    return 0.0 if np.issubdtype(dt, np.integer) or dt == np.bool_ else float(np.finfo(np.float64).eps)


def check_residual_scale(residual_variance: float, mean_square: float, inputs: tuple) -> None:
    """Refuse a residual that carries nothing measurable, with a message that says why.

    ``residual_variance`` is the residual's variance per dimension, ``mean_square`` the
    activations' mean square per dimension, ``inputs`` the arrays the residual came from. A
    residual whose variance is at most ``(eps · rms(x))²`` — ``eps`` the rounding step of the
    coarser input dtype — is rounding noise (a constant offset such as ``x̂ = x − 0.5`` in
    float32, or an exact reconstruction): its "structure" would be the rounding pattern. One
    below ``1e-60`` RMS would underflow the fourth moments.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.ones((4, 2), dtype=np.float32)
    >>> check_residual_scale(1e-3, 1.0, (x, x))   # fine: well above float32 rounding
    >>> check_residual_scale(1e-16, 1.0, (x, x))
    Traceback (most recent call last):
    ...
    pft.errors.InputError: the residual ... is at the rounding level of the float32 inputs ...
    """
    eps = max(input_resolution(a) for a in inputs)
    if residual_variance <= 0.0:
        raise InputError(
            "the residual `activations − reconstruction` has zero variance on the training split "
            "(a constant offset or an exact reconstruction): there is nothing to score beyond `mse`."
        )
    if residual_variance <= (eps**2) * mean_square:
        dtypes = "/".join(sorted({str(getattr(a, "dtype", "float64")).replace("torch.", "") for a in inputs}))
        raise InputError(
            f"the residual `activations − reconstruction` has variance {residual_variance:.3g} per dimension, "
            f"which is at the rounding level of the {dtypes} inputs (activations' mean square {mean_square:.3g}, "
            f"rounding step {eps:.2g}): a constant offset or an exact reconstruction; there is nothing to "
            "score beyond `mse`."
        )
    if residual_variance < _MIN_RMS**2:
        raise InputError(
            f"the residual `activations − reconstruction` has RMS {math.sqrt(residual_variance):.3g}, below "
            f"{_MIN_RMS:g}, where its fourth moments underflow float64; multiply activations and reconstruction "
            "by one large factor (every score but `mse` is scale-invariant)."
        )


class AnchorSums:
    """Two passes over (x, x̂) chunks that add up to :func:`anchor_metrics`.

    Chunks are numpy arrays or float64 tensors on one device: the O(n d) row reductions run
    there and only per-row numbers and d-vectors come back (as in every ``*Sums`` class here).
    """

    def __init__(self, d: int) -> None:
        self.n = 0.0
        self.sx = np.zeros(d)
        self.sums = np.zeros(3)  # Σ‖r‖², Σ‖x‖², Σ cos
        self.lo = np.full(d, np.inf)  # per-column range: constant activations are caught exactly
        self.hi = np.full(d, -np.inf)
        self.legacy = np.zeros(3)  # Σ (1 − ‖r‖²/‖x − x̄‖²), count of tokens with x ≠ x̄, Σ ‖x − x̄‖²

    def add(self, x: Any, xhat: Any) -> None:
        if not x.shape[0]:
            return
        for a, name in ((x, "activations"), (xhat, "reconstruction")):
            lo = host(a.amin(0) if is_tensor(a) else a.min(axis=0))
            hi = host(a.amax(0) if is_tensor(a) else a.max(axis=0))
            big = max(float(-lo.min()), float(hi.max()))
            if big > _MAX_ABS:
                raise InputError(
                    f"`{name}` has values as large as {big:.3g}; beyond {_MAX_ABS:g} the residual's fourth moments "
                    "overflow float64. Divide activations and reconstruction by one large factor (every score but "
                    "`mse` is scale-invariant)."
                )
            if a is x:
                self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
        nx2 = host(rowsq(x))
        denom = np.sqrt(nx2) * np.sqrt(host(rowsq(xhat)))
        cos = np.divide(host(rowdot(x, xhat)), denom, out=np.zeros_like(denom), where=denom > 0)
        self.n += x.shape[0]
        self.sx += host(x.sum(axis=0))
        self.sums += [float(rowsq(x - xhat).sum()), nx2.sum(), cos.sum()]

    def set_mean(self, red: Reducer) -> None:
        """Pool the means; constant activations (no variance to explain) raise here, after one pass."""
        self.n = float(red.sum(self.n))
        self.mu = red.sum(self.sx) / self.n
        self.mean_square = float(red.sum(np.array([self.sums[1]]))[0]) / self.n  # mean ‖x‖²
        has_rows = bool(np.isfinite(self.lo).all())
        varies_here = has_rows and bool(np.any(self.hi > self.lo))
        if float(red.sum(np.array([float(varies_here)]))[0]) > 0:
            return
        # every rank's rows are one vector each: are those vectors the same on all ranks?
        c = self.lo if has_rows else self.mu
        apart = float(red.sum(np.array([float(np.sum((c - self.mu) ** 2))]))[0])
        if apart <= (64 * np.finfo(float).eps) ** 2 * max(float(self.mu @ self.mu), np.finfo(float).tiny):
            raise InputError(
                "`activations` are the same vector for every token (zero variance to rounding): FVU and "
                "explained variance are undefined (0/0). Check that the right array was passed."
            )

    def add2(self, x: Any, xhat: Any) -> None:
        dev = host(rowsq(x - like(self.mu, x)))
        ok = dev > 0
        self.legacy += [np.sum(1.0 - host(rowsq(x - xhat))[ok] / dev[ok]), ok.sum(), dev.sum()]

    def result(self, red: Reducer) -> dict[str, float]:
        sums, legacy, n = red.sum(self.sums), red.sum(self.legacy), self.n
        total = float(legacy[2] / n)  # two-pass: exact for data far from the origin
        mse = float(sums[0] / n)
        fvu = mse / total if total > 0 else math.inf
        return {
            "mse": mse,
            "fvu": fvu,
            "explained_variance": 1.0 - fvu,
            "explained_variance_legacy": float(legacy[0] / legacy[1]) if legacy[1] > 0 else math.nan,
            "cosine": float(sums[2] / n),
        }


def anchor_metrics(x: np.ndarray, xhat: np.ndarray, *, reduce: Reducer | None = None) -> dict[str, float]:
    """The reconstruction metrics the community reports, pooled over tokens in float64.

    With ``r = x − x̂``:

    - ``mse = mean_t ‖r_t‖²`` (sum over dimensions, mean over tokens);
    - ``fvu = mean_t ‖r_t‖² / (mean_t ‖x_t‖² − ‖mean_t x_t‖²)`` (SAELens ≥ 6: predicting the
      mean gives ``explained_variance = 1 − fvu = 0``, the identity 1);
    - ``explained_variance_legacy = mean_t [1 − ‖r_t‖² / ‖x_t − x̄‖²]`` (mean of per-token
      ratios; tokens with ``x_t = x̄`` are excluded from that mean);
    - ``cosine = mean_t cos(x_t, x̂_t)`` (0 for a token where either vector is zero).

    With a distributed ``reduce``, every mean runs over the tokens of all ranks.
    """
    red = reduce or LocalReducer()
    acc = AnchorSums(x.shape[1])
    acc.add(x, xhat)
    acc.set_mean(red)
    acc.add2(x, xhat)
    return acc.result(red)


def participation_ratio(eigenvalues: np.ndarray) -> float:
    """``(Σλ)² / Σλ²``: between 1 (one direction) and d (isotropic); 0 only for no variance.

    Computed on ``λ / max λ``, so neither tiny (``1e-170``) nor huge eigenvalues under- or
    overflow the squares.

    Examples
    --------
    >>> participation_ratio([1e-170, 1e-170, 1e-170])
    3.0
    """
    lam = np.clip(np.asarray(eigenvalues, dtype=float), 0.0, None)
    top = float(lam.max()) if lam.size else 0.0
    if not top > 0 or not math.isfinite(top):
        return 0.0
    u = lam / top
    return float(np.sum(u)) ** 2 / float(np.sum(u * u))


def mardia(
    x: np.ndarray,
    *,
    chunk: int = 2048,
    device: Any = None,
    progress: bool = False,
    reduce: Reducer | None = None,
) -> dict[str, float]:
    """Mardia's (1970) multivariate skewness ``b₁`` and kurtosis ``b₂`` with Gaussian-null z-scores.

    The rows are whitened with their own mean and 1/N covariance (on its numerical support of
    dimension ``p``), ``w_t``. Then

    - ``b₂ = mean_t ‖w_t‖⁴``; null mean ``p(p+2)(N−1)/(N+1)``, null variance ``8p(p+2)/N``,
      ``z = (b₂ − mean)/√var``;
    - ``b₁ = N⁻² Σ_{s,t} (w_s·w_t)³``; under the null ``N b₁/6 ~ χ²`` with
      ``f = p(p+1)(p+2)/6`` degrees of freedom, so the null mean is ``6f/N`` and
      ``z = (N b₁/6 − f)/√(2f)``.

    ``b₁`` is a sum over all pairs: O(N²p) time, computed in (chunk × N) Gram blocks of at most
    16 MiB, so memory stays O(N·p); with ``device`` (a torch device) everything runs there in
    float64 (a tensor ``x`` is worked on where it lives).
    With a distributed ``reduce`` the rows of all ranks count (each rank gathers the others'
    whitened rows for the pair sum).
    """
    red = reduce or LocalReducer()
    dev = resolve_device(device)
    if dev is not None or is_tensor(x):
        x = as_device_matrix(x, "x", dev if dev is not None else x.device, allow_empty=True)
    N = int(red.sum(x.shape[0]))
    if N < 3:
        raise InputError(f"Mardia statistics need at least 3 rows; got {N}.")
    z = x - like(red.sum(host(x.sum(axis=0))) / N, x)
    C = red.sum(host(z.T @ z)) / N
    lam, V = np.linalg.eigh(C)
    keep = lam > max(lam.max(), 0.0) * len(lam) * np.finfo(float).eps
    p = int(keep.sum())
    w = z @ like(V[:, keep] / np.sqrt(lam[keep]), z)
    sq = rowsq(w)
    b2 = float(red.sum(float((sq * sq).sum()))) / N
    w_all = like(red.gather_rows(host(w)), w) if red.distributed else w
    chunk = max(1, min(chunk, 2**21 // max(1, w_all.shape[0])))  # Gram blocks of ≤ 16 MiB
    b1_sum = 0.0
    starts = range(0, w.shape[0], chunk)
    if progress:
        from tqdm.auto import tqdm

        starts = tqdm(starts, desc="mardia skewness", unit="block", leave=False)
    for a in starts:
        G = w[a : a + chunk] @ w_all.T
        b1_sum += float((G * G * G).sum())
    b1 = float(red.sum(b1_sum)) / N**2
    b2_mean = p * (p + 2) * (N - 1) / (N + 1)
    b2_sd = math.sqrt(8 * p * (p + 2) / N)
    f = p * (p + 1) * (p + 2) / 6
    return {
        "mardia_skewness": b1,
        "mardia_kurtosis": b2,
        "mardia_skewness_null": 6 * f / N,
        "mardia_kurtosis_null": b2_mean,
        "mardia_skewness_z": (N * b1 / 6 - f) / math.sqrt(2 * f),
        "mardia_kurtosis_z": (b2 - b2_mean) / b2_sd,
        "mardia_dim": p,
    }


class RidgeSums:
    """Passes over training and test chunks that add up to :func:`ridge_r2`: means, centred
    cross-products (from which every penalty's validation error follows in closed form), test
    errors."""

    def __init__(self, p: int, q: int, alphas: np.ndarray | None = None) -> None:
        self.alphas = alphas
        self.n = np.zeros(2)  # fit, validation
        self.sx = np.zeros((2, p))
        self.sy = np.zeros((2, q))
        self.XtX = np.zeros((2, p, p))
        self.XtY = np.zeros((2, p, q))
        self.YtY = np.zeros(2)  # Σ‖y − ȳ‖² of each block

    # pass 1: means of the two training blocks (val: a host boolean mask)
    def add_train(self, X: Any, Y: Any, val: np.ndarray) -> None:
        for k, m in enumerate((~val, val)):
            m_ = like(m, X)
            self.n[k] += m.sum()
            self.sx[k] += host(X[m_].sum(axis=0))
            self.sy[k] += host(Y[m_].sum(axis=0))

    def set_means(self, red: Reducer) -> None:
        self.n = red.sum(self.n)
        if self.n[0] < 2 or self.n[1] < 1:
            raise InputError(f"too few training rows ({int(self.n.sum())}) for the ridge regression's validation split.")
        self.mx = red.sum(self.sx) / self.n[:, None]
        self.my = red.sum(self.sy) / self.n[:, None]

    # pass 2: centred cross-products
    def add_central(self, X: Any, Y: Any, val: np.ndarray) -> None:
        for k, m in enumerate((~val, val)):
            m_ = like(m, X)
            Xc, Yc = X[m_] - like(self.mx[k], X), Y[m_] - like(self.my[k], X)
            self.XtX[k] += host(Xc.T @ Xc)
            self.XtY[k] += host(Xc.T @ Yc)
            self.YtY[k] += float((Yc * Yc).sum())

    def set_cross(self, red: Reducer) -> None:
        self.XtX, self.XtY, self.YtY = red.sum(self.XtX), red.sum(self.XtY), red.sum(self.YtY)
        XtX_f = self.XtX[0]
        if self.alphas is None:
            self.alphas = float(np.trace(XtX_f)) / XtX_f.shape[0] * np.logspace(-6, 2, 9)
        self.alphas = np.maximum(np.asarray(self.alphas, dtype=float), 1e-300)
        s, V = np.linalg.eigh(XtX_f)
        VtXtY = V.T @ self.XtY[0]
        # Validation error of the fit-block model B_α = V diag(1/(s+α)) Vᵀ XᵀY at each α, from
        # the validation block's sums about the *fit* block's means (a shift of its own):
        # Σ‖y − ȳ_f − (x − x̄_f) B‖² = S_yy − 2 tr(Bᵀ S_xy) + tr(Bᵀ S_xx B). No pass over the rows.
        nv = self.n[1]
        dx, dy = self.mx[1] - self.mx[0], self.my[1] - self.my[0]
        Sxx = V.T @ (self.XtX[1] + nv * np.outer(dx, dx)) @ V
        Sxy = V.T @ (self.XtY[1] + nv * np.outer(dx, dy))
        Syy = self.YtY[1] + nv * float(dy @ dy)
        self.val_err = np.empty(len(self.alphas))
        for i, a in enumerate(self.alphas):
            C = VtXtY / (s + a)[:, None]
            self.val_err[i] = Syy - 2.0 * float(np.sum(C * Sxy)) + float(np.sum(C * (Sxx @ C)))

    def set_fit(self) -> None:
        best = float(self.alphas[int(np.argmin(self.val_err))])
        # all training rows: merge the two blocks' centred cross-products (Chan et al.)
        nf, nv = self.n
        n = nf + nv
        dx, dy = self.mx[1] - self.mx[0], self.my[1] - self.my[0]
        w = nf * nv / n
        XtX = self.XtX[0] + self.XtX[1] + w * np.outer(dx, dx)
        XtY = self.XtY[0] + self.XtY[1] + w * np.outer(dx, dy)
        self.mx_all = self.mx[0] + dx * (nv / n)
        self.my_all = self.my[0] + dy * (nv / n)
        XtX[np.diag_indices_from(XtX)] += best
        self.B = np.linalg.solve(XtX, XtY)
        self.test = np.zeros(2)

    # pass 3: held-out error and total
    def add_test(self, X: Any, Y: Any) -> None:
        Yc = Y - like(self.my_all, Y)
        E = Yc - (X - like(self.mx_all, X)) @ like(self.B, X)
        self.test += [float((E * E).sum()), float((Yc * Yc).sum())]

    def r2(self, red: Reducer) -> float:
        sse, total = red.sum(self.test)
        return 1.0 - float(sse) / float(total) if total > 0 else math.nan


def ridge_r2(
    X_train: np.ndarray,
    Y_train: np.ndarray,
    X_test: np.ndarray,
    Y_test: np.ndarray,
    *,
    seed: int = 0,
    alphas: np.ndarray | None = None,
    reduce: Reducer | None = None,
    offset: int = 0,
) -> float:
    """Held-out R² of a ridge regression of ``Y`` on ``X`` (both with intercept).

    The penalty is chosen from ``alphas`` (default ``10^{-6 … 2}`` times the mean eigenvalue of
    the centred ``XᵀX``) on a random 20 % validation split of the training rows, then the model
    is refitted on all training rows. R² is pooled over output dimensions:
    ``1 − Σ‖y − ŷ‖² / Σ‖y − ȳ_train‖²`` on the test rows. This is the "dark matter" measure of
    Engels et al. (2024) when ``Y`` is the residual and ``X`` the activations. With a
    distributed ``reduce`` each rank passes its own rows (``offset``: the global index of its
    first training row, which fixes the validation split independently of sharding).
    """
    red = reduce or LocalReducer()
    val = uniforms(offset, X_train.shape[0], seed, 7) < 0.2
    acc = RidgeSums(X_train.shape[1], Y_train.shape[1], alphas)
    acc.add_train(X_train, Y_train, val)
    acc.set_means(red)
    acc.add_central(X_train, Y_train, val)
    acc.set_cross(red)
    acc.set_fit()
    acc.add_test(X_test, Y_test)
    return acc.r2(red)
