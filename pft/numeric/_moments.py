"""Streaming, mergeable sufficient statistics of a cloud of vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from pft._device import as_device_matrix, is_tensor, matmul_precision, resolve_device
from pft._validate import as_matrix, check_bool, check_choice, check_int
from pft.errors import InputError

__all__ = ["Moments"]

_PRECISIONS = ("float64", "float32", "tf32")


def _is_chunk(x: Any) -> bool:
    return isinstance(x, np.ndarray) or type(x).__module__.startswith("torch") or hasattr(x, "__array__")


def _shift(n: Any, mean: Any, M: Any, T: Any, Q: Any, new_mean: Any) -> tuple[Any, Any, Any]:
    """(M, T, Q) of a block about ``new_mean`` instead of its ``mean`` (numpy or torch alike)."""
    delta = new_mean - mean
    dd = delta @ delta
    Md = M @ delta
    trM = M.diagonal().sum()
    M2 = M + n * (delta[:, None] * delta[None, :])
    T2 = T - 2.0 * Md - (trM + n * dd) * delta
    Q2 = Q - 4.0 * (delta @ T) + 4.0 * (delta @ Md) + 2.0 * dd * trM + n * dd * dd
    return M2, T2, Q2


def _merge_sums(a: tuple, b: tuple) -> tuple:
    """Chan et al.'s merge of two blocks' ``(count, mean, M, T, Q)`` (numpy or torch alike)."""
    n = a[0] + b[0]
    mean = a[1] + (b[1] - a[1]) * (b[0] / n)
    sa, sb = _shift(*a, mean), _shift(*b, mean)
    return n, mean, sa[0] + sb[0], sa[1] + sb[1], sa[2] + sb[2]


@dataclass
class Moments:
    """Count, mean and central co-moments of vectors, accumulated in float64 and mergeable.

    Holds, about the running mean ``m`` of the ``N`` rows seen so far (``z = x - m``):

    - ``comoment``  ``Σ z zᵀ``            (d, d)
    - ``norm2_z``   ``Σ ‖z‖² z``          (d,)   (zero-mean data: a third-moment vector)
    - ``norm4``     ``Σ ‖z‖⁴``            scalar

    which is everything the covariance, Ledoit–Wolf and OAS shrinkage need: no second pass.

    Parameters
    ----------
    d : int
        Number of features.

    Notes
    -----
    Chunks are reduced about their own mean and merged with the pairwise update of Chan,
    Golub & LeVeque (1979), extended to the fourth-order terms: shifting a block's reference
    point by ``δ`` gives ``Σ z'z'ᵀ = Σ zzᵀ + N δδᵀ``,
    ``Σ ‖z'‖² z' = T − 2Mδ − (tr M + N‖δ‖²) δ`` and
    ``Σ ‖z'‖⁴ = Q − 4δᵀT + 4δᵀMδ + 2‖δ‖² tr M + N‖δ‖⁴``. The order of chunks and merges changes
    the result only by rounding.

    References
    ----------
    .. [1] T. F. Chan, G. H. Golub, R. J. LeVeque, "Updating formulae and a pairwise algorithm
       for computing sample variances", 1979.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=(1000, 3))
    >>> a = Moments.from_array(x[:400]).merge(Moments.from_array(x[400:]))
    >>> bool(np.allclose(a.covariance(), np.cov(x.T, bias=True)))
    True
    """

    d: int
    count: int = 0
    mean: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    comoment: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    norm2_z: np.ndarray = field(default=None, repr=False)  # type: ignore[assignment]
    norm4: float = 0.0

    def __post_init__(self) -> None:
        self.d = check_int(self.d, "d", minimum=1)
        if self.mean is None:
            self.mean = np.zeros(self.d)
        if self.comoment is None:
            self.comoment = np.zeros((self.d, self.d))
        if self.norm2_z is None:
            self.norm2_z = np.zeros(self.d)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_array(cls, x: Any, *, name: str = "X", precision: str = "float64", device: Any = None) -> "Moments":
        """Statistics of one (N, d) array (numpy, torch on any device, or array-like).

        ``precision`` is the arithmetic of the O(N d²) products: ``"float64"`` (default),
        ``"float32"``, or ``"tf32"`` (torch on CUDA: TF32 tensor cores; elsewhere float32).
        The mean is always taken in float64 and the chunk's results are returned as float64,
        so only the within-chunk sums lose precision (about 1e-6 relative in float32, 1e-3 in
        TF32); chunks merge in float64. ``device`` (e.g. ``"cuda"``): copy a numpy ``x`` there
        (in its own dtype) and reduce there; tensors are always reduced where they live.
        """
        check_choice(precision, "precision", _PRECISIONS)
        dev = resolve_device(device)
        if dev is not None and not is_tensor(x):
            x = as_device_matrix(x, name, dev)
        if is_tensor(x):
            return cls._from_tensor(x, name=name, precision=precision)
        arr = as_matrix(x, name)
        mean = arr.mean(axis=0)
        if precision != "float64":
            z = (arr - mean).astype(np.float32)
        elif isinstance(x, np.ndarray) and np.may_share_memory(arr, x):
            z = arr - mean  # never write into the caller's array
        else:
            z = arr
            z -= mean  # arr is our own float64 copy: centre it in place
        sq = np.einsum("ij,ij->i", z, z)
        return cls(
            d=arr.shape[1],
            count=arr.shape[0],
            mean=mean,
            comoment=(z.T @ z).astype(np.float64),
            norm2_z=(z.T @ sq).astype(np.float64),
            norm4=float(sq.astype(np.float64) @ sq.astype(np.float64)),
        )

    @classmethod
    def _from_tensor(cls, x: Any, *, name: str, precision: str = "float64") -> "Moments":
        # Reduce on the tensor's own device; only d x d results come back.
        return cls._from_sums(cls._tensor_sums(x, name=name, precision=precision))

    @classmethod
    def _from_sums(cls, sums: tuple) -> "Moments":
        """A Moments from a block's ``(count, mean, M, T, Q)`` float64 tensors (one transfer)."""
        n, mean, M, T, Q = sums
        return cls(
            d=int(mean.shape[0]),
            count=int(n),
            mean=mean.cpu().numpy(),
            comoment=M.cpu().numpy(),
            norm2_z=T.cpu().numpy(),
            norm4=float(Q),
        )

    @staticmethod
    def _tensor_sums(x: Any, *, name: str, precision: str = "float64") -> tuple:
        """``(count, mean, M, T, Q)`` of a tensor, as float64 tensors on its device."""
        import torch

        t = x.detach()
        if t.ndim != 2 or t.shape[0] == 0 or t.shape[1] == 0:
            as_matrix(t.cpu()[:0] if t.ndim == 2 and t.shape[0] else t.cpu(), name)  # raises
        if not bool(torch.isfinite(t).all()):
            as_matrix(t.cpu(), name)  # raises with the position
        t64 = t.to(torch.float64)
        mean = t64.mean(dim=0)
        z = t64 - mean
        if precision != "float64":
            z = z.to(torch.float32)
        with matmul_precision(precision):
            sq = (z * z).sum(dim=1)
            com, t3 = z.T @ z, z.T @ sq
        sq64 = sq.to(torch.float64)
        return int(t.shape[0]), mean, com.to(torch.float64), t3.to(torch.float64), sq64 @ sq64

    @classmethod
    def from_chunks(
        cls,
        chunks: Iterable[Any],
        *,
        name: str = "X",
        progress: bool = False,
        precision: str = "float64",
        device: Any = None,
    ) -> "Moments":
        """Accumulate an iterable of (n_i, d) chunks (arrays or tensors) in one pass
        (``device``: where numpy chunks are reduced, as in :meth:`from_array`).

        Chunks on a torch device are merged there (the same float64 Chan updates), so the d × d
        statistics cross to the host once, not once per chunk.
        """
        check_choice(precision, "precision", _PRECISIONS)
        check_bool(progress, "progress")
        dev = resolve_device(device)
        total: Moments | None = None
        pending = None  # merged sums of consecutive chunks on one torch device
        it = chunks
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(chunks, desc="moments", unit="chunk")
        d = None
        for i, chunk in enumerate(it):
            cname = f"{name}[{i}]"
            if dev is not None and not is_tensor(chunk):
                chunk = as_device_matrix(chunk, cname, dev)
            if is_tensor(chunk):
                sums = cls._tensor_sums(chunk, name=cname, precision=precision)
                width = int(sums[1].shape[0])
            else:
                m = cls.from_array(chunk, name=cname, precision=precision)
                width = m.d
            if d is not None and width != d:
                raise InputError(f"`{cname}` has {width} features but earlier chunks had {d}.")
            d = width
            if is_tensor(chunk):
                if pending is not None and pending[1].device != sums[1].device:
                    total, pending = cls._merged(total, cls._from_sums(pending)), None
                pending = sums if pending is None else _merge_sums(pending, sums)
            else:
                total = cls._merged(total, m)
        if pending is not None:
            total = cls._merged(total, cls._from_sums(pending))
        if total is None:
            raise InputError(f"`{name}` is an empty iterable of chunks; pass at least one (n, d) array.")
        return total

    @staticmethod
    def _merged(total: "Moments | None", m: "Moments") -> "Moments":
        return m if total is None else total.merge(m)

    @classmethod
    def from_data_or_empty(cls, x: Any, d: int, *, name: str = "X") -> "Moments":
        """:meth:`from_array`, or empty statistics when ``x`` has no rows (a rank may hold none)."""
        if getattr(x, "shape", (1,))[0] == 0:
            return cls(d=d)
        return cls.from_array(x, name=name)

    @classmethod
    def from_data(cls, data: Any, *, name: str = "X", progress: bool = False) -> "Moments":
        """One array/tensor, or an iterable of chunks."""
        if isinstance(data, Moments):
            return data
        if _is_chunk(data):
            return cls.from_array(data, name=name)
        if isinstance(data, (list, tuple)) and data and not _is_chunk(data[0]):
            return cls.from_array(data, name=name)  # nested lists: one array
        return cls.from_chunks(data, name=name, progress=progress)

    # ------------------------------------------------------------------ algebra
    def _shifted(self, new_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        """(comoment, norm2_z, norm4) about ``new_mean`` instead of ``self.mean``."""
        M2, T2, Q2 = _shift(self.count, self.mean, self.comoment, self.norm2_z, self.norm4, new_mean)
        return M2, T2, float(Q2)

    def merge(self, other: "Moments") -> "Moments":
        """A new :class:`Moments` for the union of both samples (neither input changes)."""
        if not isinstance(other, Moments):
            raise InputError(f"`other` must be a Moments; got {type(other).__name__}.")
        if other.d != self.d:
            raise InputError(f"`other` has d={other.d} but this Moments has d={self.d}.")
        if other.count == 0:
            return self.copy()
        if self.count == 0:
            return other.copy()
        n = self.count + other.count
        mean = self.mean + (other.mean - self.mean) * (other.count / n)
        a = self._shifted(mean)
        b = other._shifted(mean)
        return Moments(
            d=self.d, count=n, mean=mean, comoment=a[0] + b[0], norm2_z=a[1] + b[1], norm4=a[2] + b[2]
        )

    def __add__(self, other: "Moments") -> "Moments":
        return self.merge(other)

    def copy(self) -> "Moments":
        return Moments(
            d=self.d,
            count=self.count,
            mean=self.mean.copy(),
            comoment=self.comoment.copy(),
            norm2_z=self.norm2_z.copy(),
            norm4=self.norm4,
        )

    # ------------------------------------------------------------------ derived
    def covariance(self, *, ddof: int = 0) -> np.ndarray:
        """Sample covariance (``ddof=0``: divide by N, the maximum-likelihood estimate)."""
        if self.count - ddof <= 0:
            raise InputError(f"covariance needs more than {ddof} rows; have {self.count}.")
        return self.comoment / (self.count - ddof)

    def ledoit_wolf_shrinkage(self) -> float:
        """Ledoit–Wolf (2004) shrinkage intensity towards ``μI``, ``μ = tr S / d`` (S with 1/N).

        ``δ² = ‖S − μI‖²_F``, ``b̄² = N⁻² Σ_i ‖z_i z_iᵀ − S‖²_F = (Σ‖z_i‖⁴/N − ‖S‖²_F)/N``,
        shrinkage ``min(b̄², δ²)/δ²`` (0 when ``δ² = 0``). Same value as scikit-learn's
        ``ledoit_wolf_shrinkage`` (which divides both by d).
        """
        S = self.covariance()
        n, d = self.count, self.d
        mu = float(np.trace(S)) / d
        fro2 = float(np.sum(S * S))
        delta2 = fro2 - 2.0 * mu * float(np.trace(S)) + d * mu * mu
        b2 = (self.norm4 / n - fro2) / n
        b2 = min(max(b2, 0.0), delta2)
        return 0.0 if delta2 <= 0.0 else b2 / delta2

    def oas_shrinkage(self) -> float:
        """Oracle Approximating Shrinkage (Chen, Wiesel, Eldar & Hero 2010), as in scikit-learn.

        With ``α = ‖S‖²_F/d²`` and ``μ = tr S/d``: ``min((α + μ²) / ((N + 1)(α − μ²/d)), 1)``.
        """
        S = self.covariance()
        d = self.d
        alpha = float(np.sum(S * S)) / d**2
        mu = float(np.trace(S)) / d
        den = (self.count + 1) * (alpha - mu * mu / d)
        return 1.0 if den == 0 else min((alpha + mu * mu) / den, 1.0)

    # ------------------------------------------------------------------ distributed
    def _pack(self) -> np.ndarray:
        return np.concatenate(
            [[float(self.count)], self.mean, self.comoment.ravel(), self.norm2_z, [self.norm4]]
        )

    @classmethod
    def _unpack(cls, flat: np.ndarray, d: int) -> "Moments":
        a = 1
        mean = flat[a : a + d]
        a += d
        com = flat[a : a + d * d].reshape(d, d)
        a += d * d
        t = flat[a : a + d]
        return cls(d=d, count=int(round(flat[0])), mean=mean.copy(), comoment=com.copy(), norm2_z=t.copy(), norm4=float(flat[-1]))

    def all_reduce(self, group: Any = None) -> "Moments":
        """Merge this rank's statistics with every other rank's (``torch.distributed``).

        Every rank gets the same result: the per-rank statistics are all-gathered as one
        float64 tensor each and merged in rank order with the same pairwise update as
        :meth:`merge`, so the answer equals a single process's fit on the concatenated data
        up to rounding. Needs an initialised process group (gloo on CPU, nccl on GPUs); the
        tensors travel on the device that backend expects.

        Returns a new :class:`Moments`; this one is unchanged.
        """
        from pft.distributed import DistributedReducer

        red = DistributedReducer(group)
        # ranks must agree on d before exchanging d² numbers
        ds = sorted({int(v) for v in red.gather_rows(np.array([[float(self.d)]]))[:, 0]})
        if len(ds) != 1:
            raise InputError(f"ranks disagree on the number of features: {ds}.")
        total = Moments(d=self.d)
        for part in red.gather_rows(self._pack()[None, :]):
            total = total.merge(Moments._unpack(part, self.d))
        return total

    def to_dict(self) -> dict:
        return {
            "d": self.d,
            "count": self.count,
            "mean": self.mean.tolist(),
            "comoment": self.comoment.tolist(),
            "norm2_z": self.norm2_z.tolist(),
            "norm4": self.norm4,
        }

    def __repr__(self) -> str:
        return f"Moments(d={self.d}, count={self.count})"
