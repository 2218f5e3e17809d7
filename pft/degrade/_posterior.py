"""TemperedPosterior: SGLD on the tempered local posterior around trained weights.

The curvature of the loss near ``w*`` and the step size, localization and burn-in chosen from
it are :class:`pft.degrade._curvature.StepSizeChoice`, which this class extends.

Why one file: what is left here (about 670 lines, a third of them docstrings) is one object's state: the settings checked
and resolved in ``_setup``, the loss, the sampling loop of :meth:`TemperedPosterior.sample`
with its divergence checks and diagnostics, and the estimates read from its draws; the loop's
closures share that state, so it stays one file.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import torch

from pft.degrade._curvature import (
    AUTO_LOCALIZATION,
    AUTO_STEP,
    REFINE_POINTS,
    STEP_WARN,
    StepSizeChoice,
)
from pft.degrade._data import as_data
from pft.degrade._diagnostics import (
    MixingWarning,
    SamplerDivergenceError,
    StepSizeWarning,
    drift_z,
    effective_sample_size,
    split_rhat,
)
from pft.degrade._results import ChainDiagnostics, LearningCoefficient, SampleResult
from pft.degrade._sgld import FlatParameters, sgld_update
from pft._validate import check_float, check_int, check_seed
from pft.errors import InputError, NotFittedError, OutOfReachError

__all__ = [
    "TemperedPosterior",
    "RHAT_WARN",
    "DRIFT_WARN",
    "DIVERGENCE_FACTOR",
    "MAX_DRAW_BYTES",
]

#: split R-hat of the loss above which :meth:`TemperedPosterior.sample` warns.
RHAT_WARN = 1.1
#: |drift z| above which :meth:`TemperedPosterior.sample` warns that the trace still moves.
DRIFT_WARN = 4.0
#: a chain is declared divergent when ``L - L* > DIVERGENCE_FACTOR * max(|L*|, d / (2 n β))``.
DIVERGENCE_FACTOR = 1000.0
#: most memory :meth:`TemperedPosterior.sample` spends on kept draws before refusing.
MAX_DRAW_BYTES = 2 * 1024**3
#: on an accelerator, the steps between read-backs of the loss trace (divergence checks)
_CHECK_EVERY = 64


def _check_interval(device) -> int:
    """Steps between read-backs of a chain's loss trace: every step on the CPU (free there),
    every ``_CHECK_EVERY`` on an accelerator (a read-back stalls it)."""
    return 1 if device.type == "cpu" else _CHECK_EVERY


def _positive(name: str, value, *, allow_zero: bool = False, hint: str = "") -> float:
    """``check_float`` (``> 0``, or ``>= 0`` with ``allow_zero``), its message followed by ``hint``."""
    try:
        return check_float(value, name, minimum=0, exclusive_minimum=not allow_zero)
    except InputError as exc:
        raise InputError(f"{exc} {hint}".strip()) from None


class TemperedPosterior(StepSizeChoice):
    """The tempered local posterior ``p_β(w) ∝ exp(-n β L_n(w) - (γ/2)‖w - w*‖²)`` around a
    trained model's weights ``w*``, sampled by SGLD.

    Parameters
    ----------
    model : torch.nn.Module
        The trained network; its trainable parameters (``requires_grad=True``) are ``w*``.
        It is deep-copied once here and never touched again.
    loss_fn : callable
        ``loss_fn(model(inputs), targets) -> scalar tensor``, the *mean* loss over the rows
        of a batch (e.g. ``torch.nn.MSELoss()``), so that the full-data value is ``L_n``.
    data : tuple (inputs, targets), DataLoader, or re-iterable of (inputs, targets) batches
        A pair of tensors (or numpy arrays) with the same first dimension ``n_data`` (for an
        autoencoder pass ``(x, x)``), or anything that can be iterated over more than once
        and yields ``(inputs, targets)`` batches — a ``torch.utils.data.DataLoader``, a list.
        Batches are then used in the order they come, one per SGLD step, and the iterable is
        iterated afresh for every epoch (a shuffling DataLoader reshuffles, with its own
        random state). Floating tensors are moved to ``dtype`` and the model's device.
    n : float, optional
        The sample size in ``n β``; default ``n_data`` (the rows of the pair, or of one pass
        over the batches).
    beta : float, optional
        Inverse temperature; default ``1 / log n`` (Watanabe's WBIC temperature).
    n_beta : float, optional
        ``n β`` itself (devinterp's ``nbeta``), instead of ``beta``; not both.
    localization : float, optional
        ``γ``, the strength of the pull back to ``w*`` (absolute). Default
        ``AUTO_LOCALIZATION · n β · h`` = 1 % of the stiffest tempered curvature near ``w*``
        (see :meth:`max_curvature` and ``docs/learning_coefficient.md``).
    step_size : float, optional
        ``ε`` of the SGLD step. Default, in two stages: here ``AUTO_STEP / (n β h' + γ)`` with
        ``AUTO_STEP = 0.04`` and ``h'`` the larger of ``h`` and the median curvature at draws
        of the diagonal Gaussian approximation of the posterior (used for the burn-in); then,
        with ``burn_in="auto"``, :meth:`sample` sets ``ε = AUTO_STEP / (n β h̄ + γ)`` from the
        mean top curvature ``h̄`` at the chains' own positions late in the fast burn-in (kept
        in ``step_size_`` and the result). The stationary variance along an eigen-direction of
        precision ``p`` is ``1 / (p (1 - ε p / 4))``, so the variance bias is 1 % on average
        where the chains were measured (at a singular ``w*``, where they go next can be
        stiffer: at ``w* = 0`` of the 1 → 2 → 1 linear net ``ε p`` averaged 0.05–0.11).
        Stable for a quadratic loss when ``ε (n β h_max + γ) < 4``.
        A value given is used as given (checked and warned about in :meth:`sample`).
    batch_size : int, optional
        For a pair: minibatch size for the gradient (rows drawn without replacement,
        reshuffled every epoch); ``None`` (default) uses the full data every step (Langevin
        without gradient noise; the recorded losses are then the exact ``L_n``). Must be
        ``None`` for a DataLoader or list (its batches are used as they are).
    train : bool or None
        Mode of the private copy: ``False`` (default) eval mode, so dropout is off and
        batch-norm uses its running statistics and ``L_n(w)`` is a function of ``w``;
        ``True`` train mode; ``None`` keeps the mode the model has.
    seed : int
        Seeds every chain (chain ``c`` uses the ``c``-th child of ``SeedSequence(seed)``).
    device, dtype : optional
        Where and in which floating dtype the private copy of the model runs (default: the
        model's own).

    Attributes
    ----------
    d_ : int
        Number of sampled parameters.
    init_loss_ : float
        ``L_n(w*)`` on the full data.
    n_, beta_, nbeta_, localization_, step_size_, batch_size_ : float or None
        The settings in use (given or chosen); a default ``step_size_`` is the one of the
        last :meth:`sample` call (refined at the chains' positions), before it the one
        chosen here.
    chain_curvatures_ : tuple of float
        The top curvatures a default step size was refined from (last :meth:`sample` call).
    samples_ : SampleResult
        The result of the last :meth:`sample` call.
    max_curvature_, curvature_at_minimum_, probe_curvatures_, draw_curvatures_ :
        What :meth:`max_curvature` measured (on first use).

    Notes
    -----
    SGLD step (docs/math.md section 7; Welling & Teh 2011):

        w ← w - (ε/2) [n β ∇L_batch(w) + γ (w - w*)] + N(0, ε I).

    For a quadratic loss with Hessian ``H`` the target is Gaussian with mean ``w*`` and
    precision ``n β H + γ I``. The local learning coefficient is
    ``λ̂ = n β (E_β[L_n] - L_n(w*))``; for a regular minimum and ``γ → 0`` it tends to
    ``d/2`` (exactly ``½ tr(nβH (nβH + γ)⁻¹)`` for a quadratic loss).

    References
    ----------
    Watanabe (2013), "A widely applicable Bayesian information criterion", JMLR 14.
    Lau, Furman, Wang, Murfet, Wei (2023), "The local learning coefficient: a
    singularity-aware complexity measure", arXiv:2308.12108.

    Examples
    --------
    >>> import torch
    >>> from pft.degrade import TemperedPosterior
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.randn(200, 2, generator=g, dtype=torch.float64)
    >>> y = x @ torch.tensor([[1.0], [-2.0]], dtype=torch.float64)
    >>> net = torch.nn.Linear(2, 1, bias=False).double()
    >>> with torch.no_grad():
    ...     _ = net.weight.copy_(torch.linalg.lstsq(x, y).solution.T)
    >>> post = TemperedPosterior(net, torch.nn.MSELoss(), (x, y))   # ε, γ from the curvature
    >>> res = post.sample(1000, n_chains=2, progress=False)
    >>> res.losses.shape, res.draws.shape
    ((2, 1000), torch.Size([2, 1000, 2]))
    >>> lam, se = post.learning_coefficient()
    >>> abs(lam - 1.0) < 4 * se + 0.05    # d/2 = 1 for a regular model
    True

    The same from a DataLoader (or a list of ``(inputs, targets)`` batches):

    >>> from torch.utils.data import DataLoader, TensorDataset
    >>> loader = DataLoader(TensorDataset(x, y), batch_size=50, shuffle=True)
    >>> TemperedPosterior(net, torch.nn.MSELoss(), loader, n_beta=40.0).nbeta_
    40.0
    """

    def __init__(
        self,
        model,
        loss_fn,
        data,
        *,
        n=None,
        beta=None,
        n_beta=None,
        localization=None,
        step_size=None,
        batch_size=None,
        train: bool | None = False,
        seed: int = 0,
        device=None,
        dtype=None,
    ):
        self.model = model
        self.loss_fn = loss_fn
        self.data = data
        self.n = n
        self.beta = beta
        self.n_beta = n_beta
        self.localization = localization
        self.step_size = step_size
        self.batch_size = batch_size
        self.train = train
        self.seed = seed
        self.device = device
        self.dtype = dtype
        self._setup()

    # ------------------------------------------------------------------ validation
    def _setup(self) -> None:
        if not isinstance(self.model, torch.nn.Module):
            raise InputError(f"`model` must be a torch.nn.Module; got {type(self.model).__name__}.")
        if not callable(self.loss_fn):
            raise InputError(
                f"`loss_fn` must be callable as loss_fn(model(inputs), targets); got {self.loss_fn!r}."
            )
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        if not trainable:
            raise InputError(
                "`model` has no trainable parameters (none with requires_grad=True); there is "
                "nothing to sample. Unfreeze the parameters the posterior should move."
            )
        if any(not p.is_floating_point() for p in trainable):
            raise InputError("`model` has non-floating trainable parameters; SGLD needs real weights.")
        if not all(torch.isfinite(p).all() for p in trainable):
            raise InputError("`model` has non-finite parameters; w* must be finite.")
        if self.dtype is not None and not (isinstance(self.dtype, torch.dtype) and self.dtype.is_floating_point):
            raise InputError(f"`dtype` must be a floating torch.dtype or None; got {self.dtype!r}.")
        check_seed(self.seed)

        work = copy.deepcopy(self.model)
        if self.device is not None or self.dtype is not None:
            work = work.to(device=self.device, dtype=self.dtype)
        self._work = work
        self._flat = FlatParameters(work)
        self._anchor = self._flat.flat.detach().clone()
        self._noise = torch.empty_like(self._anchor)
        self.d_ = self._flat.d
        device, dtype = self._flat.device, self._flat.dtype

        if self.train is not None and not isinstance(self.train, bool):
            raise InputError(f"`train` must be True, False or None; got {self.train!r}.")
        if self.train is not None:
            work.train(self.train)
        if self.batch_size is None:
            self.batch_size_ = None
        else:
            self.batch_size_ = check_int(self.batch_size, "batch_size", minimum=1)
        self._data = as_data(self.data, batch_size=self.batch_size_, device=device, dtype=dtype)
        n_data = self._data.n_data
        self._n_data = n_data

        n = n_data if self.n is None else _positive("n", self.n)
        if self.beta is not None and self.n_beta is not None:
            raise InputError(
                f"pass one of `beta` and `n_beta` (= n β), not both; got beta={self.beta!r}, "
                f"n_beta={self.n_beta!r}."
            )
        if self.n_beta is not None:
            nbeta = _positive("n_beta", self.n_beta, hint="n_beta is n β, devinterp's `nbeta`.")
            beta = nbeta / n
        elif self.beta is None:
            if n <= 1:
                raise InputError(
                    f"`beta` defaults to 1/log n, which needs n > 1; got n = {n}. Pass `beta` or `n_beta`."
                )
            beta = 1.0 / math.log(n)
        else:
            beta = _positive("beta", self.beta, hint="β is an inverse temperature.")
        self.n_, self.beta_ = float(n), float(beta)
        self.nbeta_ = self.n_ * self.beta_
        self.init_loss_ = self._full_loss()
        if not math.isfinite(self.init_loss_):
            raise InputError(
                f"the loss at the trained weights w* is {self.init_loss_}; the posterior around "
                "w* needs a finite L(w*). Check `model`, `loss_fn` and `data`."
            )
        if self.localization is not None:
            self.localization_ = _positive(
                "localization", self.localization, allow_zero=True, hint="γ is the pull towards w*."
            )
        if self.step_size is not None:
            self.step_size_ = _positive("step_size", self.step_size, hint="ε is the SGLD step size.")
        if self.localization is None or self.step_size is None:
            h = self.max_curvature()
            h = max(h, self.draw_curvature_) if math.isfinite(h) else h
            if not (math.isfinite(h) and h > 0):
                raise InputError(
                    "the default `step_size` and `localization` come from the curvature of the loss near "
                    f"w*, which could not be measured (top Hessian eigenvalue {h}: "
                    + ("the model does not support double backward" if not math.isfinite(h) else
                       "the loss is flat at w* and along every probe direction")
                    + "). Pass `step_size` and `localization` explicitly."
                )
            if self.localization is None:
                self.localization_ = AUTO_LOCALIZATION * self.nbeta_ * self.scale_curvature_
            if self.step_size is None:
                self.step_size_ = AUTO_STEP / (self.nbeta_ * h + self.localization_)
        #: the step size before any refinement at the chains' positions (used by the burn-in)
        self._initial_step_size = self.step_size_

    # ------------------------------------------------------------------ losses
    def _loss(self, inputs, targets) -> torch.Tensor:
        loss = self.loss_fn(self._work(inputs), targets)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise InputError(
                f"`loss_fn` must return a scalar tensor (the mean loss of the batch); got "
                f"{type(loss).__name__}"
                + (f" of shape {tuple(loss.shape)}" if isinstance(loss, torch.Tensor) else "")
                + ". Use reduction='mean'."
            )
        return loss.reshape(())

    def _full_loss(self) -> float:
        """``L_n`` at the working copy's current weights, one pass in batches, float64."""
        with torch.no_grad():
            return self._data.full_loss(self._loss)

    def loss_at(self, flat_params) -> float:
        """Full-data ``L_n`` at a flat parameter vector (shape ``(d,)``).

        The private working copy is used and restored; the user's model is untouched.
        """
        flat_params = torch.as_tensor(flat_params)
        if flat_params.shape != (self.d_,):
            raise InputError(f"`flat_params` must have shape ({self.d_},); got {tuple(flat_params.shape)}.")
        saved = self._flat.flat.detach().clone()
        try:
            self._flat.set(flat_params.to(self._flat.flat))
            return self._full_loss()
        finally:
            self._flat.set(saved)

    # ------------------------------------------------------------------ sampling
    def sample(
        self,
        n_draws: int,
        *,
        n_chains: int = 4,
        burn_in="auto",
        thin: int = 1,
        keep_draws: bool = True,
        check_step_size: bool = True,
        seed=None,
        progress: bool = True,
    ) -> SampleResult:
        """Run ``n_chains`` SGLD chains from ``w*`` and keep ``n_draws`` draws of each.

        Parameters
        ----------
        n_draws : int
            Draws kept per chain.
        n_chains : int
            Independent chains, all started at ``w*``.
        burn_in : int or "auto"
            SGLD steps discarded at the start of each chain. ``"auto"`` (default): two
            relaxation times of the directions only the localization confines, run at a
            larger step, then 200 steps at ``ε`` (:meth:`auto_burn_in`). With the default
            step size, every chain's fast burn-in runs first, and the step size is then
            refined from the top curvature at ``REFINE_POINTS`` points of the last quarter of
            each (``ε = AUTO_STEP / (n β h̄ + γ)`` with ``h̄`` their mean, lowered so that
            none has ``ε (n β h + γ) > STEP_WARN``) before the chains go on.
        thin : int
            Keep every ``thin``-th step after burn-in.
        keep_draws : bool
            Keep the parameter vectors (``n_chains * n_draws * d`` numbers); ``False`` keeps
            only the losses (enough for :meth:`learning_coefficient`).
        check_step_size : bool
            Before sampling, estimate the top curvature ``h_max`` of the loss at ``w*``
            (:meth:`max_curvature`) and compare ``ε (n β h_max + γ)`` with the stability
            limit 4 of the Langevin step: above 4 raise, above 0.5 warn.
        seed : int or None
            ``None`` (default): the constructor's ``seed``; an integer overrides it for this call.
        progress : bool
            Show a tqdm bar over all SGLD steps.

        Returns
        -------
        SampleResult
            ``losses`` of shape ``(n_chains, n_draws)``, ``draws`` of shape
            ``(n_chains, n_draws, d)`` (flat, ``named_parameters`` order) and diagnostics.

        Raises
        ------
        SamplerDivergenceError
            ``ε (n β h_max + γ) > 4`` at ``w*`` (with ``check_step_size``), or a chain
            produced a non-finite loss or parameter, or its loss ran away
            (``L - L* > 1000 max(|L*|, d/(2nβ))``): the step size is too large.

        Warns
        -----
        StepSizeWarning
            ``ε (n β h_max + γ) > 0.5``: variances inflated by more than 14 % — before
            sampling, from the curvature near ``w*``, or after it, from the curvature at the
            chains' last draws (with ``check_step_size``).
        MixingWarning
            Split R-hat of the loss above 1.1 or a drift z-score beyond ±4 after burn-in.
        """
        n_draws = check_int(n_draws, "n_draws", minimum=1)
        n_chains = check_int(n_chains, "n_chains", minimum=1)
        if isinstance(burn_in, str) and burn_in == "auto":
            fast, burn_in, factor = self.auto_burn_in()
        else:
            burn_in = check_int(burn_in, "burn_in", minimum=0)
            fast, factor = 0, 1.0
        # the default step size is refined at the chains' own positions after the fast burn-in
        # (each call starts again from the value chosen before sampling)
        refine = self.step_size is None and fast > 0 and getattr(self, "_probe", None) is not None
        thin = check_int(thin, "thin", minimum=1)
        seed = self.seed if seed is None else check_seed(seed)
        if keep_draws:
            need = n_chains * n_draws * self.d_ * self._anchor.element_size()
            if need > MAX_DRAW_BYTES:
                raise OutOfReachError(
                    f"keeping {n_chains} x {n_draws} draws of {self.d_} parameters needs "
                    f"{need / 2**30:.1f} GiB (limit {MAX_DRAW_BYTES / 2**30:.0f} GiB); pass "
                    "keep_draws=False (losses only), fewer draws, or a larger `thin`."
                )

        self.step_size_ = self._initial_step_size
        self.chain_curvatures_ = ()
        if check_step_size:
            self._check_step_size()

        from tqdm.auto import tqdm

        steps = burn_in + (n_draws - 1) * thin + 1
        losses = np.empty((n_chains, n_draws))
        burn = np.empty((n_chains, burn_in))
        draws = (
            torch.empty((n_chains, n_draws, self.d_), dtype=self._anchor.dtype) if keep_draws else None
        )
        scale = max(abs(self.init_loss_), self.d_ / (2 * self.nbeta_), 1e-300)
        limit = self.init_loss_ + DIVERGENCE_FACTOR * scale
        max_increase = 0.0
        end_curvature = 0.0
        children = np.random.SeedSequence(int(seed)).spawn(n_chains)
        flat = self._flat
        every = _check_interval(flat.flat.device)
        bar = tqdm(total=n_chains * steps, disable=not progress, desc="SGLD", unit="step")

        def start(c: int) -> dict:
            s_noise, s_batch = children[c].generate_state(2, dtype=np.uint32)
            gen = torch.Generator(device=flat.device)
            gen.manual_seed(int(s_noise))
            batch_gen = torch.Generator().manual_seed(int(s_batch))
            # The losses stay on the parameters' device and are read back (and checked for
            # divergence) every `every` steps: on a GPU a read-back per step would stall it.
            return {
                "gen": gen,
                "batches": self._data.stream(batch_gen),
                "w": self._anchor.clone(),
                "trace": torch.empty(steps, dtype=torch.float64, device=flat.flat.device),
                "checked": 0,
            }

        def advance(c: int, chain: dict, lo: int, hi: int, eps: float) -> None:
            """SGLD steps ``lo .. hi - 1`` of chain ``c`` (the loss at step ``s`` is taken
            before its update); burn-in steps below ``fast`` run at ``factor × eps``."""
            flat.set(chain["w"])
            trace, gen, batches = chain["trace"], chain["gen"], chain["batches"]
            for s in range(lo, hi):
                inputs, targets = next(batches)
                flat.zero_grad()
                loss = self._loss(inputs, targets)
                loss.backward()
                trace[s] = loss.detach()
                if (s + 1) % every == 0 or s == hi - 1:
                    checked = chain["checked"]
                    values = trace[checked : s + 1].cpu().numpy()
                    bad = ~np.isfinite(values) | (values > limit)
                    if bad.any():
                        first = int(np.argmax(bad))
                        self._diverged(c, checked + first, float(values[first]), limit)
                    chain["checked"] = s + 1
                k = s - burn_in
                if k >= 0 and k % thin == 0 and draws is not None:
                    draws[c, k // thin].copy_(flat.flat.detach())
                if s < steps - 1:
                    views, gs = flat.grads()
                    sgld_update(
                        flat.flat,
                        views,
                        gs,
                        self._anchor,
                        self._noise,
                        step_size=eps * (factor if s < fast else 1.0),
                        nbeta=self.nbeta_,
                        localization=self.localization_,
                        generator=gen,
                    )
                bar.update()
            chain["w"] = flat.flat.detach().clone()

        try:
            chains = [start(c) for c in range(n_chains)]
            if refine:
                # the fast burn-in of every chain, pausing at REFINE_POINTS evenly spaced points
                # of its last quarter (1.6 to 2 relaxation times in) to measure the curvature there
                marks = sorted({int(round(fast * (1 - j / (4 * REFINE_POINTS)))) for j in range(REFINE_POINTS)})
                seen = []
                for c, chain in enumerate(chains):
                    lo = 0
                    for j, mark in enumerate(marks):
                        advance(c, chain, lo, mark, self.step_size_)
                        lo = mark
                        h = self._top_curvature(*self._probe, torch.Generator().manual_seed(1009 * c + j), 20, 1e-2)
                        if math.isfinite(h):
                            seen.append(h)
                self._refine_step_size(seen)
                for c, chain in enumerate(chains):
                    advance(c, chain, fast, steps, self.step_size_)
            else:
                for c, chain in enumerate(chains):
                    advance(c, chain, 0, steps, self.step_size_)
            for c, chain in enumerate(chains):
                flat.set(chain["w"])
                if not bool(torch.isfinite(flat.flat).all()):
                    self._diverged(c, steps - 1, float("nan"), limit)
                values = chain["trace"].cpu().numpy()
                burn[c] = values[:burn_in]
                losses[c] = values[burn_in::thin]
                max_increase = max(max_increase, float(values.max()) - self.init_loss_)
                if check_step_size and getattr(self, "_probe", None) is not None:
                    h_end = self._top_curvature(*self._probe, torch.Generator().manual_seed(c), 20, 1e-2)
                    if math.isfinite(h_end):
                        end_curvature = max(end_curvature, h_end)
        finally:
            bar.close()
            flat.set(self._anchor)
            flat.zero_grad()

        x_end = self.step_size_ * (self.nbeta_ * end_curvature + self.localization_)
        # only news: the chains met notably stiffer loss than the check before sampling saw
        if x_end > max(STEP_WARN, 1.25 * getattr(self, "_x_checked", 0.0)):
            warnings.warn(
                f"the chains ended where the loss is stiffer than near w*: step_size * (n β h + γ) = "
                f"{x_end:.3g} at their last draws (h = {end_curvature:.4g}), so variances there are "
                f"inflated by {100 * (1 / (1 - min(x_end, 3.99) / 4) - 1):.0f} %. Try "
                f"step_size={0.04 / (self.nbeta_ * end_curvature + self.localization_):.2g}.",
                StepSizeWarning,
                stacklevel=2,
            )
        diagnostics = self._diagnose(losses, max_increase)
        self.samples_ = SampleResult(
            losses=losses,
            burn_in_losses=burn,
            draws=draws,
            init_loss=self.init_loss_,
            n=self.n_,
            beta=self.beta_,
            localization=self.localization_,
            step_size=self.step_size_,
            batch_size=self.batch_size_,
            steps_per_epoch=self._data.steps_per_epoch,
            burn_in=burn_in,
            thin=thin,
            seed=int(seed),
            param_names=self._flat.names,
            param_shapes=tuple(tuple(s) for s in self._flat.shapes),
            diagnostics=diagnostics,
        )
        return self.samples_

    def _diverged(self, chain: int, step: int, value: float, limit: float):
        what = (
            f"a non-finite loss ({value})"
            if not math.isfinite(value)
            else f"loss {value:.4g} above the runaway limit {limit:.4g} (L(w*) = {self.init_loss_:.4g})"
        )
        raise SamplerDivergenceError(
            f"SGLD chain {chain} diverged at step {step}: {what}. `step_size` = {self.step_size_:g} is "
            f"too large for the curvature n β H + γ (n β = {self.nbeta_:.4g}, γ = {self.localization_:g}); "
            f"a quadratic loss is stable only for step_size * (n β h_max + γ) < 4. "
            f"Try step_size={self.step_size_ / 10:g}."
        )

    def _diagnose(self, losses: np.ndarray, max_increase: float) -> ChainDiagnostics:
        notes = []
        n_chains, n_draws = losses.shape
        rhat = split_rhat(losses) if n_draws >= 4 and np.ptp(losses) > 0 else float("nan")
        ess = effective_sample_size(losses) if n_draws >= 4 and np.ptp(losses) > 0 else float("nan")
        dz = drift_z(losses) if np.ptp(losses) > 0 else float("nan")
        if math.isfinite(rhat) and rhat > RHAT_WARN:
            notes.append(
                f"split R-hat of the loss is {rhat:.3f} > {RHAT_WARN}: the chains disagree; run longer "
                "chains (more draws, larger thin) or check the step size"
            )
        if math.isfinite(dz) and abs(dz) > DRIFT_WARN:
            direction = "falling" if dz > 0 else "rising"
            notes.append(
                f"the loss is still {direction} after burn-in (drift z = {dz:.1f}); increase `burn_in` "
                "or the step size"
            )
        for note in notes:
            warnings.warn(note, MixingWarning, stacklevel=3)
        chain_lambdas = tuple(float(v) for v in self.nbeta_ * (losses.mean(axis=1) - self.init_loss_))
        return ChainDiagnostics(
            rhat=float(rhat),
            ess=float(ess),
            drift_z=float(dz),
            chain_lambdas=chain_lambdas,
            max_loss_increase=float(max_increase),
            warnings=tuple(notes),
        )

    # ------------------------------------------------------------------ estimates
    def learning_coefficient(self, samples: SampleResult | None = None) -> LearningCoefficient:
        """Local learning coefficient ``λ̂ = n β (E_β[L] - L(w*))`` and its standard error.

        Parameters
        ----------
        samples : SampleResult, optional
            Default: the result of the last :meth:`sample` call.

        Returns
        -------
        LearningCoefficient
            Unpacks as ``(value, se)``; see :meth:`SampleResult.learning_coefficient` for how
            the standard error is computed.
        """
        if samples is None:
            samples = getattr(self, "samples_", None)
            if samples is None:
                raise NotFittedError(
                    "learning_coefficient() needs draws: call .sample(n_draws) first or pass `samples`."
                )
        if not isinstance(samples, SampleResult):
            raise InputError(f"`samples` must be a SampleResult; got {type(samples).__name__}.")
        return samples.learning_coefficient()

    def make_model(self, flat_params) -> torch.nn.Module:
        """A fresh deep copy of the model with its trainable parameters set to ``flat_params``
        (shape ``(d,)``). Neither the user's model nor the sampler's state changes."""
        flat_params = torch.as_tensor(flat_params)
        if flat_params.shape != (self.d_,):
            raise InputError(f"`flat_params` must have shape ({self.d_},); got {tuple(flat_params.shape)}.")
        out = copy.deepcopy(self.model)
        if self.device is not None or self.dtype is not None:
            out = out.to(device=self.device, dtype=self.dtype)
        params = [p for p in out.parameters() if p.requires_grad]
        offset = 0
        with torch.no_grad():
            for p in params:
                k = p.numel()
                p.copy_(flat_params[offset : offset + k].reshape(p.shape))
                offset += k
        return out
