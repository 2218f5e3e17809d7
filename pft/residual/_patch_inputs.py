"""The inputs of :func:`pft.residual.patch_scores` read once: which rungs run, and the batches."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from pft._device import tensor_from_numpy
from pft._validate import check_int, describe
from pft.errors import InputError
from pft.numeric import PerturbativeBackground
from pft.residual._patch_report import RUNGS

__all__ = ["requested_rungs", "batch_list", "GLOBAL_RUNGS", "NOISE_RUNGS"]

#: Rungs that need every batch's tokens first (a mean or a background fitted on all of them).
GLOBAL_RUNGS = ("mean_ablation", "recon+mean", "recon+gaussian", "recon+perturbative")
#: Rungs that draw noise (``n_resamples`` draws per row).
NOISE_RUNGS = ("recon+gaussian", "recon+perturbative")


def requested_rungs(rungs: Any, background: Any) -> list[str]:
    """The rungs to run, in :data:`~pft.residual._patch_report.RUNGS` order (``clean`` always:
    it is the pass that captures the module's output)."""
    perturbative = background == "perturbative" or isinstance(background, PerturbativeBackground)
    if rungs is None:
        return [k for k in RUNGS if k != "recon+perturbative" or perturbative]
    if isinstance(rungs, str) or not hasattr(rungs, "__iter__"):
        raise InputError(f"`rungs` must be a list of rung names, e.g. ['clean', 'zero_ablation', 'recon']; got {describe(rungs)}.")
    names = list(rungs)
    bad = [r for r in names if r not in RUNGS]
    if bad:
        raise InputError(f"`rungs` has unknown rung{'s' if len(bad) > 1 else ''} {bad}; the rungs are {', '.join(RUNGS)}.")
    if "recon+perturbative" in names and not perturbative:
        raise InputError(
            "`rungs` asks for 'recon+perturbative' but `background` is Gaussian; pass background='perturbative' "
            "(or a PerturbativeBackground)."
        )
    return [k for k in RUNGS if k == "clean" or k in names]


def _as_tensors(obj: Any, first_axes: list) -> Any:
    """``obj`` with numpy arrays as tensors (through Mappings and tuples); each tensor's first
    axis length (None for a scalar) is appended to ``first_axes``."""
    import torch

    if isinstance(obj, np.ndarray):
        obj = tensor_from_numpy(obj)
    if isinstance(obj, torch.Tensor):
        first_axes.append(obj.shape[0] if obj.ndim else None)
        return obj
    if isinstance(obj, Mapping):
        return {k: _as_tensors(v, first_axes) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_as_tensors(v, first_axes) for v in obj)
    return obj


def _cut(obj: Any, lo: int, hi: int) -> Any:
    """Rows ``lo:hi`` of every tensor in ``obj`` (through Mappings and tuples)."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj[lo:hi] if obj.ndim else obj
    if isinstance(obj, Mapping):
        return {k: _cut(v, lo, hi) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return tuple(_cut(v, lo, hi) for v in obj)
    return obj


def batch_list(batches: Any, batch_size: Any) -> list:
    """``batches`` as a list; with ``batch_size``, one tensor/array (or a Mapping or tuple of them
    sharing a first axis) is cut into batches of that many rows."""
    import torch

    if batch_size is not None:
        size = check_int(batch_size, "batch_size", minimum=1)
        if isinstance(batches, list):
            raise InputError(
                "`batch_size` cuts one tensor (or a Mapping/tuple of tensors) into batches; `batches` is already a "
                "list of batches: pass one or the other."
            )
        leaves: list = []
        whole = _as_tensors(batches, leaves)
        sizes = {n for n in leaves if n is not None}
        if len(sizes) != 1:
            raise InputError(
                f"with `batch_size`, `batches` must be one tensor or array (or a Mapping/tuple of them) whose tensors "
                f"share their first axis; got {describe(batches)} with first axes {sorted(sizes) or 'none'}."
            )
        n = sizes.pop()
        return [_cut(whole, lo, min(n, lo + size)) for lo in range(0, n, size)]
    if isinstance(batches, (torch.Tensor, np.ndarray, Mapping)):
        raise InputError(
            f"`batches` must be an iterable of batches; got a single {describe(batches)}. Wrap it: [batch], or pass "
            "batch_size= to cut it into batches."
        )
    try:
        batches = list(batches)
    except TypeError:
        raise InputError(f"`batches` must be an iterable of batches; got {describe(batches)}.") from None
    if not batches:
        raise InputError("`batches` is empty; pass at least one batch.")
    return batches
