"""The result of :func:`pft.residual.score`."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pft._plotting import finish, panels, tidy
from pft._results import JsonResult

__all__ = ["ResidualReport", "compare"]

_ARRAYS = ("nongaussian_directions", "nongaussian_kurtosis", "nongaussian_z", "spectrum")
_DIRECTION_ARRAYS = ("nongaussian_skewness", "nongaussian_skewness_z", "nongaussian_filters", "nongaussian_variance_share")


def _fmt(v: float, width: int = 10) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return f"{'n/a':>{width}}"
    if isinstance(v, (int, np.integer)):
        return f"{v:>{width}d}"
    a = abs(v)
    if a != 0 and (a >= 1e5 or a < 1e-3):
        return f"{v:>{width}.3e}"
    return f"{v:>{width}.4f}"


@dataclass(frozen=True)
class ResidualReport(JsonResult):
    """How much an interpretation's residual ``r = x − x̂`` carries beyond a Gaussian.

    Reconstruction metrics use every token; everything fitted (backgrounds, directions,
    regressions) is fitted on the training split and evaluated on the held-out split.

    Attributes
    ----------
    mse : float
        ``mean_t ‖r_t‖²`` (sum over dimensions, mean over tokens).
    fvu : float
        ``mean_t ‖r_t‖² / (mean_t ‖x_t‖² − ‖mean_t x_t‖²)``.
    explained_variance : float
        ``1 − fvu`` (the SAELens ≥ 6 definition).
    explained_variance_legacy : float
        ``mean_t [1 − ‖r_t‖² / ‖x_t − x̄‖²]``, the mean of per-token ratios.
    cosine : float
        ``mean_t cos(x_t, x̂_t)``.
    gaussian_nll_bits : float
        Held-out negative log-likelihood per token (bits, summed over dimensions) of ``r`` under
        the Gaussian fitted on the training split (Ledoit–Wolf shrinkage).
    isotropic_nll_bits : float
        The same under an isotropic Gaussian with the training mean and total variance.
    correlation_bits : float
        ``isotropic_nll_bits − gaussian_nll_bits``: what correlations explain.
    effective_rank : float
        Participation ratio ``(Σλ)²/Σλ²`` of the residual covariance spectrum (training split).
    mardia_skewness, mardia_kurtosis : float
        Mardia's ``b₁`` and ``b₂`` of the held-out residual (see
        :func:`pft.residual._metrics.mardia` for the formulas).
    mardia_skewness_null, mardia_kurtosis_null : float
        Their means for Gaussian data of the same size and dimension.
    mardia_skewness_z, mardia_kurtosis_z : float
        z-scores under the Gaussian null: ``(N b₁/6 − f)/√(2f)`` with ``f = p(p+1)(p+2)/6``,
        ``(b₂ − p(p+2)(N−1)/(N+1)) / √(8p(p+2)/N)``.
    nongaussian_bits, nongaussian_bits_se : float
        Held-out log-likelihood gain per token (bits) of the perturbative background
        (:class:`pft.numeric.PerturbativeBackground`) over the Gaussian one, and its standard
        error ``std_t(gain_t)/√N_test`` (see :func:`score` for why that is honest here).
    nongaussian_directions : (k, d) ndarray
        Unit activation-space patterns of the residual's non-Gaussian directions (sparse-coding
        atoms and skew-and-kurtosis pursuit optima selected on training rows; see
        :func:`pft.numeric.feature_directions`): candidate missed features, most significant
        held-out excess kurtosis first.
    nongaussian_kurtosis, nongaussian_z : (k,) ndarray
        Their held-out excess kurtosis and its z-score under the Gaussian null (``√(24/N)``).
    nongaussian_skewness, nongaussian_skewness_z : (k,) ndarray
        Held-out skewness of the same projections and its null z-score (``√(6/N)``).
    nongaussian_filters : (k, d) ndarray
        Read-out filters ``f`` with ``fᵀ(x − μ)`` the unit-variance projection along each
        direction (``Σ⁻¹``-mapped patterns).
    nongaussian_variance_share : (k,) ndarray
        Share of the residual's total variance carried along each direction (``‖Σ^{1/2}u‖²/tr Σ``
        for its whitened unit vector ``u``).
    linear_predictable_fraction : float
        Held-out R² of ``r`` ridge-regressed on ``x`` (Engels et al. 2024 "dark matter").
    linear_predictable_from_reconstruction : float
        The same, regressed on ``x̂``.
    spectrum : (d,) ndarray
        Eigenvalues of the residual sample covariance (training split, 1/N), descending.
    n_tokens, n_train, n_test, d : int
    holdout : float
    seed : int
    shrinkage : float
        Ledoit–Wolf intensity of the Gaussian background.
    l0, dead_fraction : float
        Mean number of non-zero codes per token and the fraction of code dimensions never
        active (NaN when no codes were given).
    n_excluded : int
        Tokens left out by ``mask`` / ``exclude_positions`` (not in ``n_tokens``).
    excluded : str
        What left them out (``""``: nothing).
    nan_reasons : dict
        For every field that is NaN, why; shown in the table and written to the JSON.

    SAELens' names: ``mse``, ``l0``, ``explained_variance`` and ``explained_variance_legacy``
    are SAELens' own (the last one centres on the mean of all tokens; SAELens centres each
    evaluation batch on its own mean: ``score(..., saelens_batch=...)`` does the same);
    ``cossim`` is an alias of ``cosine``. :meth:`saelens_metrics` gathers them.
    """

    mse: float
    fvu: float
    explained_variance: float
    explained_variance_legacy: float
    cosine: float
    gaussian_nll_bits: float
    isotropic_nll_bits: float
    correlation_bits: float
    effective_rank: float
    mardia_skewness: float
    mardia_kurtosis: float
    mardia_skewness_null: float
    mardia_kurtosis_null: float
    mardia_skewness_z: float
    mardia_kurtosis_z: float
    nongaussian_bits: float
    nongaussian_bits_se: float
    nongaussian_directions: np.ndarray = field(repr=False)
    nongaussian_kurtosis: np.ndarray = field(repr=False)
    nongaussian_z: np.ndarray = field(repr=False)
    linear_predictable_fraction: float
    linear_predictable_from_reconstruction: float
    spectrum: np.ndarray = field(repr=False)
    n_tokens: int
    n_train: int
    n_test: int
    d: int
    holdout: float
    seed: int
    shrinkage: float
    l0: float = math.nan
    dead_fraction: float = math.nan
    nongaussian_skewness: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    nongaussian_skewness_z: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    nongaussian_filters: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    nongaussian_variance_share: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    n_excluded: int = 0
    excluded: str = ""
    nan_reasons: dict = field(default_factory=dict)

    @property
    def cossim(self) -> float:
        """SAELens' name of :attr:`cosine`."""
        return self.cosine

    def saelens_metrics(self) -> dict:
        """The numbers SAELens' ``run_evals`` also reports, under its names (flat dict)."""
        return {n: float(getattr(self, n)) for n in ("mse", "cossim", "explained_variance", "explained_variance_legacy", "l0")}

    # ------------------------------------------------------------------ serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ResidualReport":
        kw = dict(d)
        kw["nan_reasons"] = dict(kw.get("nan_reasons") or {})
        for name in _ARRAYS:
            kw[name] = np.asarray(kw[name], dtype=float)
        for name in _DIRECTION_ARRAYS:
            if name in kw:
                kw[name] = np.asarray(kw[name], dtype=float)
        for name in ("nongaussian_directions", "nongaussian_filters"):
            if name in kw and kw[name].ndim == 1:
                kw[name] = kw[name].reshape(0, kw["d"])
        return cls(**kw)


    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ResidualReport):
            return NotImplemented
        a, b = self.to_dict(), other.to_dict()
        return json.dumps(a) == json.dumps(b)

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ reading
    def __str__(self) -> str:
        L = []
        masked = f"; {self.n_excluded} more left out: {self.excluded}" if self.n_excluded else ""
        L.append(
            f"ResidualReport: {self.n_tokens} tokens ({self.n_train} fit / {self.n_test} held out{masked}), d = {self.d}"
        )
        why = self.nan_reasons or {}

        def row(label, value, note=""):
            if isinstance(value, float) and math.isnan(value):
                note = f"why: {why.get(label, 'not computed')}"
            L.append(f"  {label:<40}{_fmt(value)}  {note}".rstrip())

        L.append(" reconstruction")
        row("mse", self.mse, "mean over tokens of ‖x − x̂‖²")
        row("fvu", self.fvu, f"explained variance {self.explained_variance:.4f}")
        row("explained_variance_legacy", self.explained_variance_legacy, "mean of per-token ratios")
        row("cosine", self.cosine)
        row("l0", self.l0, f"dead codes {self.dead_fraction:.1%}")
        L.append(" Gaussian background (held out, bits per token)")
        row("gaussian_nll_bits", self.gaussian_nll_bits, f"Ledoit–Wolf shrinkage {self.shrinkage:.3g}")
        row("isotropic_nll_bits", self.isotropic_nll_bits)
        row("correlation_bits", self.correlation_bits, "what correlations explain")
        row("effective_rank", self.effective_rank, "participation ratio of the spectrum")
        L.append(" beyond correlations (held out)")
        row(
            "nongaussian_bits",
            self.nongaussian_bits,
            f"± {self.nongaussian_bits_se:.2g} (SE); ≈ 0 for a Gaussian residual",
        )
        row("mardia_kurtosis_z", self.mardia_kurtosis_z, f"b₂ = {self.mardia_kurtosis:.4g}, null {self.mardia_kurtosis_null:.4g}")
        row("mardia_skewness_z", self.mardia_skewness_z, f"b₁ = {self.mardia_skewness:.4g}, null {self.mardia_skewness_null:.4g}")
        L.append(" linear predictability (held-out R²)")
        row("linear_predictable_fraction", self.linear_predictable_fraction, "r regressed on x")
        row("linear_predictable_from_reconstruction", self.linear_predictable_from_reconstruction, "r regressed on x̂")
        k = len(self.nongaussian_kurtosis)
        if k:
            L.append(" non-Gaussian directions (candidate missed features; nongaussian_directions[i])")
            has_skew = len(self.nongaussian_skewness) == k
            head = f"  {'i':>3} {'excess kurtosis':>16} {'z':>10}"
            L.append(head + (f" {'skewness':>10} {'z':>10} {'variance share':>15}" if has_skew else ""))
            for i in range(k):
                line = f"  {i:>3} {self.nongaussian_kurtosis[i]:>16.3f} {self.nongaussian_z[i]:>10.1f}"
                if has_skew:
                    line += (f" {self.nongaussian_skewness[i]:>10.3f} {self.nongaussian_skewness_z[i]:>10.1f}"
                             f" {self.nongaussian_variance_share[i]:>15.4f}")
                L.append(line)
        return "\n".join(L)

    def plot(self, path: Any = None, *, ax: Any = None) -> Any:
        """The residual spectrum and the held-out kurtosis z of the top directions.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (atomically; the format from the extension).
        ax : matplotlib Axes or sequence of two, optional
            Draw on these instead of a new figure: one Axes gets the spectrum only, two get
            both panels.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot), or ``ax``'s.
        """
        fig, (a1, a2) = panels(ax, 2, figsize=(10, 3.8))
        lam = np.asarray(self.spectrum)
        a1.semilogy(np.arange(1, len(lam) + 1), np.clip(lam, 1e-300, None), ".-", lw=1)
        a1.set_xlabel("index")
        a1.set_ylabel("eigenvalue of residual covariance")
        a1.set_title(f"residual spectrum (effective rank {self.effective_rank:.1f})")
        if a2 is not None:
            k = len(self.nongaussian_z)
            if k:
                a2.bar(np.arange(k), self.nongaussian_z, color="tab:red")
                a2.axhline(4, color="k", ls="--", lw=0.8)
                a2.axhline(-4, color="k", ls="--", lw=0.8)
            a2.set_xlabel("direction (most significant first)")
            a2.set_ylabel("held-out excess-kurtosis z")
            a2.set_title(f"non-Gaussian: {self.nongaussian_bits:.3g} ± {self.nongaussian_bits_se:.2g} bits/token")
        tidy(fig, ax)
        return finish(fig, path)


