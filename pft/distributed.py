"""Sums over rows that may live on several processes: the one place pft talks to
``torch.distributed``.

Every statistic pft fits is a sum over rows, so the same code runs on one process (the sums
are local) or on many (``torch.distributed``: the sums are all-reduced, and every rank gets the
same answer). Splits of the rows (held-out tokens, halves for cross-fitting) are drawn per
*global* row index, so they do not depend on how rows are sharded across ranks.

Every function that takes ``distributed=True`` builds its :class:`Reducer` with
:func:`reducer`; functions that take a ``reducer=`` argument accept any :class:`Reducer`.
This module imports torch only when a :class:`DistributedReducer` is built.

Examples
--------
>>> import numpy as np
>>> from pft.distributed import reducer
>>> red = reducer(distributed=False)
>>> red.sum(np.ones(3)).tolist(), red.offset_and_total(5)
([1.0, 1.0, 1.0], (0, 5))
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Iterator

import numpy as np

from pft.errors import InputError

__all__ = ["Reducer", "LocalReducer", "DistributedReducer", "reducer", "uniforms", "torchrun_missing",
           "process_group"]

_BLOCK = 65536


def uniforms(offset: int, n: int, seed: int, stream: int) -> np.ndarray:
    """Uniform(0, 1) numbers for global rows ``offset … offset+n−1``, independent of sharding.

    Row ``i`` gets element ``i mod 65536`` of the block ``i // 65536`` drawn from
    ``default_rng([seed, stream, block])``, so any rank can draw its own rows' numbers.
    """
    from pft._validate import check_seed

    seed = check_seed(seed)
    out = np.empty(n)
    pos = 0
    while pos < n:
        g = offset + pos
        b, start = divmod(g, _BLOCK)
        take = min(_BLOCK - start, n - pos)
        # the first start + take numbers of the block's stream (the same as drawing all of them)
        out[pos : pos + take] = np.random.default_rng([seed, stream, b]).random(start + take)[start:]
        pos += take
    return out


class Reducer:
    """Interface: ``sum`` adds arrays over ranks; ``gather_rows`` concatenates rows in rank order."""

    distributed = False

    def sum(self, a: Any) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def gather_rows(self, a: np.ndarray) -> np.ndarray:  # pragma: no cover - interface
        raise NotImplementedError

    def offset_and_total(self, n_local: int) -> tuple[int, int]:
        """(global index of this rank's first row, total rows over ranks)."""
        counts = self.gather_rows(np.array([[float(n_local)]]))[:, 0].astype(int)
        rank_offset = int(np.sum(counts[: self.rank]))
        return rank_offset, int(np.sum(counts))

    rank = 0

    def moments(self, m):
        """Merge :class:`~pft.numeric.Moments` over ranks."""
        return m


class LocalReducer(Reducer):
    """One process: sums are the local sums."""

    def sum(self, a: Any) -> np.ndarray:
        return np.asarray(a, dtype=np.float64)

    def gather_rows(self, a: np.ndarray) -> np.ndarray:
        return a

    def offset_and_total(self, n_local: int) -> tuple[int, int]:
        return 0, int(n_local)


class DistributedReducer(Reducer):
    """Sums over the ranks of a ``torch.distributed`` process group (float64 all-reduce)."""

    distributed = True

    def __init__(self, group: Any = None) -> None:
        import torch
        import torch.distributed as dist

        if not dist.is_available() or not dist.is_initialized():
            raise InputError(
                "`distributed=True` needs an initialised torch.distributed process group "
                "(run under torchrun, or call torch.distributed.init_process_group first)."
            )
        self._dist = dist
        self._torch = torch
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        nccl = dist.get_backend(group) == "nccl"
        self.device = torch.device("cuda", torch.cuda.current_device()) if nccl else torch.device("cpu")

    def moments(self, m):
        return m.all_reduce(self.group)

    def sum(self, a: Any) -> np.ndarray:
        arr = np.asarray(a, dtype=np.float64)
        t = self._torch.as_tensor(np.ascontiguousarray(arr), device=self.device)
        self._dist.all_reduce(t, group=self.group)
        return t.cpu().numpy().reshape(arr.shape)

    def gather_rows(self, a: np.ndarray) -> np.ndarray:
        a = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
        torch, dist = self._torch, self._dist
        n = torch.tensor([a.shape[0]], dtype=torch.int64, device=self.device)
        ns = [torch.zeros_like(n) for _ in range(self.world)]
        dist.all_gather(ns, n, group=self.group)
        ns = [int(v.item()) for v in ns]
        width = a.shape[1:]
        padded = np.zeros((max(ns),) + width)
        padded[: a.shape[0]] = a
        t = torch.as_tensor(padded, device=self.device)
        parts = [torch.empty_like(t) for _ in range(self.world)]
        dist.all_gather(parts, t, group=self.group)
        return np.concatenate([p.cpu().numpy()[:k] for p, k in zip(parts, ns)])


def reducer(distributed: bool, group: Any = None) -> Reducer:
    """A :class:`DistributedReducer` over ``group`` when ``distributed``, else a
    :class:`LocalReducer`."""
    return DistributedReducer(group) if distributed else LocalReducer()


#: the environment variables torchrun sets for every rank
_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def torchrun_missing() -> tuple[str, ...]:
    """The torchrun variables (``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``) not
    set in this process; ``()`` under torchrun or when a process group is already initialised.

    Examples
    --------
    >>> import os
    >>> missing = torchrun_missing()
    >>> "RANK" in missing or "RANK" in os.environ
    True
    """
    missing = tuple(v for v in _TORCHRUN_VARIABLES if v not in os.environ)
    if missing:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return ()
    return missing


@contextlib.contextmanager
def process_group(device: Any = None) -> Iterator[tuple[int, int, Any]]:
    """Join the process group of a torchrun launch for the duration of a ``with`` block.

    Yields ``(rank, world_size, device)``. The group uses NCCL when ``device`` is a CUDA device,
    else gloo, and is created only if none is initialised yet; it is destroyed when the block
    ends (also on an exception). ``device="cuda"`` becomes ``cuda:LOCAL_RANK`` (one GPU per rank,
    torchrun's ``LOCAL_RANK`` picks it) and is made the current CUDA device; any other value is
    yielded as given.
    """
    import torch.distributed as dist

    if str(device) == "cuda":
        import torch

        device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
        torch.cuda.set_device(torch.device(device))
    if not dist.is_initialized():
        cuda = device is not None and str(device).startswith("cuda")
        dist.init_process_group("nccl" if cuda else "gloo")
    try:
        yield dist.get_rank(), dist.get_world_size(), device
    finally:
        dist.destroy_process_group()
