"""score_across: an interpretation's residual scores on naturally degraded copies of a model.

A finding on one trained network may be an accident of those weights. Re-scoring on copies
drawn from the tempered local posterior (:func:`pft.degrade.degraded_models`) shows which
scores, and which differences between interpretations, survive as the temperature rises.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from pft._plotting import finish, panels, tidy
from pft._results import JsonResult
from pft._validate import check_choice, check_seed
from pft.errors import InputError

__all__ = ["score_across", "AcrossReport"]

#: metrics shown by ``AcrossReport.__str__`` (all float fields of the report are kept).
DEFAULT_METRICS = ("nongaussian_bits", "mardia_kurtosis_z", "fvu")


def _float_fields(report) -> dict[str, float]:
    out = {}
    for f in dataclasses.fields(report):
        v = getattr(report, f.name)
        if isinstance(v, (float, int, np.floating, np.integer)) and not isinstance(v, bool):
            out[f.name] = float(v)
    return out


def _reconstruct(interp, activations, name):
    codes = None
    if callable(interp):
        out = interp(activations)
    else:
        out = interp
    if isinstance(out, tuple):
        if len(out) != 2:
            raise InputError(
                f"interpretation {name!r} returned a tuple of length {len(out)}; expected "
                "reconstruction or (reconstruction, codes)."
            )
        out, codes = out
    return out, codes


@dataclass(frozen=True)
class AcrossReport(JsonResult):
    """Residual scores of several interpretations over degraded copies of a model.

    Attributes
    ----------
    rows : tuple of dict
        One per (model copy, interpretation): ``interpretation``, ``temperature``, ``draw``,
        ``loss_increase`` and every scalar field of :class:`ResidualReport` (``fvu``,
        ``nongaussian_bits``, ``nongaussian_bits_se``, ``mardia_kurtosis_z``, ...).
    interpretations : tuple of str
    temperatures : tuple of float
        Sorted distinct temperatures (``1/β``; ``0`` is the trained model).
    """

    rows: tuple
    interpretations: tuple
    temperatures: tuple

    def values(self, metric: str, interpretation: str, temperature: float) -> np.ndarray:
        """The metric over the draws at one temperature, shape ``(n_draws,)``."""
        self._check_metric(metric)
        return np.array(
            [
                r[metric]
                for r in self.rows
                if r["interpretation"] == interpretation and r["temperature"] == temperature
            ]
        )

    def summary(self, metric: str) -> dict:
        """``{interpretation: [(temperature, mean, se, mean loss increase, n_draws), ...]}``.

        ``se`` is the standard error over draws (``nan`` for one draw) — the spread of the
        degraded models, not the metric's own sampling error.
        """
        self._check_metric(metric)
        out = {}
        for name in self.interpretations:
            lines = []
            for t in self.temperatures:
                rows = [r for r in self.rows if r["interpretation"] == name and r["temperature"] == t]
                if not rows:
                    continue
                v = np.array([r[metric] for r in rows])
                dl = float(np.mean([r["loss_increase"] for r in rows]))
                se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
                lines.append((t, float(v.mean()), se, dl, len(v)))
            out[name] = lines
        return out

    def advantage(self, metric: str, better: str, worse: str) -> list:
        """Per temperature, ``metric[worse] - metric[better]`` paired over the same model
        copies: ``[(temperature, mean, se, n_draws), ...]``. For a metric where lower is
        better (``nongaussian_bits``, ``mardia_kurtosis_z``, ``fvu``) a positive mean is an
        advantage of ``better``; it survives tempering while ``mean > 2 se``.

        ``se`` is the standard error of the paired differences over the copies; with a
        single copy (the trained weights) it is ``hypot(se_better, se_worse)`` from the
        metric's own ``<metric>_se`` field when the report has one (``nongaussian_bits``),
        else ``nan``."""
        self._check_metric(metric)
        check_choice(better, "better", self.interpretations)
        check_choice(worse, "worse", self.interpretations)
        out = []
        for t in self.temperatures:
            a = {r["draw"]: r[metric] for r in self.rows if r["interpretation"] == better and r["temperature"] == t}
            b = {r["draw"]: r[metric] for r in self.rows if r["interpretation"] == worse and r["temperature"] == t}
            common = sorted(set(a) & set(b))
            diff = np.array([b[k] - a[k] for k in common])
            if len(diff) > 1:
                se = float(diff.std(ddof=1) / math.sqrt(len(diff)))
            elif len(diff) == 1 and f"{metric}_se" in self.rows[0]:
                # one copy (e.g. the trained weights): the metric's own sampling errors
                sa = next(r[f"{metric}_se"] for r in self.rows if r["interpretation"] == better and r["temperature"] == t)
                sb = next(r[f"{metric}_se"] for r in self.rows if r["interpretation"] == worse and r["temperature"] == t)
                se = float(math.hypot(sa, sb))
            else:
                se = float("nan")
            out.append((t, float(diff.mean()) if len(diff) else float("nan"), se, len(diff)))
        return out

    def _check_metric(self, metric: str) -> None:
        have = sorted(k for k in (self.rows[0] if self.rows else {}) if k not in ("interpretation",))
        check_choice(metric, "metric", have)

    def to_dict(self) -> dict:
        return {
            "rows": [dict(r) for r in self.rows],
            "interpretations": list(self.interpretations),
            "temperatures": list(self.temperatures),
        }


    @classmethod
    def from_dict(cls, d: dict) -> "AcrossReport":
        rows = tuple({k: (float("nan") if v is None else v) for k, v in r.items()} for r in d["rows"])
        return cls(rows=rows, interpretations=tuple(d["interpretations"]), temperatures=tuple(d["temperatures"]))


    def __str__(self) -> str:
        metrics = [m for m in DEFAULT_METRICS if self.rows and m in self.rows[0]]
        width = max([len(n) for n in self.interpretations] + [14])
        head = f"{'interpretation'.ljust(width)}  {'1/β':>8}  {'ΔL':>9}  " + "  ".join(
            f"{m:>22}" for m in metrics
        )
        lines = [f"AcrossReport: {len(self.rows)} scores, temperatures {list(self.temperatures)}", head]
        sums = {m: self.summary(m) for m in metrics}
        for name in self.interpretations:
            for i, (t, _, _, dl, k) in enumerate(sums[metrics[0]][name] if metrics else []):
                cells = []
                for m in metrics:
                    _, mean, se, _, _ = sums[m][name][i]
                    cells.append(f"{mean:>12.4g} ± {se:<7.2g}" if math.isfinite(se) else f"{mean:>12.4g}" + " " * 10)
                lines.append(f"{name.ljust(width)}  {t:>8.4g}  {dl:>9.3g}  " + "  ".join(cells))
        return "\n".join(lines)

    def plot(self, path: Any = None, *, ax: Any = None, metric: str = "nongaussian_bits") -> Any:
        """Each interpretation's ``metric`` (mean ± se over draws) against temperature and
        against the mean loss increase.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (atomically; the format from the extension).
        ax : matplotlib Axes or sequence of two, optional
            Draw on these instead of a new figure: one Axes gets the temperature panel only,
            two get both.
        metric : str, default "nongaussian_bits"
            A scalar field of the rows.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot), or ``ax``'s.
        """
        summ = self.summary(metric)
        fig, axes = panels(ax, 2, figsize=(10, 3.8), dpi=100)
        for name, lines in summ.items():
            t = np.array([x[0] for x in lines])
            m = np.array([x[1] for x in lines])
            s = np.nan_to_num(np.array([x[2] for x in lines]))
            dl = np.array([x[3] for x in lines])
            axes[0].errorbar(t, m, yerr=s, marker="o", capsize=3, label=name)
            if axes[1] is not None:
                axes[1].errorbar(dl, m, yerr=s, marker="o", capsize=3, label=name)
        axes[0].set_xlabel("temperature 1/β (0 = trained weights)")
        if axes[1] is not None:
            axes[1].set_xlabel("loss increase L(w) − L(w*)")
        for a in axes:
            if a is not None:
                a.set_ylabel(metric)
        axes[0].legend(fontsize=8)
        tidy(fig, ax)
        return finish(fig, path)


def score_across(
    models: Iterable,
    activations_fn: Callable,
    interpretations: Mapping[str, Any] | Callable,
    *,
    holdout: float = 0.2,
    seed: int = 0,
    progress: bool = True,
    patch: Mapping[str, Any] | None = None,
    **score_kwargs,
) -> AcrossReport:
    """Run :func:`pft.residual.score` for each interpretation on each degraded model copy.

    Parameters
    ----------
    models : iterable of DegradedModel
        E.g. :func:`pft.degrade.degraded_models`; anything with attributes ``model``,
        ``temperature``, ``loss_increase`` and ``draw`` works.
    activations_fn : callable
        ``activations_fn(model) -> (N, d)`` activations of one copy (numpy or torch).
    interpretations : mapping of str to callable or array, or one callable
        ``interpretation(activations) -> reconstruction`` or ``(reconstruction, codes)``, both
        ``(N, d)`` / ``(N, m)``; an array is a fixed reconstruction used for every copy (a
        prediction from upstream that does not see these activations). A single callable is
        named ``"interpretation"``.
    holdout, seed, progress, **score_kwargs
        Passed to :func:`pft.residual.score` (its own bar is off; ``progress`` shows one bar
        over the scores).
    patch : mapping, optional
        Also run :func:`pft.residual.patch_scores` on every copy and interpretation, with these
        arguments (at least ``module``, ``batches`` — a list — and ``loss_fn``); its scalar
        results join each row prefixed ``patch_`` (``patch_gaussian_recovered``,
        ``patch_ce_loss_recovered``, ...). Interpretations must then be callables.

    Returns
    -------
    AcrossReport
        ``rows`` per (copy, interpretation); ``summary(metric)``, ``advantage(metric, a, b)``,
        ``plot(path)``; ``str()`` is a table per interpretation and temperature.

    Notes
    -----
    The copies are consumed once; each model is dropped after its activations are taken (and,
    with ``patch``, after it has been patched).

    References
    ----------
    Watanabe (2013), JMLR 14 (the tempered posterior); Lau et al. (2023), arXiv:2308.12108.

    Examples
    --------
    >>> import numpy as np
    >>> from types import SimpleNamespace
    >>> rng = np.random.default_rng(0)
    >>> x = rng.standard_normal((600, 4))
    >>> models = [SimpleNamespace(model=s, temperature=float(t), loss_increase=0.1 * t, draw=k)
    ...           for k, (t, s) in enumerate([(0, 0.2), (1, 0.5), (1, 0.6)])]
    >>> rep = score_across(models, lambda s: x + s * rng.standard_normal(x.shape),
    ...                    {"identity": lambda a: x, "half": lambda a: 0.5 * x}, progress=False)
    >>> rep.temperatures, rep.interpretations
    ((0.0, 1.0), ('identity', 'half'))
    >>> len(rep.rows)
    6
    """
    if not callable(activations_fn):
        raise InputError(f"`activations_fn` must be callable as activations_fn(model); got {activations_fn!r}.")
    if callable(interpretations) and not isinstance(interpretations, Mapping):
        interpretations = {"interpretation": interpretations}
    if not isinstance(interpretations, Mapping) or not interpretations:
        raise InputError(
            "`interpretations` must be a non-empty mapping name -> callable(activations) or array; "
            f"got {type(interpretations).__name__}."
        )
    for name in interpretations:
        if not isinstance(name, str):
            raise InputError(f"`interpretations` keys must be strings (the names); got {name!r}.")
    seed = check_seed(seed)

    from tqdm.auto import tqdm

    from pft.residual._patch import patch_scores
    from pft.residual._score import score

    if patch is not None:
        need = {"module", "batches", "loss_fn"}
        if not isinstance(patch, Mapping) or not need <= set(patch):
            raise InputError(
                f"`patch` must be a mapping with at least {sorted(need)} (the arguments of "
                f"patch_scores); got {patch!r}."
            )
        if hasattr(patch["batches"], "__next__"):
            raise InputError("`patch['batches']` is an iterator; pass a list (it is used once per copy).")

    rows = []
    bar = tqdm(desc="score_across", unit="score", disable=not progress)
    try:
        for copy in models:
            missing = [a for a in ("model", "temperature", "loss_increase", "draw") if not hasattr(copy, a)]
            if missing:
                raise InputError(
                    f"each item of `models` needs attributes model, temperature, loss_increase, draw "
                    f"(a pft.degrade.DegradedModel); got {type(copy).__name__} without {missing}."
                )
            acts = activations_fn(copy.model)
            if hasattr(acts, "detach"):
                acts = acts.detach().cpu().numpy()
            acts = np.asarray(acts)
            for name, interp in interpretations.items():
                recon, codes = _reconstruct(interp, acts, name)
                if hasattr(recon, "detach"):
                    recon = recon.detach().cpu().numpy()
                if hasattr(codes, "detach"):
                    codes = codes.detach().cpu().numpy()
                report = score(acts, recon, codes=codes, holdout=holdout, seed=seed, progress=False, **score_kwargs)
                row = {
                    "interpretation": name,
                    "temperature": float(copy.temperature),
                    "draw": int(copy.draw),
                    "loss_increase": float(copy.loss_increase),
                }
                row.update(_float_fields(report))
                if patch is not None:
                    if not callable(interp):
                        raise InputError(
                            f"interpretation {name!r} is an array; `patch` needs callables that map a "
                            "batch's activations to their reconstruction."
                        )
                    rep = patch_scores(copy.model, interpretation=interp, seed=seed, progress=False, **patch)
                    row.update({f"patch_{k}": v for k, v in _float_fields(rep).items()})
                rows.append(row)
                bar.update()
    finally:
        bar.close()
    if not rows:
        raise InputError("`models` yielded no model copies; nothing was scored.")
    temps = tuple(sorted({r["temperature"] for r in rows}))
    return AcrossReport(rows=tuple(rows), interpretations=tuple(interpretations), temperatures=temps)