def compare(reports: dict[str, ResidualReport], *, truth: dict[str, np.ndarray] | None = None) -> str:
    """An aligned table comparing several interpretations' reports, one row each.

    ``truth`` optionally maps a name to known missing directions (rows); the table then shows
    the mean over those directions of the best ``|cos|`` with the reported directions.
    """
    head = (
        f"{'interpretation':<16}{'FVU':>8}{'MSE':>10}{'nongauss bits':>20}{'Mardia kurt z':>15}"
        f"{'top |z|':>10}{'lin. pred.':>11}"
    )
    if truth:
        head += f"{'found |cos|':>13}"
    lines = [head, "-" * len(head)]
    for name, rep in reports.items():
        ng = f"{rep.nongaussian_bits:.4f} ± {rep.nongaussian_bits_se:.4f}"
        top = float(np.max(np.abs(rep.nongaussian_z))) if len(rep.nongaussian_z) else math.nan
        line = (
            f"{name:<16}{rep.fvu:>8.4f}{rep.mse:>10.4g}{ng:>20}{rep.mardia_kurtosis_z:>15.1f}"
            f"{top:>10.1f}{rep.linear_predictable_fraction:>11.3f}"
        )
        if truth:
            t = truth.get(name)
            if t is not None and len(t):
                c = np.abs(rep.nongaussian_directions @ np.asarray(t).T).max(axis=0).mean()
                line += f"{c:>13.3f}"
            else:
                line += f"{'-':>13}"
        lines.append(line)
    return "\n".join(lines)
