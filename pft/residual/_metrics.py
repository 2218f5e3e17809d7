"""The statistics a residual report is made of, each a plain function on arrays."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pft._device import as_device_matrix, host, is_tensor, like, matmul_precision, resolve_device, rowdot, rowsq, single
from pft.errors import InputError
from pft.numeric import Moments
from pft.distributed import LocalReducer, Reducer, uniforms

__all__ = ["anchor_metrics", "mardia", "ridge_r2", "participation_ratio", "check_residual_scale", "joint_moments", "Ridge"]

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


def _refuse_overflow(name: str, big: float) -> None:
    if big > _MAX_ABS:
        raise InputError(
            f"`{name}` has values as large as {big:.3g}; beyond {_MAX_ABS:g} the residual's fourth moments "
            "overflow float64. Divide activations and reconstruction by one large factor (every score but "
            "`mse` is scale-invariant)."
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

    def add(self, x: Any, xhat: Any, r: Any = None) -> None:
        """One chunk's sums; ``r``: its ``x − x̂`` when the caller already has it."""
        if not x.shape[0]:
            return
        lo = host(x.amin(0) if is_tensor(x) else x.min(axis=0))
        hi = host(x.amax(0) if is_tensor(x) else x.max(axis=0))
        self.lo, self.hi = np.minimum(self.lo, lo), np.maximum(self.hi, hi)
        nx2, nh2 = host(rowsq(x)), host(rowsq(xhat))
        _refuse_overflow("activations", max(float(-lo.min()), float(hi.max())))
        if math.sqrt(float(nh2.max())) > _MAX_ABS:  # a row norm bounds every entry: look closer only then
            _refuse_overflow("reconstruction", float(host(abs(xhat).max())))
        denom = np.sqrt(nx2) * np.sqrt(nh2)
        cos = np.divide(host(rowdot(x, xhat)), denom, out=np.zeros_like(denom), where=denom > 0)
        self.n += x.shape[0]
        self.sx += host(x.sum(axis=0))
        self.sums += [float(rowsq(x - xhat if r is None else r).sum()), nx2.sum(), cos.sum()]

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

    def add2(self, x: Any, xhat: Any, r: Any = None) -> None:
        """The second pass's sums (about the pooled mean); ``r``: ``x − x̂`` when known."""
        dev = host(rowsq(x - like(self.mu, x)))
        ok = dev > 0
        r2 = host(rowsq(x - xhat if r is None else r))
        self.legacy += [np.sum(1.0 - r2[ok] / dev[ok]), ok.sum(), dev.sum()]

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


def joint_moments(x: Any, r: Any, *, block: int = 8192, precision: str = "float64") -> tuple[Moments, Moments]:
    """Statistics of the joint rows ``[x | r]`` and of ``r`` alone, from one Gram product.

    Returns ``(joint, rm)``: ``joint`` holds the count, mean and centred co-moment of the
    (n, d + q) rows ``[x | r]`` (its fourth-order terms are left at zero: nothing needs them);
    ``rm`` is the full :class:`~pft.numeric.Moments` of ``r`` (its co-moment is the joint one's
    lower-right block, plus ``Σ‖z‖²z`` and ``Σ‖z‖⁴`` for Ledoit–Wolf). The joint co-moment is
    the one O(n d²) product a residual score needs: every ridge regression of ``r`` on ``x``
    or on ``x̂ = x − r`` and every Gaussian held-out likelihood follows from it in closed form.
    Rows are taken ``block`` at a time and merged (Chan et al.), so memory stays O(block·d).
    ``precision`` is the arithmetic of the Gram product, as in
    :meth:`pft.numeric.Moments.from_array`: each block is centred in float64 and only its
    within-block sums are taken in float32 (or TF32 on CUDA), then merged in float64.
    Numpy arrays or float64 tensors on one device (reduced there; d-vectors and d × d sums
    come back).
    """
    d, q = int(x.shape[1]), int(r.shape[1])
    joint, rm = Moments(d=d + q), Moments(d=q)
    for a in range(0, int(x.shape[0]), block):
        xb, rb = x[a : a + block], r[a : a + block]
        n = int(xb.shape[0])
        mx, mr = xb.mean(axis=0), rb.mean(axis=0)
        if is_tensor(xb):
            import torch

            z = torch.cat([xb - mx, rb - mr], dim=1)
        else:  # the centred rows written once, into one buffer (no concatenated copy)
            z = np.empty((n, d + q))
            np.subtract(xb, mx, out=z[:, :d])
            np.subtract(rb, mr, out=z[:, d:])
        com = _gram(z, precision)
        zr = z[:, d:]
        sq = rowsq(zr)
        mean, com = np.concatenate([host(mx), host(mr)]), host(com)
        joint = joint.merge(Moments(d=d + q, count=n, mean=mean, comoment=com))
        rm = rm.merge(
            Moments(
                d=q, count=n, mean=mean[d:], comoment=com[d:, d:].copy(),
                norm2_z=host(zr.T @ sq), norm4=float(sq @ sq),
            )
        )
    return joint, rm


