"""degraded_models: copies of a trained network at weights drawn from its tempered local
posterior, over a range of temperatures."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from pft._deprecation import renamed_keywords
from pft._results import JsonResult
from pft._validate import check_int, check_seed
from pft.degrade._posterior import TemperedPosterior
from pft.errors import InputError

__all__ = ["DegradedModel", "degraded_models"]


@dataclass(frozen=True)
class DegradedModel(JsonResult):
    """One degraded copy of a trained model.

    Attributes
    ----------
    model : torch.nn.Module or None
        A private deep copy with sampled weights (``temperature = 0``: the trained weights);
        ``None`` after :meth:`from_json`.
    temperature : float
        ``1/β``; ``0`` means the trained weights ``w*`` themselves.
    beta : float
        ``β`` (``inf`` at temperature 0).
    n : float
        The sample size in ``n β``.
    loss : float
        Full-data ``L_n`` of this copy.
    loss_increase : float
        ``L_n(w) - L_n(w*)``.
    draw : int
        Index of the draw at this temperature.
    """

    model: torch.nn.Module = field(repr=False, compare=False)
    temperature: float
    beta: float
    n: float
    loss: float
    loss_increase: float
    draw: int

    def to_dict(self) -> dict:
        """The numbers (not the model)."""
        out = {k: getattr(self, k) for k in ("temperature", "beta", "n", "loss", "loss_increase", "draw")}
        out["beta"] = "inf" if math.isinf(self.beta) else self.beta
        return out


    @classmethod
    def from_dict(cls, d: dict) -> "DegradedModel":
        """Inverse of :meth:`to_dict`; ``model`` is ``None`` (the JSON holds the numbers only).

        Examples
        --------
        >>> m = DegradedModel(None, temperature=0.0, beta=float("inf"), n=100.0, loss=0.5,
        ...                   loss_increase=0.0, draw=0)
        >>> DegradedModel.from_json(m.to_json()).to_dict() == m.to_dict()
        True
        """
        beta = d["beta"]
        return cls(
            model=None,
            temperature=float(d["temperature"]),
            beta=float("inf") if beta == "inf" else float(beta),
            n=float(d["n"]),
            loss=float(d["loss"]),
            loss_increase=float(d["loss_increase"]),
            draw=int(d["draw"]),
        )

    def __str__(self) -> str:
        return (
            f"DegradedModel(T = 1/β = {self.temperature:.4g}, draw {self.draw}, "
            f"L = {self.loss:.6g}, L - L* = {self.loss_increase:.4g})"
        )


@renamed_keywords(draws_per_temperature="n_copies")
def degraded_models(
    model,
    loss_fn,
    data,
    *,
    temperatures,
    n_copies: int = 4,
    n=None,
    localization=None,
    step_size=None,
    batch_size=None,
    burn_in: int = 200,
    thin: int = 50,
    n_chains: int = 1,
    seed: int = 0,
    device=None,
    dtype=None,
    progress: bool = True,
):
    """Yield copies of ``model`` at weights drawn from ``p_β(w) ∝ exp(-nβ L_n(w) -
    (γ/2)‖w - w*‖²)`` for each temperature ``1/β`` in ``temperatures``.

    Parameters
    ----------
    model, loss_fn, data, n, localization, step_size, batch_size, device, dtype
        As for :class:`TemperedPosterior` (``None``: chosen from the curvature at each
        temperature).
    temperatures : sequence of float
        Values of ``1/β``, each ``>= 0``. ``log n`` is Watanabe's temperature (the default
        of :class:`TemperedPosterior`); larger values degrade more. ``0`` yields one copy at
        the trained weights (a baseline with ``loss_increase = 0``).
    n_copies : int
        Copies per (non-zero) temperature, spread over ``n_chains`` chains (the old keyword
        ``draws_per_temperature`` still works and warns).
    burn_in, thin, n_chains : int
        Sampler settings per temperature; draws ``thin`` steps apart.
    seed : int
        Temperature ``k`` uses ``seed + k`` (default 0).
    progress : bool

    Yields
    ------
    DegradedModel
        In the order of ``temperatures``, ``n_copies`` per temperature. Each
        ``.model`` is a fresh deep copy; ``model`` itself is never modified.

    Notes
    -----
    Higher temperature (smaller ``nβ``) widens the posterior: directions of the weights along
    which the loss rises slowly (behaviour bought with little loss per unit of description
    length) are noised away first, while stiff directions stay close to ``w*``.

    References
    ----------
    Watanabe (2013), JMLR 14; Lau et al. (2023), arXiv:2308.12108.

    Examples
    --------
    >>> import math, torch
    >>> from pft.degrade import degraded_models
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(100, 3, generator=g)
    >>> net = torch.nn.Linear(3, 1)
    >>> y = net(x).detach()
    >>> before = [p.detach().clone() for p in net.parameters()]
    >>> out = list(degraded_models(net, torch.nn.MSELoss(), (x, y), temperatures=[0, 5, 50],
    ...                            n_copies=2, step_size=1e-3, burn_in=50,
    ...                            thin=10, progress=False))
    >>> [(m.temperature, m.draw) for m in out]
    [(0.0, 0), (5.0, 0), (5.0, 1), (50.0, 0), (50.0, 1)]
    >>> out[0].loss_increase == 0.0 and out[-1].loss_increase > out[1].loss_increase
    True
    >>> all(torch.equal(a, b) for a, b in zip(before, net.parameters()))
    True
    """
    try:
        temps = [float(t) for t in temperatures]
    except (TypeError, ValueError):
        raise InputError(
            f"`temperatures` must be a sequence of numbers (values of 1/β); got {temperatures!r}."
        ) from None
    if not temps or any(not math.isfinite(t) or t < 0 for t in temps):
        raise InputError(
            f"`temperatures` must be a non-empty sequence of finite values >= 0 (1/β); got {temps}. "
            "Use 0 for the trained weights, log(n) for Watanabe's temperature."
        )
    n_copies = check_int(n_copies, "n_copies", minimum=1)
    n_chains = check_int(n_chains, "n_chains", minimum=1)
    seed = check_seed(seed)
    per_chain = math.ceil(n_copies / n_chains)
    # One posterior at β = 1 builds and validates the private copy; others reuse the checks.
    base = TemperedPosterior(
        model, loss_fn, data, n=n, beta=1.0, localization=localization, step_size=step_size,
        batch_size=batch_size, seed=seed, device=device, dtype=dtype,
    )
    settings = dict(
        n=n, localization=localization, step_size=step_size, batch_size=batch_size,
        device=device, dtype=dtype,
    )
    return _generate(base, model, loss_fn, data, temps, settings, n_copies,
                     per_chain, n_chains, burn_in, thin, seed, progress)


def _generate(base, model, loss_fn, data, temps, settings, n_copies, per_chain,
              n_chains, burn_in, thin, seed, progress):
    # A plain generator behind degraded_models so that bad arguments fail at the call.
    for k, temp in enumerate(temps):
        if temp == 0:
            trained = base.make_model(base._anchor)
            yield DegradedModel(
                model=trained, temperature=0.0, beta=float("inf"), n=base.n_,
                loss=base.init_loss_, loss_increase=0.0, draw=0,
            )
            continue
        post = TemperedPosterior(model, loss_fn, data, beta=1.0 / temp, seed=seed + k, **settings)
        res = post.sample(per_chain, n_chains=n_chains, burn_in=burn_in, thin=thin, progress=progress)
        count = 0
        for j in range(per_chain):
            for c in range(n_chains):
                if count == n_copies:
                    break
                flat = res.draws[c, j]
                loss = post.loss_at(flat)
                yield DegradedModel(
                    model=post.make_model(flat), temperature=temp, beta=1.0 / temp, n=post.n_,
                    loss=loss, loss_increase=loss - post.init_loss_, draw=count,
                )
                count += 1
