"""detection_power(): how rare or weak can a missed feature be before pft cannot see it?

Knockouts (:func:`pft.residual.knockout`) of the user's own latents, swept across firing rate
and token count; each knockout and its same-FVU twin are scored and the knocked-out directions
looked up among the reported ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from pft._plotting import finish, panels, tidy
from pft._results import JsonResult
from pft._deprecation import renamed_keywords
from pft._validate import as_matrix, check_float, check_int, check_seed
from pft.errors import InputError
from pft.residual._knockout import knockout, latent_stats

__all__ = ["PowerResult", "detection_power"]


@dataclass(frozen=True)
class PowerResult(JsonResult):
    """What :func:`detection_power` measured: one row per knocked-out latent (the ``latent_*``
    arrays) and one per knockout group (the ``group_*`` arrays).

    Attributes
    ----------
    latent_tokens, latent_group : (L,) ndarray of int
        Tokens scored, and the index of the latent's group.
    latent, latent_firing_rate, latent_energy_share : (L,) ndarray
        Which latent, its firing rate and energy share (on the tokens scored).
    latent_best_cos, latent_found : (L,) ndarray
        Best ``|cos|`` of its decoder direction with the reported directions; whether it reaches
        ``threshold``.
    group_tokens, group_target_rate : (G,) ndarray
    group_bits, group_bits_se, group_twin_bits, group_twin_bits_se : (G,) ndarray
        ``nongaussian_bits`` ± SE of the knockout and of its twin.
    group_separation : (G,) ndarray
        ``(bits − twin_bits) / √(se² + twin_se²)``.
    group_recall : (G,) ndarray
        Fraction of the group's latents found.
    threshold : float
    n_directions : int
    """

    latent_tokens: np.ndarray
    latent_group: np.ndarray
    latent: np.ndarray
    latent_firing_rate: np.ndarray
    latent_energy_share: np.ndarray
    latent_best_cos: np.ndarray
    latent_found: np.ndarray
    group_tokens: np.ndarray
    group_target_rate: np.ndarray
    group_bits: np.ndarray
    group_bits_se: np.ndarray
    group_twin_bits: np.ndarray
    group_twin_bits_se: np.ndarray
    group_separation: np.ndarray
    group_recall: np.ndarray
    threshold: float
    n_directions: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PowerResult":
        return cls(**{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()})

    def __str__(self) -> str:
        lines = [
            f"Detection power: recall = knocked-out latents found at |cos| ≥ {self.threshold} among the "
            f"top {self.n_directions} directions; separation = knockout vs same-FVU twin, in SE",
            f"{'tokens':>8} {'target rate':>12} {'firing rates':>22} {'energy shares':>22} {'recall':>8} "
            f"{'bits (knockout)':>18} {'bits (twin)':>18} {'sep. (SE)':>10}",
        ]
        for g in range(len(self.group_tokens)):
            m = self.latent_group == g
            fr, en = self.latent_firing_rate[m], self.latent_energy_share[m]
            lines.append(
                f"{int(self.group_tokens[g]):>8} {self.group_target_rate[g]:>12.4g} "
                f"{f'{fr.min():.2g}–{fr.max():.2g}':>22} {f'{en.min():.2g}–{en.max():.2g}':>22} "
                f"{f'{int(self.latent_found[m].sum())}/{int(m.sum())}':>8} "
                f"{f'{self.group_bits[g]:.3f} ± {self.group_bits_se[g]:.3f}':>18} "
                f"{f'{self.group_twin_bits[g]:.3f} ± {self.group_twin_bits_se[g]:.3f}':>18} "
                f"{self.group_separation[g]:>10.1f}"
            )
        return "\n".join(lines)

    def plot(self, path: Any = None, *, ax: Any = None) -> Any:
        """Recall and separation against firing rate (one line per token count), and each
        latent's best ``|cos|`` against its energy share.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (atomically; the format from the extension).
        ax : matplotlib Axes or sequence of three, optional
            Draw on these instead of a new figure: one Axes gets the recall only, three get
            every panel.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot), or ``ax``'s.
        """
        fig, (a1, a2, a3) = panels(ax, 3, figsize=(14, 4))
        for n in np.unique(self.group_tokens):
            g = np.flatnonzero(self.group_tokens == n)
            rate = [float(np.median(self.latent_firing_rate[self.latent_group == i])) for i in g]
            o = np.argsort(rate)
            a1.semilogx(np.asarray(rate)[o], self.group_recall[g][o], "o-", label=f"{int(n)} tokens")
            if a2 is not None:
                a2.semilogx(np.asarray(rate)[o], self.group_separation[g][o], "o-", label=f"{int(n)} tokens")
        a1.set_xlabel("firing rate of the knocked-out latents (median)")
        a1.set_ylabel(f"recall (|cos| ≥ {self.threshold}, top {self.n_directions})")
        a1.set_ylim(-0.05, 1.05)
        a1.legend()
        if a2 is not None:
            a2.axhline(5, color="k", ls="--", lw=0.8)
            a2.set_xlabel("firing rate of the knocked-out latents (median)")
            a2.set_ylabel("non-Gaussian bits: knockout − twin (SE)")
        if a3 is not None:
            sc = a3.scatter(self.latent_energy_share, self.latent_best_cos, c=np.log10(self.latent_firing_rate), s=14)
            a3.set_xscale("log")
            a3.axhline(self.threshold, color="k", ls="--", lw=0.8)
            a3.set_xlabel("energy share of the latent")
            a3.set_ylabel("best |cos| with a reported direction")
            fig.colorbar(sc, ax=a3, label="log10 firing rate")
        tidy(fig, ax)
        return finish(fig, path)


@renamed_keywords(latents_per_rate="n_latents_per_rate")
def detection_power(
    activations: Any,
    interpretation: Any,
    *,
    firing_rates: Sequence[float] = (0.3, 0.1, 0.03, 0.01, 0.003, 0.001),
    n_latents_per_rate: int = 4,
    n_tokens: Sequence[int] | None = None,
    threshold: float = 0.9,
    n_directions: int | None = None,
    twin: str = "covariance",
    seed: int = 0,
    progress: bool = True,
    **score_kwargs: Any,
) -> PowerResult:
    """Sweep knockouts of the user's latents across firing rate and token count and measure
    whether pft finds them.

    Parameters
    ----------
    activations : (N, d) array
    interpretation : object or tuple
        As for :func:`pft.residual.knockout`: something with ``encode``/``decode``/``W_dec``
        (SAELens shape, :class:`pft.models.TopKSAE`) or ``(codes, decoder[, bias])`` arrays.
    firing_rates : sequence of float
        Target firing rates; for each, the ``n_latents_per_rate`` live latents whose firing
        rate (on the first ``n`` tokens) is nearest on a log scale are knocked out together, and
        no latent is used twice at one token count.
    n_latents_per_rate : int, default 4
        Latents knocked out together per firing rate (``latents_per_rate=`` still works,
        deprecated).
    n_tokens : sequence of int, optional
        Token counts to score (the first ``n`` rows each); default all rows.
    threshold : float, default 0.9
        ``|cos|`` at which a knocked-out direction counts as found.
    n_directions : int, optional
        Directions reported by :func:`pft.residual.score` (default ``min(8, d)``).
    twin : str, default "covariance"
        As for :func:`pft.residual.knockout`.
    seed : int, default 0
        Seeds the knockouts' twins and the scores.
    progress : bool, default True
    **score_kwargs
        Passed to :func:`pft.residual.score` (``holdout``, ``device``, ``chunk_rows``).

    Returns
    -------
    PowerResult

    Notes
    -----
    Each group costs two scores (knockout and twin). Recall is a property of the whole
    pipeline — the interpretation, the token count, the direction finder — on the user's data,
    which is the question it answers: with this SAE and N tokens, how rare or weak can a missed
    feature be before pft cannot see it.
    """
    from pft.residual._score import score

    x = as_matrix(activations, "activations")
    N, d = x.shape
    counts = [N] if n_tokens is None else _numbers(n_tokens, "n_tokens", check_int, minimum=16, maximum=N)
    rates = _numbers(firing_rates, "firing_rates", check_float, minimum=0, exclusive_minimum=True, maximum=1)
    n_latents_per_rate = check_int(n_latents_per_rate, "n_latents_per_rate", minimum=1)
    threshold = check_float(threshold, "threshold", minimum=0, exclusive_minimum=True, maximum=1)
    seed = check_seed(seed)
    if n_directions is not None:
        n_directions = check_int(n_directions, "n_directions", minimum=1)
    k = n_directions if n_directions is not None else min(8, d)
    rows: dict[str, list] = {n: [] for n in ("tokens", "group", "latent", "rate", "energy", "cos")}
    groups: dict[str, list] = {n: [] for n in ("tokens", "target", "bits", "se", "tbits", "tse")}
    it = [(n, r) for n in counts for r in rates]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(it), desc="pft power", unit="knockout")
    used: dict[int, set] = {}
    for n, rate in it:
        sub = _rows(interpretation, n)
        fr, _ = latent_stats(x[:n], sub)
        live = np.flatnonzero((fr > 0) & ~np.isin(np.arange(len(fr)), list(used.setdefault(n, set()))))
        if len(live) < n_latents_per_rate:
            raise InputError(f"only {len(live)} unused live latents remain at {n} tokens; lower `n_latents_per_rate`.")
        pick = live[np.argsort(np.abs(np.log(fr[live]) - math.log(rate)), kind="stable")[:n_latents_per_rate]]
        used[n].update(pick.tolist())
        ko = knockout(x[:n], sub, pick, twin=twin, seed=seed)
        rk = score(x[:n], ko.knockout_reconstruction, seed=seed, n_directions=k, progress=False, **score_kwargs)
        rt = score(x[:n], ko.twin_reconstruction, seed=seed, n_directions=k, progress=False, **score_kwargs)
        _, cos = ko.recall(rk.nongaussian_directions, threshold=threshold)
        g = len(groups["tokens"])
        for i, lat in enumerate(pick):
            for key, v in zip(("tokens", "group", "latent", "rate", "energy", "cos"),
                              (n, g, int(lat), ko.firing_rate[i], ko.energy_share[i], cos[i])):
                rows[key].append(v)
        for key, v in zip(("tokens", "target", "bits", "se", "tbits", "tse"),
                          (n, rate, rk.nongaussian_bits, rk.nongaussian_bits_se, rt.nongaussian_bits, rt.nongaussian_bits_se)):
            groups[key].append(v)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    cos = np.asarray(rows["cos"])
    gid = np.asarray(rows["group"], dtype=np.int64)
    found = cos >= threshold
    bits, se, tbits, tse = (np.asarray(groups[n]) for n in ("bits", "se", "tbits", "tse"))
    sep = (bits - tbits) / np.maximum(np.hypot(se, tse), np.finfo(float).tiny)
    return PowerResult(
        latent_tokens=np.asarray(rows["tokens"], dtype=np.int64),
        latent_group=gid,
        latent=np.asarray(rows["latent"], dtype=np.int64),
        latent_firing_rate=np.asarray(rows["rate"]),
        latent_energy_share=np.asarray(rows["energy"]),
        latent_best_cos=cos,
        latent_found=found,
        group_tokens=np.asarray(groups["tokens"], dtype=np.int64),
        group_target_rate=np.asarray(groups["target"]),
        group_bits=bits,
        group_bits_se=se,
        group_twin_bits=tbits,
        group_twin_bits_se=tse,
        group_separation=sep,
        group_recall=np.array([found[gid == g].mean() for g in range(len(bits))]),
        threshold=float(threshold),
        n_directions=int(k),
    )


def _numbers(values: Any, name: str, check: Any, **bounds: Any) -> list:
    """A non-empty sequence of numbers, each checked by ``check`` (an entry of a bad one is
    named ``name[i]``)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise InputError(f"`{name}` must be a sequence of numbers; got {values!r}.")
    out = [check(v, f"{name}[{i}]", **bounds) for i, v in enumerate(values)]
    if not out:
        raise InputError(f"`{name}` must be a non-empty sequence of numbers; got {values!r}.")
    return out


def _rows(interpretation: Any, n: int) -> Any:
    """The interpretation restricted to the first ``n`` tokens (array codes are sliced)."""
    if isinstance(interpretation, (tuple, list)):
        return (interpretation[0][:n],) + tuple(interpretation[1:])
    return interpretation
