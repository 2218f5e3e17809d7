"""Ground truth for residual scoring: sparse features in superposition over a Gaussian background."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pft._results import JsonResult
from pft._validate import check_float, check_int, check_seed
from pft.errors import InputError

__all__ = ["ToyData", "ToyInterpretation", "superposition", "interpretations"]


@dataclass(frozen=True)
class ToyData:
    """Activations with known structure: ``activations = codes @ features + background``.

    Attributes
    ----------
    activations : (N, d) ndarray
    features : (F, d) ndarray
        Unit rows; ``F > d`` means superposition.
    codes : (N, F) ndarray
        Sparse, non-negative, heavy-tailed feature activations.
    background : (N, d) ndarray
        Gaussian, ``N(0, background_covariance)``.
    background_covariance : (d, d) ndarray
    seed : int
    """

    activations: np.ndarray = field(repr=False)
    features: np.ndarray = field(repr=False)
    codes: np.ndarray = field(repr=False)
    background: np.ndarray = field(repr=False)
    background_covariance: np.ndarray = field(repr=False)
    seed: int = 0

    @property
    def signal(self) -> np.ndarray:
        """(N, d) ``codes @ features``: what a perfect dictionary reconstructs."""
        return self.codes @ self.features

    def __str__(self) -> str:
        N, d = self.activations.shape
        return (
            f"ToyData: {N} tokens, d={d}, {self.features.shape[0]} features in superposition, "
            f"mean L0={np.mean(np.count_nonzero(self.codes, axis=1)):.2f}, seed={self.seed}"
        )


@dataclass(frozen=True)
class ToyInterpretation(JsonResult):
    """A reconstruction of :class:`ToyData` with known truth (what :func:`interpretations`
    returns; called ``Interpretation`` before, a name :class:`pft.residual.Interpretation` has).

    Attributes
    ----------
    name : str
    reconstruction : (N, d) ndarray or None
        ``None`` after :meth:`from_json`: the JSON keeps the numbers and the truth, not the
        reconstruction.
    fvu : float
        Achieved fraction of variance unexplained (matched across interpretations).
    missing : tuple of int
        Indices of the features this interpretation does not reconstruct.
    spurious_directions : (s, d) ndarray
        Unit directions of features it invents (empty unless "spurious").
    description : str
    """

    name: str
    reconstruction: np.ndarray = field(repr=False)
    fvu: float
    missing: tuple = ()
    spurious_directions: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)), repr=False)
    description: str = ""

    def to_dict(self) -> dict:
        """Everything but the reconstruction, as plain data."""
        return {
            "name": self.name,
            "fvu": self.fvu,
            "missing": list(self.missing),
            "spurious_directions": self.spurious_directions.tolist(),
            "description": self.description,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ToyInterpretation":
        """Inverse of :meth:`to_dict` (``reconstruction`` is ``None``).

        Examples
        --------
        >>> it = ToyInterpretation("oracle+noise", None, fvu=0.2, description="noise")
        >>> ToyInterpretation.from_json(it.to_json()).to_dict() == it.to_dict()
        True
        """
        dirs = np.asarray(d["spurious_directions"], dtype=np.float64)
        return cls(
            name=d["name"],
            reconstruction=None,
            fvu=float(d["fvu"]),
            missing=tuple(int(i) for i in d["missing"]),
            spurious_directions=dirs.reshape(len(d["spurious_directions"]), -1) if dirs.size else np.zeros((0, 0)),
            description=d["description"],
        )


def superposition(
    n_tokens: int = 20000,
    d: int = 64,
    n_features: int = 256,
    *,
    density: float = 0.02,
    tail: float = 0.75,
    background_fraction: float = 0.05,
    background_decay: float = 1.0,
    seed: int = 0,
) -> ToyData:
    """Sparse, heavy-tailed, non-negative features along known directions, plus a Gaussian.

    Parameters
    ----------
    n_tokens, d, n_features : int
        ``n_features > d`` puts the features in superposition.
    density : float
        Probability that a feature is active on a token.
    tail : float
        Active magnitudes are log-normal, ``exp(tail · N(0, 1))``; larger is heavier-tailed.
    background_fraction : float in [0, 1)
        Share of the total variance carried by the Gaussian background.
    background_decay : float
        The background spectrum falls like ``i^(-background_decay)`` in a random basis.
    seed : int

    Returns
    -------
    ToyData

    Examples
    --------
    >>> data = superposition(1000, d=16, n_features=48, seed=0)
    >>> data.activations.shape, data.features.shape
    ((1000, 16), (48, 16))
    >>> bool(np.all(data.codes >= 0))
    True
    """
    check_int(n_tokens, "n_tokens", minimum=2)
    check_int(d, "d", minimum=1)
    check_int(n_features, "n_features", minimum=1)
    check_float(density, "density", minimum=0, maximum=1, exclusive_minimum=True)
    check_float(background_fraction, "background_fraction", minimum=0, maximum=1, exclusive_maximum=True)
    check_float(tail, "tail", minimum=0)
    check_float(background_decay, "background_decay")
    rng = np.random.default_rng(check_seed(seed))
    feats = rng.standard_normal((n_features, d))
    feats /= np.linalg.norm(feats, axis=1, keepdims=True)
    active = rng.random((n_tokens, n_features)) < density
    codes = np.where(active, np.exp(tail * rng.standard_normal((n_tokens, n_features))), 0.0)
    signal = codes @ feats
    # Population variance of the signal: Σ_f Var(a_f) (unit directions, independent codes).
    m1 = density * np.exp(tail**2 / 2)
    m2 = density * np.exp(2 * tail**2)
    signal_var = n_features * (m2 - m1**2)
    Q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    spec = np.arange(1, d + 1, dtype=float) ** (-background_decay)
    bg_var = background_fraction / (1 - background_fraction) * signal_var
    spec *= bg_var / spec.sum()
    cov = (Q * spec) @ Q.T
    background = (rng.standard_normal((n_tokens, d)) * np.sqrt(spec)) @ Q.T
    return ToyData(
        activations=signal + background,
        features=feats,
        codes=codes,
        background=background,
        background_covariance=cov,
        seed=seed,
    )


def _total_variance(x: np.ndarray) -> float:
    mu = x.mean(axis=0)
    return float(np.mean(np.einsum("ij,ij->i", x, x)) - mu @ mu)


def _match(base: np.ndarray, noise: np.ndarray, target: float, name: str) -> np.ndarray:
    """``base + c·noise`` with ``c ≥ 0`` chosen so that ``mean‖·‖² = target`` exactly."""
    A = float(np.mean(np.einsum("ij,ij->i", noise, noise)))
    B = float(np.mean(np.einsum("ij,ij->i", base, noise)))
    C = float(np.mean(np.einsum("ij,ij->i", base, base))) - target
    if C > 0:
        raise InputError(
            f"interpretation {name!r} leaves more residual than `fvu` allows "
            f"({(C + target):.4g} > {target:.4g}); raise `fvu` or lower `n_missing`/`n_spurious`."
        )
    c = (-B + np.sqrt(B * B - A * C)) / A
    return base + c * noise


def interpretations(
    data: ToyData,
    *,
    fvu: float = 0.15,
    n_missing: int = 4,
    n_spurious: int = 4,
    shrink: float | None = None,
    seed: int = 0,
) -> dict[str, ToyInterpretation]:
    """Reconstructions of ``data`` with the same FVU and different kinds of error.

    Every residual contains the background; isotropic Gaussian noise tops it up to the same
    ``fvu`` (``E‖x − x̂‖² / (E‖x‖² − ‖E x‖²)``), so MSE and FVU tie exactly.

    - ``"oracle+noise"``: every feature reconstructed; the residual is Gaussian.
    - ``"missing"``: ``n_missing`` features (those with the largest variance among a random
      half, so they matter) are left out; their directions are the truth to find.
    - ``"spurious"``: ``n_spurious`` invented sparse features along random directions are added.
    - ``"shrunk"``: every code shrunk by a common factor (SAE-style shrinkage), so each feature
      leaves a small sparse remainder.

    Parameters
    ----------
    data : ToyData
    fvu : float
        Target fraction of variance unexplained, shared by all.
    n_missing, n_spurious : int
    shrink : float, optional
        Code multiplier for "shrunk"; default spends 60 % of the residual budget left after
        the background.
    seed : int

    Returns
    -------
    dict of str to ToyInterpretation

    Examples
    --------
    >>> data = superposition(4000, d=16, n_features=48, seed=0)
    >>> interps = interpretations(data, fvu=0.2, n_missing=2, seed=0)
    >>> sorted(interps)
    ['missing', 'oracle+noise', 'shrunk', 'spurious']
    >>> {k: round(v.fvu, 6) for k, v in interps.items()} == {k: 0.2 for k in interps}
    True
    """
    if not isinstance(data, ToyData):
        raise InputError(f"`data` must be a ToyData from pft.toy.superposition; got {type(data).__name__}.")
    check_float(fvu, "fvu", minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True)
    F = data.features.shape[0]
    check_int(n_missing, "n_missing", minimum=1, maximum=F)
    check_int(n_spurious, "n_spurious", minimum=0)
    if shrink is not None:
        check_float(shrink, "shrink")
    rng = np.random.default_rng([check_seed(seed), 1])
    X = data.activations
    N, d = X.shape
    T = _total_variance(X)
    target = fvu * T
    bg = data.background
    out: dict[str, ToyInterpretation] = {}

    def add(name, residual, **kw):
        out[name] = ToyInterpretation(
            name=name, reconstruction=X - residual, fvu=float(np.mean(np.einsum("ij,ij->i", residual, residual)) / T), **kw
        )

    noise = rng.standard_normal((N, d))
    add(
        "oracle+noise",
        _match(bg, noise, target, "oracle+noise"),
        description="every feature reconstructed; isotropic Gaussian error",
    )

    var = data.codes.var(axis=0)
    pool = rng.permutation(F)[: max(n_missing, F // 2)]
    missing = tuple(sorted(int(i) for i in pool[np.argsort(-var[pool])][:n_missing]))
    miss = data.codes[:, list(missing)] @ data.features[list(missing)]
    add(
        "missing",
        _match(bg + miss, rng.standard_normal((N, d)), target, "missing"),
        missing=missing,
        description=f"features {list(missing)} not reconstructed",
    )

    if n_spurious:
        v = rng.standard_normal((n_spurious, d))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        src = data.codes[:, rng.choice(F, n_spurious, replace=False)]
        spur = src[rng.permutation(N)] @ v
        add(
            "spurious",
            _match(bg - spur, rng.standard_normal((N, d)), target, "spurious"),
            spurious_directions=v,
            description=f"{n_spurious} invented features along random directions",
        )

    signal = data.signal
    if shrink is None:
        budget = target - float(np.mean(np.einsum("ij,ij->i", bg, bg)))
        s_var = float(np.mean(np.einsum("ij,ij->i", signal, signal)))
        shrink = 1.0 - np.sqrt(max(0.6 * budget, 0.0) / s_var)
    add(
        "shrunk",
        _match(bg + (1.0 - shrink) * signal, rng.standard_normal((N, d)), target, "shrunk"),
        description=f"every code multiplied by {shrink:.3f}",
    )
    return out
