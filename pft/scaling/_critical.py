"""Critical initialisation of an MLP: ``(C_b, C_W)`` and the fixed point ``K*`` with ``χ∥ = χ⊥ = 1``."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pft._results import JsonResult
from pft.scaling._activations import Activation, resolve_activation
from pft.scaling._quadrature import N_HALF, half_line_rule

__all__ = ["CriticalPoint", "critical_point"]


def _kernel_parts(act: Activation, K: float, n_nodes: int = N_HALF):
    """``(⟨σ²⟩_K, ∂⟨σ²⟩_K/∂K, ⟨σ'²⟩_K)`` with the ``n_nodes`` half-range rule; the derivative as
    ``⟨σ²(z² − K)⟩/(2K²)`` (no σ'' needed, kinks included)."""
    u, w = half_line_rule(n_nodes, 0)
    s = math.sqrt(K)
    z = np.concatenate([s * u, -s * u])
    w = np.concatenate([w, w]) / math.sqrt(2 * math.pi)
    s2 = np.asarray(act.numpy(z), dtype=float) ** 2
    ws2 = w * s2
    g = float(ws2.sum())
    g1 = float(0.5 * ws2 @ ((z / K) ** 2 - 1.0 / K))
    p = float(w @ act.prime(z) ** 2)
    return g, g1, p


#: K > 0 critical points are searched for on this range (log grid, then Brent's method)
K_SEARCH = (1e-3, 1e3)
_GRID_POINTS = 241
_CONVERGED = 1e-9  # a grid point counts when the 96- and 64-node rules agree to this (relative)


@dataclass(frozen=True)
class CriticalPoint(JsonResult):
    """A critical initialisation ``(C_b, C_W)`` of an MLP, its fixed point and susceptibilities.

    Critical means: the kernel recursion ``K ← C_b + C_W⟨σ²⟩_K`` has a fixed point ``K*`` at
    which ``χ∥ = C_W ∂⟨σ²⟩_K/∂K`` and ``χ⊥ = C_W⟨σ'²⟩_K`` both equal 1 (``C_b ≥ 0, C_W > 0``).

    Attributes
    ----------
    activation : str
    universality : {"scale-invariant", "K*=0", "K*>0", "none"}
        ``"none"``: no critical point (see ``reason``).
    C_b, C_W : float or None
    K_star : float or None
        The fixed point; None for scale-invariant activations (every ``K > 0`` is one) and when
        none exists. 0.0 for the K* = 0 class, reached as a limit (the kernel flows to 0).
    chi_parallel, chi_perp : float or None
        ``χ∥`` and ``χ⊥`` at ``K*`` (for ``K* = 0`` their limits ``K → 0``), computed by the
        library's quadrature — 1 to rounding when a point exists.
    reason : str
        Why this point (which rule chose it among several) or why there is none.
    alternatives : tuple of dict
        Other solutions met by the search (``K_star``, ``C_b``, ``C_W``, ``note``), including
        ones that are not usable (``C_b < 0``, or a ``K* = 0`` point the kernel flows away from).

    Examples
    --------
    >>> cp = critical_point("silu")
    >>> cp.universality, round(cp.K_star, 4), round(cp.C_b, 4), round(cp.C_W, 4)
    ('K*>0', 14.3202, 0.5551, 1.988)
    """

    activation: str
    universality: str
    C_b: float | None
    C_W: float | None
    K_star: float | None
    chi_parallel: float | None
    chi_perp: float | None
    reason: str
    alternatives: tuple = ()

    @property
    def exists(self) -> bool:
        """True when a critical point was found."""
        return self.universality != "none"

    @classmethod
    def from_dict(cls, d: dict) -> "CriticalPoint":
        return cls(d["activation"], d["universality"], d["C_b"], d["C_W"], d["K_star"], d["chi_parallel"],
                   d["chi_perp"], d["reason"], tuple(dict(a) for a in d.get("alternatives", ())))

    def __str__(self) -> str:
        if not self.exists:
            return f"critical point of {self.activation}: none\n  {self.reason}"
        ks = "any K > 0" if self.K_star is None else f"{self.K_star:.12g}"
        lines = [f"critical point of {self.activation} ({self.universality} class)",
                 f"  C_b = {self.C_b:.12g}, C_W = {self.C_W:.12g}, K* = {ks}",
                 f"  chi_par = {self.chi_parallel:.15g}, chi_perp = {self.chi_perp:.15g}",
                 f"  {self.reason}"]
        for a in self.alternatives:
            cb = "?" if a["C_b"] is None else f"{a['C_b']:.6g}"
            lines.append(f"  also: K* = {a['K_star']:.6g}, C_b = {cb}, C_W = {a['C_W']:.6g} ({a['note']})")
        return "\n".join(lines)


def _homogeneous_slopes(act: Activation):
    """``(a₊, a₋)`` when ``σ(z) = a₊ z (z > 0), a₋ z (z < 0)`` (checked at probe points), else None."""
    if act.slopes is not None:
        return act.slopes
    probe = np.array([0.37, 1.0, 2.9, 13.0])
    try:
        plus = np.asarray(act.numpy(probe), dtype=float)
        minus = np.asarray(act.numpy(-probe), dtype=float)
        zero = float(np.asarray(act.numpy(np.zeros(1)), dtype=float)[0])
    except Exception:  # noqa: BLE001 - a callable that fails here is not homogeneous
        return None
    a, b = plus[1], -minus[1]
    ok = (abs(zero) <= 1e-14 and np.allclose(plus, a * probe, rtol=1e-12, atol=1e-14)
          and np.allclose(minus, -b * probe, rtol=1e-12, atol=1e-14))
    return (float(a), float(b)) if ok else None


def _slope_at_zero(act: Activation):
    """``σ'(0)``, or None when σ has a kink at 0 (the one-sided derivatives differ).

    Named activations: the closed form. A callable: one-sided differences at ``h = 10⁻²/2ʲ``,
    j = 0 … 3, on each side, each combined by three Richardson steps (error O(h⁴); σ'' may jump
    at 0, as for ELU)."""
    if act.slope_at_zero is not None:
        return act.slope_at_zero
    if act.builtin:
        return float(act.prime(np.zeros(1))[0])
    steps = 1e-2 / 2.0 ** np.arange(4)
    f0 = float(np.asarray(act.numpy(np.zeros(1)), dtype=float)[0])
    sides = []
    for sign in (1.0, -1.0):
        d = list((np.asarray(act.numpy(sign * steps), dtype=float) - f0) / (sign * steps))
        for m in (1, 2, 3):  # forward differences have every power of h: factors 2, 4, 8
            d = [(2**m * d[i + 1] - d[i]) / (2**m - 1) for i in range(len(d) - 1)]
        sides.append(d[0])
    right, left = sides
    if abs(right - left) > 1e-7 * (1.0 + abs(right) + abs(left)):
        return None
    return 0.5 * (right + left)


def _gap(act: Activation, K: float, n_nodes: int = N_HALF) -> float:
    """``(χ∥ − χ⊥)/C_W = ∂⟨σ²⟩_K/∂K − ⟨σ'²⟩_K`` (``= ⟨σσ''⟩_K`` for smooth σ)."""
    _, g1, p = _kernel_parts(act, K, n_nodes)
    return g1 - p


def _positive_roots(act: Activation) -> tuple[list[float], list[tuple[float, float]]]:
    """Roots of :func:`_gap` on ``K_SEARCH`` (sign changes between neighbouring points of a log
    grid, refined by Brent's method), counting only grid points where two rules agree; and the
    ``(K, gap)`` pairs seen."""
    from scipy.optimize import brentq

    grid = np.geomspace(*K_SEARCH, _GRID_POINTS)
    vals = []
    for K in grid:
        g, g1, p = _kernel_parts(act, K)
        gc, g1c, pc = _kernel_parts(act, K, 64)
        scale = abs(g1) + abs(p)
        good = (np.isfinite(g1 - p) and abs((g1 - p) - (g1c - pc)) <= _CONVERGED * scale
                and abs(g - gc) <= _CONVERGED * abs(g))
        vals.append(g1 - p if good else np.nan)
    vals = np.array(vals)
    roots = []
    ok = np.flatnonzero(np.isfinite(vals))
    for i, j in zip(ok[:-1], ok[1:]):
        a, b = vals[i], vals[j]
        if a == 0.0:
            roots.append(float(grid[i]))
        elif a * b < 0 and j == i + 1:  # across unconverged points a sign change proves nothing
            roots.append(float(brentq(lambda K: _gap(act, K), grid[i], grid[j], xtol=1e-15, rtol=4 * np.finfo(float).eps,
                                      maxiter=200)))
    if ok.size and vals[ok[-1]] == 0.0:
        roots.append(float(grid[ok[-1]]))
    return roots, [(float(grid[i]), float(vals[i])) for i in ok]


def critical_point(activation) -> CriticalPoint:
    """The critical initialisation of an MLP: ``C_b, C_W`` and a fixed point ``K*`` of the kernel
    with ``χ∥(K*) = χ⊥(K*) = 1``.

    ``K* = C_b + C_W⟨σ²⟩_{K*}``, ``χ∥ = C_W ∂⟨σ²⟩_K/∂K = (C_W/2K²)⟨σ²(z)(z² − K)⟩_K`` and
    ``χ⊥ = C_W⟨σ'(z)²⟩_K`` (z ~ N(0, K)); ``C_b ≥ 0``, ``C_W > 0``.

    Parameters
    ----------
    activation : str or callable
        A name (see :func:`finite_width_theory`) or an elementwise callable (smooth except
        possibly for a kink at 0; ``σ(0) ≠ 0`` is allowed). For a callable σ' is taken by
        Richardson-extrapolated differences (:meth:`Activation.prime`).

    Returns
    -------
    CriticalPoint
        ``universality`` is ``"none"`` (and ``C_b, C_W`` None) when no critical point exists;
        ``reason`` says why.

    Notes
    -----
    Since ``∂⟨σ²⟩/∂K = ⟨σ'²⟩ + ⟨σσ''⟩`` (Gaussian integration by parts), ``χ∥ = χ⊥`` at ``K*``
    exactly when ``⟨σσ''⟩_{K*} = 0``; then ``C_W = 1/⟨σ'²⟩_{K*}`` and
    ``C_b = K* − C_W⟨σ²⟩_{K*}``, which must be ``≥ 0``. The classes (PDLT §5.2–5.4):

    - **scale-invariant** (``σ = a₊z`` for z > 0, ``a₋z`` for z < 0; a callable is tested at probe
      points): ``C_b = 0, C_W = 2/(a₊² + a₋²)``; every ``K > 0`` is a fixed point (``K_star`` None).
    - **K* = 0** (σ(0) = 0, σ'(0) ≠ 0, e.g. tanh, sin, erf): ``C_b = 0, C_W = 1/σ'(0)²``. At
      ``K = 0`` both susceptibilities are ``C_W σ'(0)² = 1``; the point is reached only as a limit,
      and only when the kernel flows into it, ``C_W⟨σ²⟩_K < K`` for small K (checked at
      K = 10⁻³, 10⁻²) — true for tanh (K ≈ 1/(2ℓ)), false for GELU and SWISH.
    - **K* > 0** (GELU, SWISH): roots of ``⟨σσ''⟩_K`` on ``K ∈ [10⁻³, 10³]`` (sign changes on a log
      grid of 241 points where the 96- and 64-node rules agree, refined by Brent's method) with
      ``C_b ≥ 0``. GELU: ``K* = (3 + √17)/2``, SWISH: ``K* ≈ 14.32``. These fixed points are
      half-stable: with ``χ∥ = 1``, ``K − K*`` moves by ``½C_W ∂²⟨σ²⟩/∂K² (K − K*)²`` per layer,
      so the kernel approaches from one side only (GELU from above, SWISH from below).

    Choice among several: the K* = 0 point when the kernel flows into it; otherwise the smallest
    ``K* > 0`` with ``C_b ≥ 0``. The others are listed in ``alternatives``. Double roots of
    ``⟨σσ''⟩`` (no sign change) and roots outside the search range are not found.

    References
    ----------
    Roberts, Yaida & Hanin (2022), §5.2–5.4.

    Examples
    --------
    >>> cp = critical_point("gelu")
    >>> cp.universality, round(cp.K_star, 12) == round((3 + 17 ** 0.5) / 2, 12)
    ('K*>0', True)
    >>> round(cp.C_b, 4), round(cp.C_W, 4), round(cp.chi_parallel, 10), round(cp.chi_perp, 10)
    (0.1729, 1.9831, 1.0, 1.0)
    >>> critical_point("relu").C_W, critical_point("tanh").K_star, critical_point("sigmoid").exists
    (2.0, 0.0, False)
    """
    act = resolve_activation(activation)
    slopes = _homogeneous_slopes(act)
    if slopes is not None:
        a, b = slopes
        s = a * a + b * b
        if s == 0:
            return CriticalPoint(act.name, "none", None, None, None, None, None,
                                 "σ vanishes identically: the kernel is C_b at every layer and χ∥ = χ⊥ = 0.")
        cw = 2.0 / s
        return CriticalPoint(act.name, "scale-invariant", 0.0, cw, None, cw * s / 2, cw * s / 2,
                             "scale-invariant: ⟨σ²⟩_K = (a₊² + a₋²)K/2, so with C_b = 0 every K > 0 is a fixed point "
                             "and χ∥ = χ⊥ = C_W(a₊² + a₋²)/2 = 1.")
    alternatives = []
    zero = None  # the K* = 0 candidate
    s0 = float(np.asarray(act.numpy(np.zeros(1)), dtype=float)[0])
    d0 = _slope_at_zero(act)
    if d0 is not None and abs(d0) > 1e-8 and abs(s0) <= 1e-12 * max(1.0, abs(d0)):
        cw0 = 1.0 / d0**2
        flows = all(cw0 * _kernel_parts(act, K)[0] < K for K in (1e-3, 1e-2))
        zero = (cw0, flows)
        if not flows:
            alternatives.append({"K_star": 0.0, "C_b": 0.0, "C_W": cw0,
                                 "note": "a fixed point with χ∥ = χ⊥ = 1, but C_W⟨σ²⟩_K > K for small K: "
                                         "the kernel flows away from it"})
    roots, gaps = _positive_roots(act)
    usable = []
    for K in roots:
        g, g1, p = _kernel_parts(act, K)
        if not p > 0:
            continue
        cw = 1.0 / p
        cb = K - cw * g
        if cb < -1e-12 * max(1.0, K):
            alternatives.append({"K_star": K, "C_b": cb, "C_W": cw,
                                 "note": "χ∥ = χ⊥ here, but the fixed point needs C_b < 0"})
            continue
        usable.append((K, max(cb, 0.0), cw, g1 * cw, p * cw))
    if zero is not None and zero[1]:
        cw0 = zero[0]
        alternatives += [{"K_star": K, "C_b": cb, "C_W": cw, "note": "another K* > 0 critical point"}
                         for K, cb, cw, _, _ in usable]
        chi = cw0 * d0**2
        extra = "" if not usable else "; K* > 0 critical points exist too (alternatives), the K* = 0 one is preferred"
        return CriticalPoint(act.name, "K*=0", 0.0, cw0, 0.0, chi, chi,
                             "K* = 0 class: σ(0) = 0, σ'(0) ≠ 0, and with C_b = 0, C_W = 1/σ'(0)² the kernel "
                             "decreases to 0 (C_W⟨σ²⟩_K < K for small K), where χ∥ = χ⊥ = C_W σ'(0)² = 1" + extra + ".",
                             tuple(alternatives))
    if usable:
        K, cb, cw, chi_par, chi_perp = usable[0]
        alternatives += [{"K_star": k, "C_b": b, "C_W": w, "note": "a larger K* > 0 critical point"}
                         for k, b, w, _, _ in usable[1:]]
        why = "K* > 0 class: the smallest K > 0 where ⟨σσ''⟩_K = 0 (χ∥ = χ⊥) with C_b ≥ 0"
        if zero is not None:
            why += "; K = 0 is also critical but repels the kernel (alternatives)"
        return CriticalPoint(act.name, "K*>0", cb, cw, K, chi_par, chi_perp, why + ".", tuple(alternatives))
    lo, hi = K_SEARCH
    if roots:
        why = (f"χ∥ = χ⊥ only at K = {', '.join(f'{r:.6g}' for r in roots)} on [{lo:g}, {hi:g}], where the fixed point "
               "would need C_b < 0")
    elif gaps:
        neg = gaps[0][1] < 0
        why = (f"{'χ∥ < χ⊥' if neg else 'χ∥ > χ⊥'} (⟨σσ''⟩_K {'<' if neg else '>'} 0) at every K checked in "
               f"[{gaps[0][0]:.3g}, {gaps[-1][0]:.3g}]")
        if len(gaps) < _GRID_POINTS:
            why += (f" ({len(gaps)} of {_GRID_POINTS} log-spaced points on [{lo:g}, {hi:g}]; at the others the "
                    "quadrature had not converged)")
        why += ": no K* > 0 was found"
    else:
        why = f"the quadrature did not converge anywhere on [{lo:g}, {hi:g}]: no K* > 0 could be checked"
    if zero is not None:
        why += "; K = 0 is critical at C_b = 0 but the kernel flows away from it"
    elif abs(s0) > 1e-12:
        why += f"; σ(0) = {s0:.6g} ≠ 0, so K = 0 is no fixed point with C_b ≥ 0"
    else:
        why += "; σ'(0) is 0 or undefined, so there is no K* = 0 class point"
    return CriticalPoint(act.name, "none", None, None, None, None, None, why + ".", tuple(alternatives))