def _gram(z: Any, precision: str) -> Any:
    """``zᵀz`` with its products in ``precision``, returned in float64 (numpy or a tensor)."""
    if precision == "float64":
        return z.T @ z
    z32 = single(z)
    if not is_tensor(z):
        return (z32.T @ z32).astype(np.float64)
    import torch

    with matmul_precision(precision):
        return (z32.T @ z32).to(torch.float64)


def on_reconstruction(joint: Moments) -> Moments:
    """The joint statistics of ``[x̂ | r]`` from those of ``[x | r]`` (``x̂ = x − r``): a linear
    map of the rows, so the mean and co-moment map exactly (``A m``, ``A C Aᵀ``)."""
    d = joint.d // 2
    C, m = joint.comoment, joint.mean
    Cxx, Cxr, Crr = C[:d, :d], C[:d, d:], C[d:, d:]
    Chh = Cxx - Cxr - Cxr.T + Crr
    Chr = Cxr - Crr
    com = np.block([[Chh, Chr], [Chr.T, Crr]])
    return Moments(d=2 * d, count=joint.count, mean=np.concatenate([m[:d] - m[d:], m[d:]]), comoment=com)


def _about(m: Moments, ref: np.ndarray) -> np.ndarray:
    """A block's co-moment about ``ref`` instead of its own mean: ``C + n δδᵀ``."""
    delta = m.mean - ref
    return m.comoment + m.count * np.outer(delta, delta)


class Ridge:
    """A ridge regression of ``y`` on ``x`` (both with intercept) from block statistics alone.

    ``fit`` and ``val`` are :class:`~pft.numeric.Moments` of the joint rows ``[x | y]`` (the
    first ``p`` columns are ``x``) of the two training blocks. Each penalty's validation error
    comes from the blocks' sums in closed form (no pass over the rows):
    ``Σ‖y − ȳ_f − (x − x̄_f) B‖² = S_yy − 2 tr(Bᵀ S_xy) + tr(Bᵀ S_xx B)`` with the validation
    block's sums taken about the fit block's means. The best penalty is refitted on both
    blocks (merged exactly), and :meth:`r2` scores a test block the same way.
    """

    def __init__(self, fit: Moments, val: Moments, p: int, alphas: np.ndarray | None = None) -> None:
        if fit.count < 2 or val.count < 1:
            raise InputError(
                f"too few training rows ({fit.count + val.count}) for the ridge regression's validation split."
            )
        self.p = p
        C = fit.comoment
        XtX_f, XtY_f = C[:p, :p], C[:p, p:]
        if alphas is None:
            alphas = float(np.trace(XtX_f)) / p * np.logspace(-6, 2, 9)
        self.alphas = np.maximum(np.asarray(alphas, dtype=float), 1e-300)
        s, V = np.linalg.eigh(XtX_f)
        VtXtY = V.T @ XtY_f
        S = _about(val, fit.mean)
        Sxx = V.T @ S[:p, :p] @ V
        Sxy = V.T @ S[:p, p:]
        Syy = float(np.trace(S[p:, p:]))
        self.val_err = np.empty(len(self.alphas))
        for i, a in enumerate(self.alphas):
            Cf = VtXtY / (s + a)[:, None]
            self.val_err[i] = Syy - 2.0 * float(np.sum(Cf * Sxy)) + float(np.sum(Cf * (Sxx @ Cf)))
        self.alpha = float(self.alphas[int(np.argmin(self.val_err))])
        self.train = fit.merge(val)
        XtX = self.train.comoment[:p, :p].copy()
        XtX[np.diag_indices_from(XtX)] += self.alpha
        self.B = np.linalg.solve(XtX, self.train.comoment[:p, p:])

    def r2(self, test: Moments) -> float:
        """Held-out R² on a test block, pooled over outputs: ``1 − Σ‖y − ŷ‖² / Σ‖y − ȳ_train‖²``."""
        if test.count == 0:
            return math.nan
        p, B = self.p, self.B
        S = _about(test, self.train.mean)
        total = float(np.trace(S[p:, p:]))
        sse = total - 2.0 * float(np.sum(B * S[:p, p:])) + float(np.sum(B * (S[:p, :p] @ B)))
        return 1.0 - sse / total if total > 0 else math.nan


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
    blocks = []
    for Xb, Yb in ((X_train[~val], Y_train[~val]), (X_train[val], Y_train[val]), (X_test, Y_test)):
        Xb, Yb = np.asarray(Xb, dtype=float), np.asarray(Yb, dtype=float)
        w = np.concatenate([Xb, Yb], axis=1)
        m = Moments(d=w.shape[1]) if len(w) == 0 else Moments.from_array(w)
        blocks.append(red.moments(m))
    return Ridge(blocks[0], blocks[1], X_train.shape[1], alphas).r2(blocks[2])
