"""How stiff the loss is near ``w*``, and the SGLD settings chosen from it.

:class:`StepSizeChoice` is the part of :class:`pft.degrade.TemperedPosterior` that measures the
top curvature of the loss (power iteration on Hessian-vector products at ``w*``, at probes on the
posterior's scale and at draws of its diagonal Gaussian approximation), checks a given step size
against the Langevin step's stability limit, picks the burn-in of ``burn_in="auto"`` and refines
a default step size at the chains' own positions. It uses the posterior's private state
(``_flat``, ``_anchor``, ``_data``, ``_loss``, ``nbeta_``, ``localization_``, ``step_size_``).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from pft.errors import SamplerDivergenceError, StepSizeWarning

__all__ = [
    "StepSizeChoice",
    "AUTO_STEP",
    "AUTO_LOCALIZATION",
    "BURN_IN_STEP",
    "BURN_IN_SETTLE",
    "REFINE_POINTS",
    "PROBES",
    "STEP_WARN",
]

#: default step size: ε (n β h + γ) = AUTO_STEP, so the variance along the stiffest direction
#: is inflated by 1/(1 - AUTO_STEP/4) - 1 = 1 % (the exact bias of the unadjusted Langevin
#: chain on a Gaussian)
AUTO_STEP = 0.04
#: default localization: γ = AUTO_LOCALIZATION · n β h (h from :meth:`TemperedPosterior.max_curvature`)
AUTO_LOCALIZATION = 0.01
#: the step-size multiple of the first, fast part of burn_in="auto"
BURN_IN_STEP = 8.0
#: steps at the sampling step size that end burn_in="auto"
BURN_IN_SETTLE = 200
#: points per chain, in the last quarter of the fast burn-in, at which the curvature is measured
#: to refine the default step size
REFINE_POINTS = 4
#: random directions probed around w* by :meth:`TemperedPosterior.max_curvature`
PROBES = 8
#: ε (n β h_max + γ) above which :meth:`TemperedPosterior.sample` warns (variance bias 14 %).
STEP_WARN = 0.5


class StepSizeChoice:
    """Curvature measurements and the step-size, localization and burn-in choices made from
    them (a base class of :class:`~pft.degrade.TemperedPosterior`; see its docstring)."""

    def auto_burn_in(self) -> tuple[int, int, float]:
        """``(fast, total, factor)``: the SGLD steps of ``burn_in="auto"`` and the step-size
        multiple of its fast part.

        Directions the loss does not constrain feel only the pull ``γ`` and relax at the rate
        ``εγ`` per step (the variance of the Ornstein–Uhlenbeck process
        ``dw = -(γ/2) w dt + dW`` sampled every ``ε``), and at a singular ``w*`` how far the
        chains spread along them sets ``λ̂``. The burn-in runs ``fast = ⌈2 / (BURN_IN_STEP ε γ)⌉``
        steps at ``factor × ε`` (two relaxation times of those directions: 86 % of their
        variance), then ``BURN_IN_SETTLE`` steps at ``ε`` for the stiff directions, whose
        variance depends on the step, to settle (they relax in ``1/(ε p) ≤ 25`` steps at the
        default step). ``factor = BURN_IN_STEP``, lowered so that ``factor ε (n β h + γ)`` stays
        at most ``STEP_WARN`` (never below 1); ``h`` is the curvature the step size was set from
        and ``γ`` below ``AUTO_LOCALIZATION n β h`` counts as that value. ``ε`` is the step size
        chosen before sampling (a default one is refined for the sampling itself, see
        :meth:`sample`).
        """
        h = self.max_curvature()
        if math.isfinite(h):
            h = max(h, self.draw_curvature_)
        floor = AUTO_LOCALIZATION * self.nbeta_ * self.scale_curvature_ if math.isfinite(h) else 0.0
        gamma = max(self.localization_, floor)
        if gamma <= 0:
            return 0, BURN_IN_SETTLE, 1.0
        eps = self._initial_step_size
        p = self.nbeta_ * h + self.localization_ if math.isfinite(h) else float("inf")
        factor = max(1.0, min(BURN_IN_STEP, STEP_WARN / (eps * p)))
        fast = int(math.ceil(2.0 / (factor * eps * gamma)))
        return fast, fast + BURN_IN_SETTLE, factor

    def _refine_step_size(self, curvatures) -> None:
        """Set the default step size from the top curvatures ``curvatures`` measured at the
        chains' positions late in the fast burn-in: ``ε = AUTO_STEP / (n β h̄ + γ)`` with ``h̄``
        their mean, so that the variance bias ``ε p / 4`` averaged over the posterior is
        ``AUTO_STEP / 4`` (1 %), and no point measured has ``ε (n β h + γ)`` above ``STEP_WARN``.
        Keeps the step size chosen before sampling when nothing usable was measured."""
        h = np.asarray([v for v in curvatures if math.isfinite(v) and v >= 0], dtype=np.float64)
        self.chain_curvatures_ = tuple(float(v) for v in h)
        if h.size == 0 or h.mean() <= 0:
            self.step_size_ = self._initial_step_size
            return
        eps = AUTO_STEP / (self.nbeta_ * float(h.mean()) + self.localization_)
        eps = min(eps, STEP_WARN / (self.nbeta_ * float(h.max()) + self.localization_))
        self.step_size_ = eps

    def max_curvature(self, *, n_iter: int = 20, tol: float = 1e-2) -> float:
        """The top curvature of the loss near ``w*``: the largest ``|eigenvalue|`` of the
        Hessian at ``w*``, or, where larger, its median at ``2 PROBES`` points on the
        posterior's own scale around it (power iteration with Hessian-vector products,
        double backward).

        The loss is the one an SGLD step sees: the full data for full-batch sampling, else
        one batch drawn at random (``batch_size`` random rows, or a random batch of the
        DataLoader — not the first, since data may be sorted). Probe ``k`` sits at
        ``w* + ρ_k v_k`` along a random unit direction ``v_k``, with ``ρ_k`` where the tempered
        loss has risen by one, ``n β (L(w* + ρ v) - L(w*)) = 1`` (found by bisection): at a
        singular ``w*``, whose Hessian may vanish, that is where the curvature the chains
        meet shows. Directions along which the loss stays flat are skipped. The median (not
        the largest) keeps the value stable where it depends on the direction.

        Also measured (for the default step size): the median top curvature
        ``draw_curvature_`` at ``PROBES`` draws ``w* + ξ / sqrt(n β |diag H| + γ)`` of the
        diagonal Gaussian approximation of the localized posterior (Hutchinson's diagonal),
        which at a singular ``w*`` reaches out along the directions only ``γ`` confines.

        Parameters
        ----------
        n_iter : int
            Most power iterations per point.
        tol : float
            Stop when the estimate changes by less than this fraction.

        Returns
        -------
        float
            ``h``; ``nan`` if the model does not support double backward. Cached in
            ``max_curvature_``; ``curvature_at_minimum_`` keeps the value at ``w*``,
            ``probe_radii_`` and ``probe_curvatures_`` those of the probes,
            ``draw_curvatures_`` those at the posterior draws.

        Notes
        -----
        For a quadratic loss the SGLD step is stable iff ``ε (n β h_max + γ) < 4``, and the
        stationary variance along an eigen-direction of precision ``p = nβh + γ`` is
        ``1 / (p (1 - ε p / 4))``.
        """
        cached = getattr(self, "max_curvature_", None)
        if cached is not None:
            return cached
        gen = torch.Generator().manual_seed(int(self.seed) + 7919)
        inputs, targets = self._data.probe_batch(gen)
        self._probe = (inputs, targets)
        radii, curvatures = [], []
        try:
            at_min = self._top_curvature(inputs, targets, gen, n_iter, tol)
            if math.isfinite(at_min):
                with torch.no_grad():
                    base = float(self._loss(inputs, targets))
                for _ in range(2 * PROBES):
                    v = torch.randn(self.d_, generator=gen, dtype=torch.float64).to(self._anchor)
                    v /= v.norm()
                    rho = self._probe_radius(v, inputs, targets, base)
                    if rho is None:
                        continue
                    self._flat.set(self._anchor + rho * v)
                    h = self._top_curvature(inputs, targets, gen, n_iter, tol)
                    if math.isfinite(h):
                        radii.append(rho)
                        curvatures.append(h)
            scale = max(at_min, float(np.median(curvatures)) if curvatures else 0.0) if math.isfinite(at_min) else at_min
            draws = []
            if math.isfinite(scale):
                gamma = getattr(self, "localization_", None)
                if gamma is None:
                    gamma = AUTO_LOCALIZATION * self.nbeta_ * scale
                self._flat.set(self._anchor)
                diag = self._hessian_diagonal(inputs, targets, gen)
                sd = 1.0 / torch.sqrt(self.nbeta_ * diag.abs() + gamma) if gamma > 0 or bool((diag != 0).all()) else None
                for _ in range(PROBES if sd is not None else 0):
                    xi = torch.randn(self.d_, generator=gen, dtype=torch.float64).to(self._anchor)
                    self._flat.set(self._anchor + xi * sd)
                    with torch.no_grad():
                        ok = math.isfinite(float(self._loss(inputs, targets)))
                    h = self._top_curvature(inputs, targets, gen, n_iter, tol) if ok else float("nan")
                    if math.isfinite(h):
                        draws.append(h)
        finally:
            self._flat.set(self._anchor)
            self._flat.zero_grad()
        self.curvature_at_minimum_ = at_min
        self.probe_radii_ = tuple(radii)
        self.probe_curvatures_ = tuple(curvatures)
        self.scale_curvature_ = scale
        self.draw_curvatures_ = tuple(draws)
        self.draw_curvature_ = float(np.median(draws)) if draws else 0.0
        self.max_curvature_ = scale
        return self.max_curvature_

    def _hessian_diagonal(self, inputs, targets, gen, n_samples: int = 8) -> torch.Tensor:
        """Hutchinson's estimate ``mean_z z ⊙ (H z)`` (Rademacher ``z``) of the Hessian's
        diagonal at the working copy's current weights."""
        params = list(self._flat.params)
        total = torch.zeros_like(self._anchor)

        def flat(parts, like):
            return torch.cat(
                [torch.zeros(p.numel()).to(like) if g is None else g.reshape(-1) for p, g in zip(params, parts)]
            )

        for _ in range(n_samples):
            z = (torch.randint(0, 2, (self.d_,), generator=gen) * 2 - 1).to(self._anchor)
            loss = self._loss(inputs, targets)
            g = flat(torch.autograd.grad(loss, params, create_graph=True, allow_unused=True), z)
            if not g.requires_grad:
                return total
            hz = flat(torch.autograd.grad(g @ z, params, allow_unused=True), z)
            total += z * hz.detach()
        return total / n_samples

    def _probe_radius(self, v, inputs, targets, base):
        """``ρ`` with ``n β (L_b(w* + ρ v) - L_b(w*)) = 1`` on the probe batch (geometric
        bisection after bracketing by doubling/halving from 1); ``None`` if the loss stays
        within ``1/(nβ)`` of ``L_b(w*)`` out to ``ρ = 2⁴⁰`` (a flat direction)."""

        def above(rho: float) -> bool:
            self._flat.set(self._anchor + rho * v)
            with torch.no_grad():
                value = float(self._loss(inputs, targets))
            return not math.isfinite(value) or self.nbeta_ * (value - base) >= 1.0

        rho = 1.0
        if above(rho):
            hi = rho
            for _ in range(80):
                rho /= 2
                if not above(rho):
                    break
            else:
                return rho
            lo = rho
        else:
            lo = rho
            for _ in range(40):
                rho *= 2
                if above(rho):
                    break
            else:
                return None
            hi = rho
        for _ in range(8):  # hi / lo = 2 → 2^(1/256): 0.3 %
            mid = math.sqrt(lo * hi)
            if above(mid):
                hi = mid
            else:
                lo = mid
        return math.sqrt(lo * hi)

    def _top_curvature(self, inputs, targets, gen, n_iter: int, tol: float) -> float:
        """Power iteration for the top ``|eigenvalue|`` of the batch-loss Hessian at the
        working copy's current weights; ``nan`` without double backward."""
        params = list(self._flat.params)
        v = torch.randn(self.d_, generator=gen, dtype=torch.float64).to(self._anchor)
        v /= v.norm()
        estimate = float("nan")

        def flat(parts):
            return torch.cat(
                [torch.zeros(p.numel()).to(v) if g is None else g.reshape(-1) for p, g in zip(params, parts)]
            )

        try:
            for _ in range(n_iter):
                loss = self._loss(inputs, targets)
                grads = torch.autograd.grad(loss, params, create_graph=True, allow_unused=True)
                flat_g = flat(grads)
                if not flat_g.requires_grad:  # the gradient does not depend on w: zero Hessian
                    return 0.0
                hv = flat(torch.autograd.grad(flat_g @ v, params, allow_unused=True))
                new = float(hv.norm())
                if not math.isfinite(new):
                    break
                done = math.isfinite(estimate) and abs(new - estimate) <= tol * max(new, 1e-300)
                estimate = new
                if new == 0.0 or done:
                    break
                v = hv / new
        except RuntimeError:  # no double backward for some op
            return float("nan")
        return estimate

    def _check_step_size(self) -> None:
        h = self.max_curvature()
        if not math.isfinite(h):
            return
        p = self.nbeta_ * h + self.localization_
        x = self.step_size_ * p
        self._x_checked = x
        good = 0.04 / p
        if x > 4:
            raise SamplerDivergenceError(
                f"`step_size` = {self.step_size_:g} will diverge: the top curvature of the loss at w* is "
                f"h_max = {h:.4g}, so step_size * (n β h_max + γ) = {x:.3g} exceeds the stability limit 4 of "
                f"the Langevin step. Try step_size={good:.2g} (ε p = 0.04, 1 % variance bias)."
            )
        if x > STEP_WARN:
            warnings.warn(
                f"`step_size` = {self.step_size_:g} is large for the curvature at w*: step_size * "
                f"(n β h_max + γ) = {x:.3g}, so variances along the stiffest direction are inflated by "
                f"{100 * (1 / (1 - x / 4) - 1):.0f} %. Try step_size={good:.2g} (1 % bias).",
                StepSizeWarning,
                stacklevel=3,
            )
