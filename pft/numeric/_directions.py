"""The front door of the missed-feature search: :func:`feature_directions` and its result."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pft._device import as_device_matrix, is_tensor, like, resolve_device
from pft._results import JsonResult
from pft._deprecation import renamed_keywords
from pft._validate import as_matrix, check_float, check_int, check_seed
from pft.errors import InputError
from pft.distributed import reducer, uniforms
from pft.numeric._pursuit import search_and_select
from pft.numeric.projections import project_moments

__all__ = ["FeatureDirections", "feature_directions"]


@dataclass(frozen=True)
class FeatureDirections(JsonResult):
    """Directions found by :func:`feature_directions`, best first.

    Attributes
    ----------
    patterns : (k, d) ndarray
        Unit activation-space patterns (the direction a feature moves the data).
    filters : (k, d) ndarray
        Read-out filters: ``filters @ (x − mean)`` is each direction's unit-variance projection.
    whitened : (k, r) ndarray
        The same directions as unit vectors in the whitened coordinates of the Gaussian fit.
    skewness, kurtosis : (k,) ndarray
        Skewness and excess kurtosis of the projections on held-out rows that neither searched
        nor selected.
    skewness_z, kurtosis_z : (k,) ndarray
        Their Gaussian-null z-scores, ``s/√(6/n)`` and ``κ/√(24/n)``.
    variance_share : (k,) ndarray
        Share of the data's total variance along each direction.
    source : tuple of str
        ``"sparse"`` (a sparse-coding atom), ``"pursuit"`` (clipped skew-and-kurtosis pursuit)
        or ``"tail"`` (unclipped symmetric pursuit from the heaviest rows).
    n_search, n_select, n_test : int
        Rows that searched, that selected, and that scored.
    """

    patterns: np.ndarray = field(repr=False)
    filters: np.ndarray = field(repr=False)
    whitened: np.ndarray = field(repr=False)
    skewness: np.ndarray
    kurtosis: np.ndarray
    skewness_z: np.ndarray
    kurtosis_z: np.ndarray
    variance_share: np.ndarray
    source: tuple
    n_search: int
    n_select: int
    n_test: int

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "FeatureDirections":
        """Inverse of :meth:`to_dict` (``FeatureDirections.from_json(r.to_json())`` gives ``r`` back).

        Examples
        --------
        >>> r = FeatureDirections.from_dict({
        ...     "patterns": [[1.0, 0.0]], "filters": [[2.0, 0.0]], "whitened": [[1.0, 0.0]],
        ...     "skewness": [1.5], "kurtosis": [4.0], "skewness_z": [30.0], "kurtosis_z": [40.0],
        ...     "variance_share": [0.6], "source": ["sparse"], "n_search": 600, "n_select": 200,
        ...     "n_test": 200})
        >>> FeatureDirections.from_json(r.to_json()).to_dict() == r.to_dict()
        True
        """
        kw = dict(d)
        for name in ("patterns", "filters", "whitened"):
            a = np.asarray(kw[name], dtype=float)
            kw[name] = a.reshape(0, 0) if a.ndim == 1 and a.size == 0 else a
        for name in ("skewness", "kurtosis", "skewness_z", "kurtosis_z", "variance_share"):
            kw[name] = np.asarray(kw[name], dtype=float)
        kw["source"] = tuple(str(s) for s in kw["source"])
        for name in ("n_search", "n_select", "n_test"):
            kw[name] = int(kw[name])
        return cls(**kw)

    def __str__(self) -> str:
        lines = [f"FeatureDirections: {len(self.skewness)} directions ({self.n_search} rows searched, "
                 f"{self.n_select} to select, {self.n_test} to score)",
                 f"  {'i':>3} {'skewness':>9} {'z':>8} {'ex. kurtosis':>13} {'z':>8} {'var. share':>11}  source"]
        for i in range(len(self.skewness)):
            lines.append(f"  {i:>3} {self.skewness[i]:>9.3f} {self.skewness_z[i]:>8.1f} {self.kurtosis[i]:>13.3f} "
                         f"{self.kurtosis_z[i]:>8.1f} {self.variance_share[i]:>11.4f}  {self.source[i]}")
        return "\n".join(lines)


@renamed_keywords(k="n_directions")
def feature_directions(
    X: Any,
    n_directions: int,
    *,
    seed: int = 0,
    select_fraction: float = 0.2,
    gaussian: Any = None,
    distributed: bool = False,
    group: Any = None,
    device: Any = None,
) -> FeatureDirections:
    """Candidate missed features in a residual ``X`` (N, d): sparse-coding atoms and
    skew-and-kurtosis pursuit optima, selected and scored on held-out rows.

    What it selects on, on rows that shaped no candidate: Comon's negentropy estimate
    ``J = s²/12 + κ²/48`` from the held-out skewness ``s`` and excess kurtosis ``κ``, and the
    share of the variance among significantly non-Gaussian candidates, taking from the two in
    turn (see the module docstring for the candidate sources). The statistics returned are
    measured on a third set of rows. The search's products are float32 (with float64 sums);
    every statistic is float64, so summing other pieces of rows (other chunks, ranks or a
    device) moves the directions by about 1e-4, far inside their sampling error.

    Parameters
    ----------
    X : (N, d) array or tensor
    n_directions : int
        Directions returned (fewer when the candidates span fewer distinct directions).
    seed : int, default 0
        Seeds the search/selection split of the rows (drawn per row index).
    select_fraction : float, default 0.2
        Fraction of rows held out to select among the candidates; as many again are held out to
        score the selected directions (the statistics returned), so that selection cannot
        inflate them.
    gaussian : GaussianBackground, optional
        A Gaussian already fitted to ``X`` (whitening); fitted here (Ledoit–Wolf) otherwise.
    distributed, group
        Each ``torch.distributed`` rank passes its own rows; all get the same result.
    device : str or torch.device, optional
        Where the O(N d²) whitening and the O(N d m) passes run.

    Returns
    -------
    FeatureDirections

    Notes
    -----
    ``n_directions`` was called ``k`` before; ``k=`` still works and warns.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> d = rng.normal(size=16); d /= np.linalg.norm(d)
    >>> x = rng.normal(size=(8000, 16)) + np.outer(rng.exponential(size=8000) * (rng.random(8000) < 0.1), 4 * d)
    >>> found = feature_directions(x, 2, seed=0)
    >>> bool(abs(found.patterns[0] @ d) > 0.95), bool(found.skewness_z[0] > 10)
    (True, True)
    """
    from pft.numeric._background import GaussianBackground

    dev = resolve_device(device)
    if is_tensor(X) or dev is not None:
        X = as_device_matrix(X, "X", dev if dev is not None else X.device)
    else:
        X = as_matrix(X, "X", min_rows=16)
    check_seed(seed)
    check_float(select_fraction, "select_fraction", minimum=0, maximum=0.5, exclusive_minimum=True,
                exclusive_maximum=True)
    red = reducer(distributed, group)
    offset, N = red.offset_and_total(X.shape[0])
    g = gaussian if gaussian is not None else GaussianBackground(device=dev).fit(X, distributed=distributed, group=group)
    r = g.rank_
    k = check_int(n_directions, "n_directions", minimum=1)
    if k > r:
        raise InputError(f"`n_directions` must be at most {r} (the rank of the data); got {k!r}.")
    u = uniforms(offset, X.shape[0], seed, 13)
    f = float(select_fraction)
    search, held, test = X[like(u >= 2 * f, X)], X[like((u >= f) & (u < 2 * f), X)], X[like(u < f, X)]
    cap = max(2048, 2**21 // r)
    s_off, n_search = red.offset_and_total(len(search))  # the sample follows global search-row indices
    v = uniforms(s_off, len(search), seed, 14)
    p = cap / max(1.0, float(n_search))
    sample = search[like(v < p, search)]
    found = search_and_select(
        lambda: [search], sample, lambda: [held], g.mean_,
        g.eigenvectors_[:, :r], g.eigenvalues_[:r], int(k), sample_half=(v < 0.5 * p)[v < p], reduce=red,
    )
    U = found["selected"]
    st = project_moments(lambda: [test], g.filter(U), g.mean_, red)
    share = (U * U) @ g.eigenvalues_[:r] / float(np.sum(g.eigenvalues_))
    pat = g.pattern(U)
    return FeatureDirections(
        patterns=pat / np.linalg.norm(pat, axis=1, keepdims=True), filters=g.filter(U), whitened=U,
        skewness=st["skewness"], kurtosis=st["kurtosis"], skewness_z=st["skewness_z"], kurtosis_z=st["kurtosis_z"],
        variance_share=share, source=tuple(str(s) for s in found["source"][found["chosen"]]),
        n_search=int(red.sum(len(search))), n_select=int(red.sum(len(held))), n_test=int(st["n"]),
    )
