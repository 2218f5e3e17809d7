"""The exact law of a scale-invariant MLP's output variance: a product of scaled χ² variables.

For σ(z) = a₊ z (z > 0), a₋ z (z < 0) and ``C_b = 0``, the conditional variance of layer ℓ + 1
given layer ℓ is ``G⁽ˡ⁾ = G⁽ˡ⁻¹⁾ F_ℓ`` with iid factors, independent of the past:

    F = (C_W/n) (a₊² X + a₋² Y),   M ~ Binomial(n, ½),   X ~ χ²_M,   Y ~ χ²_{n−M}

(M units active; X, Y independent given M). So ``G = K⁽¹⁾ Π_{ℓ<L} F_ℓ`` and every moment is a
resummation of the 1/n series: ``E Gᵖ = K⁽¹⁾ᵖ (E Fᵖ)^{L−1}``, valid at any L/n. ``log G`` is a
sum of L − 1 iid terms, so at large L it is close to normal with mean and variance that grow
like L (variance ≈ 5(L−1)/n for ReLU): the output is a Gaussian scale mixture with a lognormal
variance, whence the ``e^{5L/n}`` growth of the ReLU kurtosis and its heavy tails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pft._deprecation import renamed_keywords
from pft._results import JsonResult
from pft._validate import check_float, check_int, check_seed
from pft.errors import InputError
from pft.scaling._activations import resolve_activation
from pft._text import table

__all__ = ["ScaleInvariantLaw", "scale_invariant_law"]


def _chi2_moment_log(k: int, q: int) -> float:
    """log E[(χ²_k)^q]; −inf when k = 0 < q."""
    if q == 0:
        return 0.0
    if k == 0:
        return -math.inf
    return q * math.log(2.0) + math.lgamma(k / 2 + q) - math.lgamma(k / 2)


@dataclass(frozen=True)
class ScaleInvariantLaw(JsonResult):
    """Exact law of the output's conditional variance ``G`` for a scale-invariant MLP, ``C_b = 0``.

    Attributes
    ----------
    activation : str
    slopes : tuple of float
        ``(a₊, a₋)``.
    width, depth : int
    C_W, first_kernel : float
    """

    activation: str
    slopes: tuple
    width: int
    depth: int
    C_W: float
    first_kernel: float

    def factor_moment(self, p: int) -> float:
        """``E Fᵖ`` of one layer's factor (exact finite sums over the number of active units)."""
        n, (a, b) = self.width, self.slopes
        m = np.arange(n + 1)
        logbin = np.array([math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) for k in m]) - n * math.log(2)
        total = 0.0
        for k, lb in zip(m, logbin):
            inner = 0.0
            for q in range(p + 1):
                if (a == 0 and q > 0) or (b == 0 and p - q > 0):
                    continue
                lx, ly = _chi2_moment_log(int(k), q), _chi2_moment_log(int(n - k), p - q)
                if lx == -math.inf or ly == -math.inf:
                    continue
                inner += math.comb(p, q) * a ** (2 * q) * b ** (2 * (p - q)) * math.exp(lx + ly)
            total += math.exp(lb) * inner
        return (self.C_W / n) ** p * total

    def G_moment(self, p: int) -> float:
        """``E Gᵖ = K⁽¹⁾ᵖ (E Fᵖ)^{L−1}``."""
        return self.first_kernel**p * self.factor_moment(p) ** (self.depth - 1)

    def moment(self, p: int) -> float:
        """``E zᵖ`` of one output: ``(p−1)!! E G^{p/2}`` for even p, 0 for odd p.

        Examples
        --------
        >>> law = scale_invariant_law("relu", 10, 3)
        >>> round(law.moment(4) / law.moment(2) ** 2, 12)     # 3 (1 + 5/n)^(L−1)
        6.75
        """
        p = check_int(p, "p", minimum=0)
        if p % 2:
            return 0.0
        return math.prod(range(p - 1, 0, -2)) * self.G_moment(p // 2)

    def excess_kurtosis(self) -> float:
        """Exact ``E z⁴/(E z²)² − 3 = 3[E F²/(E F)²]^{L−1} − 3``."""
        r = self.factor_moment(2) / self.factor_moment(1) ** 2
        return 3.0 * (r ** (self.depth - 1) - 1.0)

    def sixth_cumulant(self) -> float:
        """Exact standardised sixth cumulant ``κ₆/(E z²)³ = 15 κ₃(G)/(E G)³``."""
        f1, f2, f3 = (self.factor_moment(p) for p in (1, 2, 3))
        a = self.depth - 1
        return 15.0 * ((f3 / f1**3) ** a - 3.0 * (f2 / f1**2) ** a + 2.0)

    def prob_zero(self) -> float:
        """``P(G = 0)``: some layer has no active unit (ReLU only; else 0)."""
        a, b = self.slopes
        if a != 0 and b != 0:
            return 0.0
        return 1.0 - (1.0 - 0.5**self.width) ** (self.depth - 1)

    def log_moments(self) -> tuple[float, float]:
        """Mean and variance of ``log G`` given ``G > 0`` (ReLU-like: a₋ = 0, or |a₋| = |a₊|).

        Uses ``E log χ²_k = log 2 + ψ(k/2)``, ``Var log χ²_k = ψ'(k/2)``; the lognormal
        approximation ``log G ~ N(mean, var)`` is the large-L resummation of the law.
        """
        from scipy.special import polygamma, psi

        n, (a, b) = self.width, self.slopes
        if b == 0 or a == 0:
            s2 = (a if b == 0 else b) ** 2
            k = np.arange(1, n + 1)
            logp = np.array([math.lgamma(n + 1) - math.lgamma(j + 1) - math.lgamma(n - j + 1) for j in k]) - n * math.log(2)
            w = np.exp(logp)
            w = w / w.sum()  # given at least one active unit
            mu_k = math.log(2.0) + psi(k / 2)
            var_k = polygamma(1, k / 2)
            mean = float(w @ mu_k)
            var = float(w @ var_k + w @ (mu_k - mean) ** 2)
            base = math.log(self.C_W * s2 / n)
        elif abs(a) == abs(b):
            mean = math.log(2.0) + float(psi(n / 2))
            var = float(polygamma(1, n / 2))
            base = math.log(self.C_W * a * a / n)
        else:
            raise InputError(f"`log_moments` needs a₋ = 0 or |a₋| = |a₊|; {self.activation} has slopes {self.slopes}.")
        L1 = self.depth - 1
        return math.log(self.first_kernel) + L1 * (base + mean), L1 * var

    @renamed_keywords(size="n_draws")
    def sample_G(self, n_draws, *, seed=0) -> np.ndarray:
        """Exact draws of ``G`` (O(L) per draw, independent of n beyond two χ² draws per layer).

        Parameters
        ----------
        n_draws : int
            Number of draws (was ``size``, still accepted with a deprecation warning).
        seed : int, default 0

        Returns
        -------
        ndarray, shape (n_draws,)

        Examples
        --------
        >>> law = scale_invariant_law("relu", 8, 3)
        >>> law.sample_G(4, seed=1).shape
        (4,)
        """
        size = check_int(n_draws, "n_draws", minimum=1)
        rng = np.random.default_rng(check_seed(seed))
        n, (a, b) = self.width, self.slopes
        G = np.full(size, self.first_kernel)
        for _ in range(self.depth - 1):
            M = rng.binomial(n, 0.5, size)
            X = np.where(M > 0, rng.chisquare(np.maximum(M, 1)), 0.0)
            Y = np.where(M < n, rng.chisquare(np.maximum(n - M, 1)), 0.0)
            G = G * (self.C_W / n) * (a * a * X + b * b * Y)
        return G

    def to_dict(self) -> dict:
        return {"activation": self.activation, "slopes": list(self.slopes), "width": self.width, "depth": self.depth,
                "C_W": self.C_W, "first_kernel": self.first_kernel, "excess_kurtosis": self.excess_kurtosis(),
                "sixth_cumulant": self.sixth_cumulant(), "prob_zero": self.prob_zero()}

    @classmethod
    def from_dict(cls, d: dict) -> "ScaleInvariantLaw":
        """Inverse of :meth:`to_dict` (the derived quantities are recomputed from the law).

        Examples
        --------
        >>> law = scale_invariant_law("leaky_relu:0.1", 16, 5)
        >>> ScaleInvariantLaw.from_json(law.to_json()) == law
        True
        """
        return cls(d["activation"], tuple(float(s) for s in d["slopes"]), int(d["width"]), int(d["depth"]),
                   float(d["C_W"]), float(d["first_kernel"]))

    def __str__(self) -> str:
        d = self.to_dict()
        rows = [[k, f"{d[k]:.6g}"] for k in ("excess_kurtosis", "sixth_cumulant", "prob_zero")]
        return (f"exact law of G: {self.activation}, n={self.width}, L={self.depth}, C_W={self.C_W:g}\n"
                + table(["quantity", "value"], rows))


def scale_invariant_law(activation, width, depth, *, C_W=None, first_kernel=1.0) -> ScaleInvariantLaw:
    """The exact law of the output variance of a scale-invariant MLP with ``C_b = 0``.

    Parameters
    ----------
    activation : str
        relu, leaky_relu[:a], linear or abs.
    width, depth : int
    C_W : float, optional
        Default: critical, ``2/(a₊² + a₋²)`` (any value works; moments scale as ``C_W^{p(L−1)}``).
    first_kernel : float

    Returns
    -------
    ScaleInvariantLaw

    Notes
    -----
    ``E Gᵖ = K⁽¹⁾ᵖ (E Fᵖ)^{L−1}`` with ``F = (C_W/n)(a₊² χ²_M + a₋² χ²_{n−M})``,
    ``M ~ Bin(n, ½)``. Expanding in 1/n gives back ``3V/(nK²) = 3c(L−1)/n`` (ReLU: c = 5) and
    ``κ₆ = 15U/n²``; the exact form holds at any L/n.

    References
    ----------
    B. Hanin & M. Nica, "Products of many large random matrices and gradients in deep neural
    networks", Commun. Math. Phys. 376 (2020); Roberts, Yaida & Hanin (2022), §5.5.

    Examples
    --------
    >>> law = scale_invariant_law("relu", 16, 5)
    >>> round(law.excess_kurtosis(), 10) == round(3 * ((1 + 5 / 16) ** 4 - 1), 10)
    True
    """
    act = resolve_activation(activation)
    if act.slopes is None:
        raise InputError(f"`activation` must be scale-invariant (relu, leaky_relu, linear, abs); got {act.name!r}.")
    width = check_int(width, "width", minimum=1)
    depth = check_int(depth, "depth", minimum=1)
    a, b = act.slopes
    C_W = 2.0 / (a * a + b * b) if C_W is None else check_float(C_W, "C_W", minimum=0, exclusive_minimum=True)
    return ScaleInvariantLaw(act.name, (float(a), float(b)), width, depth, float(C_W),
                             check_float(first_kernel, "first_kernel", minimum=0, exclusive_minimum=True))
