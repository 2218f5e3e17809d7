"""Result records of pft.degrade: frozen dataclasses with ``to_dict``, ``to_json``,
``from_json`` and an aligned ``__str__``."""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field, fields

import numpy as np

from pft._results import JsonResult
from pft._text import table

__all__ = ["ChainDiagnostics", "LearningCoefficient", "SampleResult", "epoch_block_se"]


def epoch_block_se(losses, *, steps_per_epoch: int, burn_in: int = 0, thin: int = 1) -> float:
    """Standard error of the mean of a minibatch loss trace from its epoch means (see
    :meth:`SampleResult.learning_coefficient`); ``nan`` with fewer than 4 whole epochs per chain.

    Parameters
    ----------
    losses : array_like, shape (n_chains, n_draws)
        Kept losses; draw ``k`` of a chain was taken at SGLD step ``burn_in + k thin``, and
        step ``s`` lies in epoch ``s // steps_per_epoch``.
    steps_per_epoch, burn_in, thin : int

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(4, 2500))
    >>> 0.008 < epoch_block_se(x, steps_per_epoch=10) < 0.012
    True
    """
    from pft.degrade._diagnostics import mcse_mean

    x = np.asarray(losses, dtype=np.float64)
    n_chains, n = x.shape
    steps = burn_in + thin * np.arange(n)
    epochs = steps // steps_per_epoch
    # whole epochs only: drop a first epoch that began during burn-in and an unfinished last one
    first = -(-burn_in // steps_per_epoch)
    last = (int(steps[-1]) + thin) // steps_per_epoch - 1
    keep = (epochs >= first) & (epochs <= last)
    n_epochs = last - first + 1
    if n_epochs < 4 or not keep.any():
        return float("nan")
    idx = epochs[keep] - first
    counts = np.bincount(idx, minlength=n_epochs).astype(np.float64)
    if (counts == 0).any():
        return float("nan")
    means = np.stack([np.bincount(idx, weights=row[keep], minlength=n_epochs) for row in x]) / counts
    # The epoch means carry no batch noise correlated across epochs; their remaining
    # autocorrelation (the weights' own) is taken care of by the ESS of that series.
    return mcse_mean(means)


def _fmt(x: float, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "nan"
    return f"{x:.{digits}g}"


def _table(title: str, rows: list[tuple[str, str]]) -> str:
    return title + "\n" + table(None, rows, align="< ", indent="  ")


def _jsonable(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def _unjson(value):
    if value is None:
        return float("nan")
    if value == "inf":
        return float("inf")
    if value == "-inf":
        return float("-inf")
    return value


@dataclass(frozen=True)
class ChainDiagnostics(JsonResult):
    """Mixing diagnostics of the loss trace of a set of SGLD chains.

    Attributes
    ----------
    rhat : float
        Rank-normalised split R-hat of the loss (Vehtari et al. 2021); about 1 when mixed.
    ess : float
        Multi-chain effective sample size of the mean loss.
    drift_z : float
        Geweke-style z-score, first 20 % against last 50 % of each chain, pooled; standard
        normal when the trace is stationary (``nan`` for short chains).
    chain_lambdas : tuple of float
        ``n β (mean loss of the chain - L(w*))`` per chain.
    max_loss_increase : float
        Largest ``L(w) - L(w*)`` seen in any chain, burn-in included.
    warnings : tuple of str
        The problems found (each was also emitted as a :class:`MixingWarning`).
    """

    rhat: float
    ess: float
    drift_z: float
    chain_lambdas: tuple
    max_loss_increase: float
    warnings: tuple = ()

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


    @classmethod
    def from_dict(cls, d: dict) -> "ChainDiagnostics":
        return cls(
            rhat=_unjson(d["rhat"]),
            ess=_unjson(d["ess"]),
            drift_z=_unjson(d["drift_z"]),
            chain_lambdas=tuple(_unjson(v) for v in d["chain_lambdas"]),
            max_loss_increase=_unjson(d["max_loss_increase"]),
            warnings=tuple(d["warnings"]),
        )


    def __str__(self) -> str:
        rows = [
            ("split R-hat (loss)", _fmt(self.rhat)),
            ("ESS (loss)", _fmt(self.ess)),
            ("drift z", _fmt(self.drift_z, 3)),
            ("λ̂ per chain", ", ".join(_fmt(v, 3) for v in self.chain_lambdas)),
            ("max L - L*", _fmt(self.max_loss_increase)),
            ("warnings", "; ".join(self.warnings) if self.warnings else "none"),
        ]
        return _table("ChainDiagnostics", rows)


@dataclass(frozen=True)
class LearningCoefficient(JsonResult):
    """Local learning coefficient estimate ``λ̂ = n β (E_β[L] - L(w*))`` with its standard
    error. Unpacks as ``value, se = lc``.

    Attributes
    ----------
    value : float
        ``λ̂``.
    se : float
        Monte-Carlo standard error: the larger of ``ess_se`` (from the autocorrelation
        time) and ``chain_se`` (from the spread of the chains' means), see
        :meth:`SampleResult.learning_coefficient`.
    chain_se : float
        The between-chain standard error ``sd(λ̂_c) / sqrt(n_chains)`` (``nan`` for one
        chain).
    d : int
        Number of sampled parameters; ``d / 2`` is the value at a regular minimum.
    n, beta : float
        Sample size and inverse temperature.
    init_loss, mean_loss : float
        ``L(w*)`` and the posterior mean loss.
    ess : float
        Multi-chain effective sample size of the loss trace.
    ess_se : float
        The standard error from the autocorrelation time alone (``n β`` times that of the
        mean loss: from the ESS of the raw trace for full-batch sampling, of the whole-epoch
        means with minibatches); ``se`` is the larger of it and ``chain_se``.
    """

    value: float
    se: float
    chain_se: float
    d: int
    n: float
    beta: float
    init_loss: float
    mean_loss: float
    ess: float
    ess_se: float = float("nan")

    @property
    def regular_value(self) -> float:
        """``d / 2``, the learning coefficient of a regular (non-degenerate) minimum."""
        return self.d / 2

    def __iter__(self):
        yield self.value
        yield self.se

    def to_dict(self) -> dict:
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}


    @classmethod
    def from_dict(cls, d: dict) -> "LearningCoefficient":
        return cls(**{f.name: _unjson(d[f.name]) for f in fields(cls) if f.name in d})


    def __str__(self) -> str:
        rows = [
            ("λ̂", f"{_fmt(self.value)} ± {_fmt(self.se, 2)} (autocorrelation ± {_fmt(self.ess_se, 2)}, "
                   f"between chains ± {_fmt(self.chain_se, 2)})"),
            ("d/2 (regular)", _fmt(self.regular_value)),
            ("n, β, nβ", f"{_fmt(self.n)}, {_fmt(self.beta)}, {_fmt(self.n * self.beta)}"),
            ("L(w*), E_β L", f"{_fmt(self.init_loss, 6)}, {_fmt(self.mean_loss, 6)}"),
            ("ESS", _fmt(self.ess)),
        ]
        return _table("LearningCoefficient", rows)


@dataclass(frozen=True, eq=False)  # holds arrays: equality is identity
class SampleResult(JsonResult):
    """Draws of the tempered local posterior and their losses.

    Attributes
    ----------
    losses : numpy.ndarray, shape (n_chains, n_draws)
        Loss at each kept draw (the minibatch loss when ``batch_size`` is set, the full
        ``L_n`` otherwise), float64.
    burn_in_losses : numpy.ndarray, shape (n_chains, burn_in)
        Loss trace of the discarded burn-in steps.
    draws : torch.Tensor, shape (n_chains, n_draws, d), or None
        Flat parameter vectors (the trainable parameters in ``named_parameters`` order,
        each flattened row-major), on CPU in the sampler's dtype; ``None`` with
        ``keep_draws=False`` or after ``from_json``. :meth:`state_dict` turns one row back
        into named tensors.
    init_loss : float
        ``L_n(w*)`` on the full data.
    n, beta, localization, step_size : float
    batch_size : int or None
    burn_in, thin, seed : int
    param_names : tuple of str
    param_shapes : tuple of tuple of int
    diagnostics : ChainDiagnostics
    steps_per_epoch : int or None
        SGLD steps per pass over the data (batches per epoch); ``None`` or 1 for full-batch
        sampling. Sets the blocks of the standard error of :meth:`learning_coefficient`.
    """

    losses: np.ndarray
    burn_in_losses: np.ndarray
    draws: object
    init_loss: float
    n: float
    beta: float
    localization: float
    step_size: float
    batch_size: object
    burn_in: int
    thin: int
    seed: int
    param_names: tuple
    param_shapes: tuple
    diagnostics: ChainDiagnostics = field(repr=False)
    steps_per_epoch: object = None

    @property
    def d(self) -> int:
        return int(sum(math.prod(s) for s in self.param_shapes))

    @property
    def n_chains(self) -> int:
        return int(self.losses.shape[0])

    @property
    def n_draws(self) -> int:
        return int(self.losses.shape[1])

    def learning_coefficient(self) -> LearningCoefficient:
        """``λ̂ = n β (E_β[L] - L(w*))`` with its Monte-Carlo standard error.

        Returns
        -------
        LearningCoefficient

        Notes
        -----
        ``E_β[L]`` is the mean of all kept losses and ``se(λ̂) = n β se(E_β[L])``; ``L(w*)``
        is exact (no error).

        Full-batch sampling: ``se(E_β[L]) = sqrt(var(L) / ESS)`` with the multi-chain ESS of
        :func:`effective_sample_size`.

        Minibatches (``steps_per_epoch > 1``): each kept loss is a minibatch loss, and the
        batches of one epoch partition the data, so their noise cancels over an epoch (it is
        negatively correlated within an epoch, which an autocorrelation-time ESS cannot see:
        it would overstate the error, by about 2× when batch noise dominates). The standard
        error is then that of the series of epoch means (the mean of each chain's kept losses
        over each whole epoch, see :func:`epoch_block_se`): batch noise no longer correlates
        across them, and their remaining autocorrelation — the weights' own — goes into the
        multi-chain ESS of that series. With fewer than 4 whole epochs per chain it falls back
        to the ESS of the raw trace (which errs on the large side).

        The value returned as ``se`` is the larger of that (``ess_se``) and the between-chain
        ``chain_se = sd(λ̂_c) / sqrt(n_chains)``. The autocorrelation time is estimated from
        within the chains and cannot see a mode that relaxes more slowly than a chain is
        long — at a singular ``w*`` the directions along the valley of minima, which only the
        localization confines, relax at ``ε γ`` per step — while the chains, started
        independently and burnt in, spread their means by just that much. On the 1 → 2 → 1
        linear network at ``w* = 0`` (4 chains of 4 000–20 000 draws) the ESS-based error alone
        is 20–30 % too small; the larger of the two is within a few % of the run-to-run sd
        (docs/learning_coefficient.md).

        References
        ----------
        Lau, Furman, Wang, Murfet, Wei (2023), "The local learning coefficient: a
        singularity-aware complexity measure", arXiv:2308.12108, eq. (13).
        """
        from pft.degrade._diagnostics import effective_sample_size, mcse_mean

        nbeta = self.n * self.beta
        mean = float(self.losses.mean())
        value = nbeta * (mean - self.init_loss)
        per_chain = nbeta * (self.losses.mean(axis=1) - self.init_loss)
        chain_se = (
            float(per_chain.std(ddof=1) / math.sqrt(len(per_chain))) if len(per_chain) > 1 else float("nan")
        )
        if self.steps_per_epoch is not None and self.steps_per_epoch > 1:
            ess_se = epoch_block_se(self.losses, steps_per_epoch=self.steps_per_epoch, burn_in=self.burn_in,
                                    thin=self.thin)
            ess_se = nbeta * (ess_se if math.isfinite(ess_se) else mcse_mean(self.losses))
        else:
            ess_se = nbeta * mcse_mean(self.losses)
        # modes slower than a chain (the valley of a singular w*) escape the autocorrelation
        # time but not the spread of the chains' own means
        se = max(ess_se, chain_se) if math.isfinite(chain_se) else ess_se
        return LearningCoefficient(
            value=float(value),
            se=float(se),
            chain_se=chain_se,
            d=self.d,
            n=float(self.n),
            beta=float(self.beta),
            init_loss=float(self.init_loss),
            mean_loss=mean,
            ess=effective_sample_size(self.losses),
            ess_se=float(ess_se),
        )

    def state_dict(self, chain: int, draw: int) -> "OrderedDict":
        """The sampled parameters of one draw as ``{name: tensor}`` (pass to
        ``model.load_state_dict(..., strict=False)``)."""
        from pft.errors import InputError

        if self.draws is None:
            raise InputError(
                "this SampleResult holds no draws (sampled with keep_draws=False or read from "
                "JSON); sample again with keep_draws=True."
            )
        if not (0 <= chain < self.n_chains and 0 <= draw < self.n_draws):
            raise InputError(
                f"`chain`, `draw` must lie in [0, {self.n_chains}) x [0, {self.n_draws}); "
                f"got ({chain}, {draw})."
            )
        row = self.draws[chain, draw]
        out, offset = OrderedDict(), 0
        for name, shape in zip(self.param_names, self.param_shapes):
            k = math.prod(shape)
            out[name] = row[offset : offset + k].reshape(shape).clone()
            offset += k
        return out

    def to_dict(self) -> dict:
        """Everything but the draws, as JSON-ready plain data."""
        out = {}
        for f in fields(self):
            if f.name == "draws":
                continue
            v = getattr(self, f.name)
            out[f.name] = v.to_dict() if isinstance(v, ChainDiagnostics) else _jsonable(v)
        out["param_shapes"] = [list(s) for s in self.param_shapes]
        return out


    @classmethod
    def from_dict(cls, d: dict) -> "SampleResult":
        kw = dict(d)
        kw["losses"] = np.asarray(d["losses"], dtype=np.float64).reshape(len(d["losses"]), -1)
        kw["burn_in_losses"] = np.asarray(d["burn_in_losses"], dtype=np.float64).reshape(
            len(d["burn_in_losses"]), -1
        )
        kw["draws"] = None
        kw["param_names"] = tuple(d["param_names"])
        kw["param_shapes"] = tuple(tuple(s) for s in d["param_shapes"])
        kw["diagnostics"] = ChainDiagnostics.from_dict(d["diagnostics"])
        return cls(**kw)


    def plot(self, path=None, *, ax=None):
        """Per-chain traces of ``n β (L - L(w*))`` (burn-in shaded) and ``λ̂``.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (atomically; the format from the extension).
        ax : matplotlib Axes, optional
            Draw on it (its figure is returned) instead of on a new figure.

        Returns
        -------
        matplotlib.figure.Figure
            Not registered with pyplot (no backend is chosen or switched).
        """
        from pft._plotting import finish, new_axes, tidy

        given = ax
        fig, ax = new_axes(ax, figsize=(7, 3.5))
        nbeta = self.n * self.beta
        b = self.burn_in_losses.shape[1]
        for c in range(self.n_chains):
            full = np.concatenate([self.burn_in_losses[c], self.losses[c]])
            steps = np.concatenate([np.arange(b), b + self.thin * np.arange(self.n_draws)])
            ax.plot(steps, nbeta * (full - self.init_loss), lw=0.6, label=f"chain {c}")
        if b:
            ax.axvspan(0, b, color="0.9", zorder=0, label="burn-in")
        lc = self.learning_coefficient()
        ax.axhline(lc.value, color="k", ls="--", lw=1, label=f"λ̂ = {lc.value:.3g} ± {lc.se:.2g}")
        ax.set_xlabel("SGLD step")
        ax.set_ylabel("n β (L − L(w*))")
        ax.legend(fontsize=7, loc="upper right")
        tidy(fig, given)  # lays out only a figure made here; the caller's stays as it is
        return finish(fig, path)

    def __str__(self) -> str:
        lc = self.learning_coefficient()
        rows = [
            ("chains x draws", f"{self.n_chains} x {self.n_draws} (burn-in {self.burn_in}, thin {self.thin})"),
            ("d", str(self.d)),
            ("n, β", f"{_fmt(self.n)}, {_fmt(self.beta)}"),
            ("γ, ε", f"{_fmt(self.localization)}, {_fmt(self.step_size)}"),
            ("batch", str(self.batch_size) if self.batch_size is not None
             else (f"{self.steps_per_epoch} batches an epoch" if (self.steps_per_epoch or 1) > 1 else "full")),
            ("L(w*)", _fmt(self.init_loss, 6)),
            ("λ̂", f"{_fmt(lc.value)} ± {_fmt(lc.se, 2)}   (d/2 = {_fmt(lc.regular_value)})"),
            ("R-hat, ESS", f"{_fmt(self.diagnostics.rhat)}, {_fmt(self.diagnostics.ess)}"),
            ("drift z", _fmt(self.diagnostics.drift_z, 3)),
            ("warnings", "; ".join(self.diagnostics.warnings) if self.diagnostics.warnings else "none"),
        ]
        return _table("SampleResult (tempered local posterior, SGLD)", rows)
