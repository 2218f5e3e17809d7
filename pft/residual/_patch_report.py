"""The result of :func:`pft.residual.patch_scores`."""

from __future__ import annotations

import json
import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pft._plotting import finish, panels, tidy
from pft._results import JsonResult

__all__ = ["PatchReport", "RUNGS"]

#: The rungs, in the order they are run and reported, with what the hooked output becomes.
RUNGS = {
    "clean": "x (unpatched)",
    "zero_ablation": "0",
    "mean_ablation": "mean_t x_t",
    "recon": "x̂ (zero residual)",
    "recon+mean": "x̂ + mean_t r_t",
    "recon+gaussian": "x̂ + z,  z ~ N(μ_r, Σ_r)",
    "recon+perturbative": "x̂ + z,  z ~ perturbative background",
    "recon+residual": "x̂ + (x − x̂)  (sanity check)",
}

_ARRAYS = ("loss", "loss_se", "kl", "kl_se")


def _ljust(s: str, width: int) -> str:
    """Left-justify counting display columns (combining accents such as x̂'s take none)."""
    return s + " " * max(width - sum(not unicodedata.combining(ch) for ch in s), 0)


def _f(v: float, spec: str = ".4f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


@dataclass(frozen=True)
class PatchReport(JsonResult):
    """What the model does when a module's output is replaced, rung by rung.

    Attributes
    ----------
    rungs : tuple of str
        The rungs run, in order (a subset of ``clean``, ``zero_ablation``, ``mean_ablation``,
        ``recon``, ``recon+mean``, ``recon+gaussian``, ``recon+perturbative``, ``recon+residual``).
    loss, loss_se : (n_rungs,) ndarray
        Mean downstream loss of each rung and its standard error (over rows, see
        :func:`patch_scores`).
    kl, kl_se : (n_rungs,) ndarray
        Mean ``KL(p_clean ‖ p_rung)`` per token (nats) and its standard error; NaN when the
        model does not return logits.
    ce_loss_recovered, ce_loss_recovered_se : float
        SAELens' score ``(L_zero − L_recon) / (L_zero − L_clean)``.
    mean_ablation_recovered, mean_ablation_recovered_se : float
        The same with mean ablation as the baseline.
    gaussian_recovered, gaussian_recovered_se : float
        ``(L_recon − L_gauss) / (L_recon − L_clean)``: the share of the gap between the bare
        reconstruction and the clean model that a token-independent Gaussian residual with the
        fitted mean and covariance closes. 1: the model treats the residual as noise; 0 or less:
        it uses what the residual carries.
    perturbative_recovered, perturbative_recovered_se : float
        The same with draws from the perturbative background (NaN when not run).
    kl_score : float
        SAELens' ``(KL_zero − KL_recon) / KL_zero`` (NaN without logits).
    sanity_delta : float
        ``L_{recon+residual} − L_clean`` (checked to be within tolerance).
    n_rows, n_tokens, d, n_resamples, seed : int
        ``n_rows``: rows in the loss averages (rows with nothing that counts are left out);
        ``n_tokens``: tokens at the hooked module that count (spliced, and fitted on).
    module : str
    background : str
        What the noise rungs drew from.
    loss_name : str
    n_excluded : int
        Tokens at the hooked module that did not count (``mask`` / ``exclude_positions`` of
        :func:`patch_scores`): never spliced, fitted on or averaged over.
    excluded : str
        What excluded them (``""``: nothing was, ``"positions (0,)"``, ``"mask"``, ...).
    convention : str
        ``"pft"`` (masked tokens stay clean in every rung) or ``"saelens"`` (the ablation rungs
        replace every token, masked ones included, as SAELens' ``run_evals`` does).
    nan_reasons : dict
        For every field that is NaN, why (a rung not run, no logits found, a zero denominator);
        shown in the table and written to the JSON.

    SAELens' names are read-only aliases: ``ce_loss_score`` (``ce_loss_recovered``),
    ``kl_div_score`` (``kl_score``), ``ce_loss_without_sae`` / ``ce_loss_with_sae`` /
    ``ce_loss_with_ablation`` (the mean loss of the clean / recon / zero_ablation rungs) and
    ``kl_div_with_sae`` / ``kl_div_with_ablation`` (their KL); :meth:`saelens_metrics` gathers them.
    """

    rungs: tuple
    loss: np.ndarray = field(repr=False)
    loss_se: np.ndarray = field(repr=False)
    kl: np.ndarray = field(repr=False)
    kl_se: np.ndarray = field(repr=False)
    ce_loss_recovered: float
    ce_loss_recovered_se: float
    mean_ablation_recovered: float
    mean_ablation_recovered_se: float
    gaussian_recovered: float
    gaussian_recovered_se: float
    perturbative_recovered: float
    perturbative_recovered_se: float
    kl_score: float
    sanity_delta: float
    n_rows: int
    n_tokens: int
    d: int
    n_resamples: int
    seed: int
    module: str
    background: str
    loss_name: str = "loss"
    n_excluded: int = 0
    excluded: str = ""
    convention: str = "pft"
    nan_reasons: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ access
    def loss_of(self, rung: str) -> float:
        """Mean loss of one rung (``KeyError`` naming the rungs run when absent)."""
        if rung not in self.rungs:
            raise KeyError(f"rung {rung!r} was not run; rungs: {', '.join(self.rungs)}")
        return float(self.loss[self.rungs.index(rung)])

    def kl_of(self, rung: str) -> float:
        """Mean KL to the clean model of one rung (NaN without logits)."""
        self.loss_of(rung)
        return float(self.kl[self.rungs.index(rung)])

    # ------------------------------------------------------------------ SAELens' names
    @property
    def ce_loss_score(self) -> float:
        """SAELens' name of :attr:`ce_loss_recovered`."""
        return self.ce_loss_recovered

    @property
    def kl_div_score(self) -> float:
        """SAELens' name of :attr:`kl_score`."""
        return self.kl_score

    def _rung_or_nan(self, rung: str, kl: bool = False) -> float:
        if rung not in self.rungs:
            return math.nan
        return self.kl_of(rung) if kl else self.loss_of(rung)

    @property
    def ce_loss_without_sae(self) -> float:
        """SAELens' name of the clean rung's mean loss."""
        return self._rung_or_nan("clean")

    @property
    def ce_loss_with_sae(self) -> float:
        """SAELens' name of the recon rung's mean loss."""
        return self._rung_or_nan("recon")

    @property
    def ce_loss_with_ablation(self) -> float:
        """SAELens' name of the zero_ablation rung's mean loss."""
        return self._rung_or_nan("zero_ablation")

    @property
    def kl_div_with_sae(self) -> float:
        """SAELens' name of the recon rung's mean KL to the clean model."""
        return self._rung_or_nan("recon", kl=True)

    @property
    def kl_div_with_ablation(self) -> float:
        """SAELens' name of the zero_ablation rung's mean KL to the clean model."""
        return self._rung_or_nan("zero_ablation", kl=True)

    def saelens_metrics(self) -> dict:
        """The numbers SAELens' ``run_evals`` also reports, under its names (flat dict)."""
        names = ("ce_loss_score", "ce_loss_without_sae", "ce_loss_with_sae", "ce_loss_with_ablation",
                 "kl_div_score", "kl_div_with_sae", "kl_div_with_ablation")
        return {n: float(getattr(self, n)) for n in names}

    # ------------------------------------------------------------------ serialisation
    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PatchReport":
        kw = dict(d)
        kw["rungs"] = tuple(kw["rungs"])
        kw["nan_reasons"] = dict(kw.get("nan_reasons") or {})
        for name in _ARRAYS:
            kw[name] = np.asarray(kw[name], dtype=float)
        return cls(**kw)


    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatchReport):
            return NotImplemented
        return json.dumps(self.to_dict()) == json.dumps(other.to_dict())

    __hash__ = None  # type: ignore[assignment]

    # ------------------------------------------------------------------ reading
    def __str__(self) -> str:
        has_kl = bool(np.any(np.isfinite(self.kl)))
        masked = f" ({self.n_excluded} more left clean: {self.excluded})" if self.n_excluded else ""
        L = [
            f"PatchReport: {self.module}, {self.n_rows} rows / {self.n_tokens} tokens{masked}, d = {self.d}, "
            f"{self.n_resamples} resamples, noise from {self.background}"
        ]
        head = f"  {'rung':<20}{'output becomes':<38}{self.loss_name:>12}{'± SE':>10}"
        if has_kl:
            head += f"{'KL to clean':>13}{'± SE':>10}"
        L.append(head)
        L.append("  " + "-" * (len(head) - 2))
        for i, name in enumerate(self.rungs):
            line = f"  {name:<20}{_ljust(RUNGS.get(name, ''), 38)}{self.loss[i]:>12.5f}{self.loss_se[i]:>10.2g}"
            if has_kl:
                line += f"{_f(float(self.kl[i]), '.5f'):>13}{_f(float(self.kl_se[i]), '.2g'):>10}"
            L.append(line)
        why = self.nan_reasons or {}
        if not has_kl:
            L.append(f"  KL to clean: n/a, why: {why.get('kl', 'not computed')}")

        def row(label, v, se, note):
            if isinstance(v, float) and math.isnan(v):
                note = f"why: {why.get(label, 'not computed')}"
                L.append(f"  {label:<26}{'n/a':>10}  {'':<10}  {note}")
                return
            L.append(f"  {label:<26}{_f(v):>10}  ± {_f(se, '.2g'):<8}  {note}")

        L.append(" scores")
        row("ce_loss_recovered", self.ce_loss_recovered, self.ce_loss_recovered_se, "(L_zero − L_recon)/(L_zero − L_clean), SAELens ce_loss_score")
        row("mean_ablation_recovered", self.mean_ablation_recovered, self.mean_ablation_recovered_se, "the same against mean ablation")
        row("gaussian_recovered", self.gaussian_recovered, self.gaussian_recovered_se, "(L_recon − L_gauss)/(L_recon − L_clean); 1 = residual is noise to the model")
        row("perturbative_recovered", self.perturbative_recovered, self.perturbative_recovered_se, "the same with perturbative draws")
        if not math.isnan(self.kl_score):
            L.append(f"  {'kl_score':<26}{self.kl_score:>10.4f}  {'':<10}  (KL_zero − KL_recon)/KL_zero, SAELens kl_div_score")
        else:
            L.append(f"  {'kl_score':<26}{'n/a':>10}  {'':<10}  why: {why.get('kl_score', 'not computed')}")
        L.append(f"  {'sanity: L_true − L_clean':<26}{self.sanity_delta:>10.2e}"
                 + ("  (first batch; recon+residual not in rungs)" if "recon+residual" not in self.rungs else ""))
        if self.convention != "pft":
            L.append(f"  convention {self.convention!r}: the ablation rungs replace masked tokens too")
        return "\n".join(L)

    def plot(self, path: Any = None, *, ax: Any = None) -> Any:
        """Mean loss (and KL to the clean model, when there are logits) per rung with standard
        errors.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (atomically; the format from the extension).
        ax : matplotlib Axes or sequence of two, optional
            Draw on these instead of a new figure: one Axes gets the losses only, two get the
            losses and the KLs.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot), or ``ax``'s.
        """
        has_kl = bool(np.any(np.isfinite(self.kl)))
        fig, axes = panels(ax, 2 if has_kl else 1, figsize=(11 if has_kl else 6.5, 4))
        y = np.arange(len(self.rungs))
        colors = ["tab:green" if r == "clean" else "tab:gray" if "ablation" in r else "tab:blue" for r in self.rungs]
        a = axes[0]
        a.barh(y, self.loss, xerr=self.loss_se, color=colors)
        a.axvline(self.loss_of("clean"), color="k", lw=0.8, ls="--")
        a.set_yticks(y, self.rungs)
        a.invert_yaxis()
        a.set_xlabel(f"mean {self.loss_name}")
        a.set_title(
            f"CE recovered {_f(self.ce_loss_recovered, '.3f')}, Gaussian recovered {_f(self.gaussian_recovered, '.3f')}",
            fontsize=10,
        )
        if has_kl and axes[1] is not None:
            a = axes[1]
            a.barh(y, np.nan_to_num(self.kl), xerr=np.nan_to_num(self.kl_se), color=colors)
            a.set_yticks(y, self.rungs)
            a.invert_yaxis()
            a.set_xlabel("KL(p_clean ‖ p_rung), nats per token")
        if ax is None:
            fig.suptitle(self.module, fontsize=10)
        tidy(fig, ax)
        return finish(fig, path)
