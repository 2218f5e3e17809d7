"""degrade_experiment: which interpretation's advantage survives tempering, on a trained toy of
superposition (the experiment behind ``pft degrade`` and ``examples/degrade_toy.py``)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from pft._results import JsonResult
from pft._validate import check_bool, check_float, check_int, check_seed
from pft.degrade._curvature import AUTO_STEP
from pft.degrade._results import LearningCoefficient, SampleResult
from pft.errors import InputError, MixingWarning

__all__ = ["DegradeExperiment", "degrade_experiment", "TOY_N_FEATURES", "TOY_D", "TOY_LOCALIZATION"]

#: features of the toy (active with probability 0.05, code of feature f scaled by 0.93^f)
TOY_N_FEATURES = 24
#: hidden dimension of the toy model
TOY_D = 8
#: γ, the pull back to the trained weights, for every posterior of the experiment
TOY_LOCALIZATION = 10.0
#: the interpretations compared (the first is the reference of the advantages)
_NAMES = ("dictionary", "minus 4 least important", "minus 3 most important")


@dataclass(frozen=True)
class DegradeExperiment(JsonResult):
    """What :func:`degrade_experiment` measured.

    Attributes
    ----------
    n_tokens, n_features, d : int
        The toy's size: ``n_tokens`` rows (the ``n`` of ``n β``), ``n_features`` features in
        ``d`` dimensions.
    n_parameters : int
        Trainable parameters of the toy model (``d · n_features + n_features``).
    step_size, localization : float
        ``ε`` and ``γ`` of every SGLD chain.
    temperatures : tuple of float
        The temperatures ``1/β`` of the degraded copies (multiples of ``log n``).
    learning_coefficient : LearningCoefficient
        ``λ̂`` at Watanabe's temperature ``1/β = log n``.
    samples : SampleResult
        The chains ``λ̂`` was estimated from (``draws`` are not kept).
    across : pft.residual.AcrossReport
        The three interpretations' residual scores on every degraded copy.
    notes : tuple of str
        The warnings of the ``λ̂`` chains (:class:`~pft.errors.MixingWarning`,
        :class:`~pft.errors.StepSizeWarning`), kept rather than raised.
    seed : int
    """

    n_tokens: int
    n_features: int
    d: int
    n_parameters: int
    step_size: float
    localization: float
    temperatures: tuple
    learning_coefficient: LearningCoefficient = field(repr=False)
    samples: SampleResult = field(repr=False)
    across: Any = field(repr=False)
    notes: tuple = ()
    seed: int = 0

    @property
    def singular(self) -> bool:
        """``λ̂ + 4 se < d/2``: the minimum is singular (pft's Laplace expansion does not apply)."""
        lc = self.learning_coefficient
        return bool(lc.value + 4 * lc.se < lc.regular_value)

    def advantages(self, metric: str = "nongaussian_bits") -> dict:
        """``{other: [(temperature, mean, se, n_draws), ...]}``: the paired advantage of
        ``"dictionary"`` over each other interpretation in ``metric``
        (:meth:`pft.residual.AcrossReport.advantage`; positive: the dictionary is better where
        lower is better)."""
        first, *others = self.across.interpretations
        return {other: self.across.advantage(metric, first, other) for other in others}

    def to_dict(self) -> dict:
        out = {k: getattr(self, k) for k in ("n_tokens", "n_features", "d", "n_parameters", "step_size",
                                              "localization", "seed")}
        out["temperatures"] = list(self.temperatures)
        out["notes"] = list(self.notes)
        out["learning_coefficient"] = self.learning_coefficient.to_dict()
        out["samples"] = self.samples.to_dict()
        out["across"] = self.across.to_dict()
        return out

    @classmethod
    def from_dict(cls, d: dict) -> "DegradeExperiment":
        from pft.residual import AcrossReport

        kw = {k: d[k] for k in ("n_tokens", "n_features", "d", "n_parameters", "step_size", "localization", "seed")}
        return cls(
            **kw,
            temperatures=tuple(d["temperatures"]),
            notes=tuple(d["notes"]),
            learning_coefficient=LearningCoefficient.from_dict(d["learning_coefficient"]),
            samples=SampleResult.from_dict(d["samples"]),
            across=AcrossReport.from_dict(d["across"]),
        )

    def __str__(self) -> str:
        lc = self.learning_coefficient
        verdict = "singular: pft's Laplace expansion does not apply" if self.singular else "consistent with regular"
        lines = [
            f"toy of superposition: {self.n_features} features in {self.d} dimensions, {self.n_parameters} "
            f"parameters, n = {self.n_tokens}, step size {self.step_size:.2g}",
            str(lc),
            *(f"note: {note}" for note in self.notes),
            f"=> λ̂ = {lc.value:.3g} ± {lc.se:.2g} against d/2 = {lc.regular_value:g}: {verdict}",
            "",
            str(self.across),
            "",
            f"advantage of {self.across.interpretations[0]!r} in non-Gaussian bits (paired over the same "
            "copies; holds if > 2 se):",
        ]
        for other, cells in self.advantages().items():
            lines.append(f"  vs {other}: " + ", ".join(f"1/β={t:.3g}: {m:+.3f}±{s:.3f}" for t, m, s, _ in cells))
        return "\n".join(lines)


def degrade_experiment(
    n_tokens: int = 2000,
    *,
    temperatures=(0.0, 1.0, 4.0, 16.0),
    n_copies: int = 3,
    n_draws: int = 1000,
    n_chains: int = 4,
    burn_in: int = 2000,
    thin: int = 200,
    n_train_steps: int = 1500,
    seed: int = 0,
    progress: bool = True,
) -> DegradeExperiment:
    """Which interpretation's advantage survives tempering? ``pft.degrade`` on a toy of superposition.

    1. A toy model of superposition (Elhage et al. 2022; 24 sparse features of decaying
       importance in 8 dimensions, ``ĉ = ReLU(Wᵀ W c + b)``) is trained on the codes of
       :func:`pft.toy.superposition` (feature ``f`` scaled by ``0.93^f``), and its local
       learning coefficient ``λ̂`` is measured at ``1/β = log n`` (:class:`TemperedPosterior`,
       ``γ = 10``, ``ε (n β h_max + γ) = 0.04``).
    2. Degraded copies are drawn at each temperature ``1/β = t · log n``
       (:func:`degraded_models`, same ``γ`` and ``ε``).
    3. Three fixed interpretations of the hidden activations (plus the toy's Gaussian
       background) are scored on every copy with :func:`pft.residual.score_across`: the full
       dictionary ``codes @ W*ᵀ``, and the dictionary without its 4 least / 3 most important
       features (importance ``Var(code) · ‖W*_f‖²``).

    At ``t = 0`` the full dictionary's residual is exactly the toy's Gaussian background.

    Parameters
    ----------
    n_tokens : int
        Toy rows, at least 50 (the residual scores need them); the ``n`` of ``n β``.
    temperatures : sequence of float
        Temperatures ``1/β`` as multiples of ``log n``, each ``>= 0`` (0: the trained weights).
    n_copies : int
        Degraded copies per non-zero temperature.
    n_draws, n_chains, burn_in : int
        The ``λ̂`` chains: draws kept per chain, chains, SGLD steps discarded first (also the
        burn-in of the degraded copies' chains).
    thin : int
        SGLD steps between two degraded copies of one temperature.
    n_train_steps : int
        Full-batch Adam steps (learning rate 0.01) training the toy model.
    seed : int
        Seeds the toy data, the model's initialisation, every chain and the scores.
    progress : bool
        Show progress bars.

    Returns
    -------
    DegradeExperiment
        ``str()`` is the whole report; ``.advantages()`` the paired advantages of the full
        dictionary; ``.samples.plot(path)`` and ``.across.plot(path)`` the figures.

    Notes
    -----
    The sampler's warnings in step 1 are kept in ``notes`` (not raised); its mixing warnings in
    step 2 are silenced (each copy is one draw, not an estimate).

    References
    ----------
    Elhage et al. (2022), "Toy models of superposition", transformer-circuits.pub.
    Lau, Furman, Wang, Murfet, Wei (2023), arXiv:2308.12108.

    Examples
    --------
    >>> from pft.degrade import degrade_experiment
    >>> res = degrade_experiment(100, temperatures=(0, 1), n_copies=1, n_draws=20,
    ...                          n_chains=2, burn_in=20, thin=10, n_train_steps=50, progress=False)
    >>> res.n_parameters, res.learning_coefficient.d, len(res.across.rows)
    (216, 216, 6)
    """
    n_tokens = check_int(n_tokens, "n_tokens", minimum=50)
    try:
        multiples = tuple(check_float(t, "temperatures", minimum=0) for t in temperatures)
    except TypeError:
        raise InputError(f"`temperatures` must be a sequence of numbers >= 0; got {temperatures!r}.") from None
    if not multiples:
        raise InputError("`temperatures` must be a non-empty sequence of numbers >= 0; got an empty one.")
    n_copies = check_int(n_copies, "n_copies", minimum=1)
    n_draws = check_int(n_draws, "n_draws", minimum=1)
    n_chains = check_int(n_chains, "n_chains", minimum=1)
    burn_in = check_int(burn_in, "burn_in", minimum=0)
    thin = check_int(thin, "thin", minimum=1)
    n_train_steps = check_int(n_train_steps, "n_train_steps", minimum=0)
    seed = check_seed(seed)
    progress = check_bool(progress, "progress")

    import numpy as np
    import torch

    import pft.toy
    from pft.degrade._degraded import degraded_models
    from pft.degrade._posterior import TemperedPosterior
    from pft.degrade._toymodel import train_toy_model
    from pft.residual import score_across

    n_features, d, gamma = TOY_N_FEATURES, TOY_D, TOY_LOCALIZATION
    data = pft.toy.superposition(n_tokens, d=d, n_features=n_features, density=0.05, seed=seed)
    codes = data.codes * 0.93 ** np.arange(n_features)
    model, c = train_toy_model(codes, d=d, steps=n_train_steps, seed=seed)
    loss_fn = torch.nn.MSELoss()
    # the step size comes from the curvature at w*, measured by a first posterior
    probe = TemperedPosterior(model, loss_fn, (c, c), localization=gamma, step_size=1e-6, seed=seed)
    # ε (n β h_max + γ) = AUTO_STEP: the stiffest direction's variance is inflated by 1 %
    eps = AUTO_STEP / (probe.nbeta_ * probe.max_curvature() + gamma)
    post = TemperedPosterior(model, loss_fn, (c, c), localization=gamma, step_size=eps, seed=seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MixingWarning)
        samples = post.sample(n_draws, n_chains=n_chains, burn_in=burn_in, keep_draws=False, progress=progress)
    notes = tuple(str(w.message) for w in caught)
    lc = post.learning_coefficient()

    w_star = model.W.detach().numpy().T.copy()  # (F, d): the trained feature directions
    order = np.argsort(codes.var(axis=0) * (w_star**2).sum(axis=1))

    def without(drop):
        keep = np.setdiff1d(np.arange(n_features), drop)
        return codes[:, keep] @ w_star[keep]

    interps = dict(zip(_NAMES, (codes @ w_star, without(order[:4]), without(order[-3:]))))

    def activations(m: torch.nn.Module):
        with torch.no_grad():
            return m.hidden(c).numpy() + data.background

    log_n = math.log(n_tokens)
    copies = degraded_models(
        model, loss_fn, (c, c), temperatures=[t * log_n for t in multiples], n_copies=n_copies,
        localization=gamma, step_size=eps, burn_in=burn_in, thin=thin, seed=seed, progress=progress,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixingWarning)
        across = score_across(copies, activations, interps, seed=seed, progress=progress)
    return DegradeExperiment(
        n_tokens=n_tokens,
        n_features=n_features,
        d=d,
        n_parameters=int(post.d_),
        step_size=float(eps),
        localization=gamma,
        temperatures=tuple(float(t * log_n) for t in multiples),
        learning_coefficient=lc,
        samples=samples,
        across=across,
        notes=notes,
        seed=seed,
    )
