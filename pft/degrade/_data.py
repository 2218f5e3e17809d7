"""The data a tempered posterior is sampled on: one ``(inputs, targets)`` pair of tensors, or
any re-iterable of such batches (a ``torch.utils.data.DataLoader``, a list).

Both give the sampler the same three things: the full-data mean loss ``L_n`` (one pass), an
endless stream of minibatches (one epoch after another), and one batch drawn at random for the
curvature probes.
"""

from __future__ import annotations

import numpy as np
import torch

from pft._device import tensor_from_numpy
from pft.errors import InputError

__all__ = ["PairData", "BatchData", "as_data"]


def _as_tensor(name: str, x, *, device, dtype, check: bool = True) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = tensor_from_numpy(x)
    if not isinstance(x, torch.Tensor):
        raise InputError(
            f"`{name}` must be a torch.Tensor or numpy array; got {type(x).__name__}. "
            "Pass `data=(inputs, targets)` or an iterable of such batches (a DataLoader)."
        )
    if x.is_floating_point():
        if check and not torch.isfinite(x).all():
            bad = int((~torch.isfinite(x)).sum())
            raise InputError(f"`{name}` has {bad} non-finite values; pft does not impute — drop or fix them.")
        x = x.to(device=device, dtype=dtype)
    else:
        x = x.to(device=device)
    return x


def _rows(name: str, inputs: torch.Tensor, targets: torch.Tensor) -> int:
    rows = int(inputs.shape[0]) if inputs.ndim else 0
    if targets.ndim == 0 or targets.shape[0] != rows or rows == 0:
        raise InputError(
            f"`{name}` inputs and targets must share a non-empty first dimension; got shapes "
            f"{tuple(inputs.shape)} and {tuple(targets.shape)}."
        )
    return rows


def _is_array(x) -> bool:
    return isinstance(x, (torch.Tensor, np.ndarray))


class PairData:
    """``(inputs, targets)`` held in memory; minibatches of ``batch_size`` rows drawn without
    replacement and reshuffled every epoch, or the full data every step (``batch_size=None``).
    """

    def __init__(self, inputs, targets, *, batch_size, device, dtype):
        self.inputs = _as_tensor("data[0] (inputs)", inputs, device=device, dtype=dtype)
        self.targets = _as_tensor("data[1] (targets)", targets, device=device, dtype=dtype)
        self.n_data = _rows("data", self.inputs, self.targets)
        if batch_size is not None and batch_size > self.n_data:
            raise InputError(
                f"`batch_size` must be at most the number of rows {self.n_data}; got {batch_size}. "
                "Use batch_size=None for full-batch gradients."
            )
        self.batch_size = batch_size
        b = batch_size or self.n_data
        #: SGLD steps per pass over the data (1 for full batch)
        self.steps_per_epoch = self.n_data // b

    def full_loss(self, loss) -> float:
        chunk = self.batch_size or self.n_data
        total = 0.0
        for start in range(0, self.n_data, chunk):
            stop = min(start + chunk, self.n_data)
            total += float(loss(self.inputs[start:stop], self.targets[start:stop])) * (stop - start)
        return total / self.n_data

    def stream(self, generator: torch.Generator):
        if self.batch_size is None:
            while True:
                yield self.inputs, self.targets
        b = self.batch_size
        while True:
            perm = torch.randperm(self.n_data, generator=generator).to(self.inputs.device)
            for start in range(0, self.n_data - b + 1, b):
                idx = perm[start : start + b]
                yield self.inputs[idx], self.targets[idx]

    def probe_batch(self, generator: torch.Generator):
        """What one SGLD step sees: the full data, or ``batch_size`` rows drawn at random."""
        if self.batch_size is None:
            return self.inputs, self.targets
        idx = torch.randperm(self.n_data, generator=generator)[: self.batch_size].to(self.inputs.device)
        return self.inputs[idx], self.targets[idx]


class BatchData:
    """A re-iterable of ``(inputs, targets)`` batches, iterated afresh for every epoch (a
    DataLoader reshuffles then as it was built to). One pass at construction counts the rows
    ``n_data`` and the batches per epoch and checks every batch."""

    def __init__(self, batches, *, device, dtype):
        if iter(batches) is batches:
            raise InputError(
                f"`data` is a one-shot iterator ({type(batches).__name__}); SGLD passes over the data "
                "many times. Pass a DataLoader, a list of (inputs, targets) batches, or one pair."
            )
        self.batches, self.device, self.dtype = batches, device, dtype
        n_data = n_batches = 0
        for inputs, targets in self._epoch(check=True):
            n_data += int(inputs.shape[0])
            n_batches += 1
        if n_batches == 0:
            raise InputError("`data` yielded no batches; it must hold at least one (inputs, targets) batch.")
        self.n_data, self.n_batches = n_data, n_batches
        self.batch_size = None
        self.steps_per_epoch = n_batches

    def _epoch(self, check: bool = False):
        for k, batch in enumerate(self.batches):
            if isinstance(batch, dict) or not (isinstance(batch, (tuple, list)) and len(batch) == 2):
                raise InputError(
                    f"each batch of `data` must be a pair (inputs, targets); batch {k} is a "
                    f"{type(batch).__name__}"
                    + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                    + ". Wrap the dataset so that it yields (inputs, targets); for an autoencoder (x, x)."
                )
            inputs = _as_tensor(f"data batch {k} inputs", batch[0], device=self.device, dtype=self.dtype, check=check)
            targets = _as_tensor(f"data batch {k} targets", batch[1], device=self.device, dtype=self.dtype, check=check)
            if check:
                _rows(f"data batch {k}", inputs, targets)
            yield inputs, targets

    def full_loss(self, loss) -> float:
        total, rows = 0.0, 0
        for inputs, targets in self._epoch():
            k = int(inputs.shape[0])
            total += float(loss(inputs, targets)) * k
            rows += k
        return total / rows

    def stream(self, generator: torch.Generator):
        while True:
            empty = True
            for batch in self._epoch():
                empty = False
                yield batch
            if empty:
                raise InputError("`data` yielded no batches on a later pass; it must be re-iterable.")

    def probe_batch(self, generator: torch.Generator):
        """One batch of an epoch, chosen at random (not the first: data may be sorted)."""
        if self.n_batches == 1:  # the full data, as for a pair sampled full-batch
            return next(iter(self._epoch()))
        pick = int(torch.randint(self.n_batches, (1,), generator=generator))
        for k, batch in enumerate(self._epoch()):
            if k == pick:
                return batch
        raise InputError("`data` yielded fewer batches than on its first pass; it must be re-iterable.")


def as_data(data, *, batch_size, device, dtype):
    """``PairData`` for ``(inputs, targets)`` arrays, ``BatchData`` for an iterable of batches."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and _is_array(data[0]) and _is_array(data[1]):
        return PairData(data[0], data[1], batch_size=batch_size, device=device, dtype=dtype)
    if _is_array(data) or isinstance(data, (str, bytes, dict)) or not hasattr(data, "__iter__"):
        raise InputError(
            f"`data` must be a pair (inputs, targets) or a re-iterable of such batches (a DataLoader, "
            f"a list); got {type(data).__name__}. For an autoencoder pass (x, x)."
        )
    if isinstance(data, (tuple, list)) and len(data) == 2 and (_is_array(data[0]) or _is_array(data[1])):
        raise InputError(
            f"`data` must be a pair (inputs, targets) of tensors or arrays; got ({type(data[0]).__name__}, "
            f"{type(data[1]).__name__})."
        )
    if batch_size is not None:
        raise InputError(
            "`batch_size` applies to data given as one (inputs, targets) pair; with a DataLoader or a "
            "list of batches the batches are used as they come. Leave batch_size=None."
        )
    return BatchData(data, device=device, dtype=dtype)
