"""How :func:`pft.residual.patch_scores` runs one rung on one batch.

- The splice: :class:`Splice` replaces the hooked rows that count by :class:`Constant` (the
  ablations) or :class:`ReconPlus` (the reconstruction, plus the residual, its mean or noise);
  masked rows keep their clean values.
- The noise: :func:`fit_background` fits the residual's background, :class:`GaussianDraws`
  draws from a fitted Gaussian on the model's device.
- The forward: :class:`Runner` runs a spliced forward (the whole model with a hook, or the rest
  of it from the module, see :mod:`pft.residual._patch_resume`), returns per-row loss and KL
  sums, and runs the ``n_resamples`` draws of a noise rung on the batch repeated along its first
  axis when the model keeps the copies apart (:func:`tile`, :func:`tile_group`).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from pft._validate import describe
from pft.errors import InputError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground
from pft.residual._patch_stats import kl_rows, kl_rows_of, logits_of, row_sums

__all__ = [
    "Splice", "Constant", "ReconPlus", "checked_recon", "background_needs_rows", "fit_background", "GaussianDraws",
    "tile", "tile_group", "Runner", "TILE_BYTES_CPU", "TILE_BYTES",
]

#: The most bytes of output (logits, or the hooked activations) of one forward on a batch repeated
#: for several noise draws (see :func:`tile_group`): on a CPU, and on an accelerator.
TILE_BYTES_CPU = 8 << 20
TILE_BYTES = 1 << 30


# ---------------------------------------------------------------------- the splice
class Splice:
    """A transform of the hooked rows ``x`` (n, d): the rows that count (``keep``; all of them
    when ``keep`` is None or ``every``) become ``new_rows(x[keep])``, the others keep their
    clean values (``x`` itself is never written into)."""

    def __init__(self, keep: Any, new_rows: Callable, every: bool = False) -> None:
        self.keep = keep
        self.new_rows = new_rows
        self.every = every

    def __call__(self, x):
        if self.keep is None or self.every:
            return self.new_rows(x)
        if not bool(self.keep.any()):
            return x
        out = x.clone()
        out[self.keep] = self.new_rows(x[self.keep])
        return out


class Constant:
    """New rows: one vector ``v`` (d,) for every row (zero or mean ablation)."""

    def __init__(self, v: Any) -> None:
        import torch

        self.v = torch.as_tensor(v)

    def __call__(self, xk):
        return self.v.to(dtype=xk.dtype, device=xk.device).expand_as(xk)


class ReconPlus:
    """New rows: the reconstruction ``xh`` of the rows that count, plus, at most one of, the
    residual ``xk − xh`` (``residual``), a constant vector ``extra`` (d,), or draws
    ``sampler(n_rows)`` (a tensor or an array)."""

    def __init__(self, xh: Any, *, residual: bool = False, extra: Any = None, sampler: Callable | None = None) -> None:
        self.xh = xh
        self.residual = residual
        self.extra = extra
        self.sampler = sampler

    def __call__(self, xk):
        import torch

        xh = self.xh
        if self.residual:
            return xh + (xk - xh)
        if self.extra is not None:
            return xh + torch.as_tensor(self.extra).to(dtype=xk.dtype, device=xk.device)
        if self.sampler is not None:
            z = self.sampler(xk.shape[0])
            z = z if isinstance(z, torch.Tensor) else torch.from_numpy(z)
            return xh + z.to(dtype=xk.dtype, device=xk.device)
        return xh


def checked_recon(interp: Any, x: Any, start: int, name: str, keep: Any = None):
    """The interpretation's reconstruction of the rows of ``x`` that count (all without ``keep``),
    checked finite. A precomputed array is indexed by token, so it is read for every row of ``x``
    and its masked rows dropped; anything else sees only the rows that count."""
    import torch

    if keep is None:
        xh = interp(x, start=start)
    elif not bool(keep.any()):
        return x[:0]  # nothing counts in this batch: the interpretation is not called on 0 rows
    elif interp.n_tokens is not None:
        xh = interp(x, start=start)[keep]
    else:
        xh = interp(x[keep], start=start)
    if not torch.all(torch.isfinite(xh)):
        bad = int((~torch.isfinite(xh)).sum())
        raise InputError(
            f"`interpretation` must return finite values; got {bad} NaN/inf value{'s' if bad != 1 else ''} on the "
            f"output of {name!r} (tokens {start}..{start + x.shape[0] - 1}). Fix the interpretation (or its input "
            "scaling)."
        )
    return xh


# ---------------------------------------------------------------------- backgrounds
def background_needs_rows(background: Any) -> bool:
    """Whether fitting ``background`` needs the residual's rows (not only its moments)."""
    if isinstance(background, PerturbativeBackground):
        return not hasattr(background, "gaussian_")
    if isinstance(background, GaussianBackground):
        return not hasattr(background, "mean_")
    return background == "perturbative"


def fit_background(background: Any, moments: Moments, r: np.ndarray | None, seed: int, device: Any = None):
    """``(gaussian, perturbative or None, label)`` from the residual's :class:`Moments` (the
    default Ledoit–Wolf Gaussian, its eigendecomposition on ``device``) or its rows ``r``
    (float64 numpy, where :func:`background_needs_rows`)."""
    if background is None or background == "gaussian":
        g = GaussianBackground(shrinkage="ledoit-wolf", device=device).fit(moments)
        return g, None, "Gaussian (Ledoit–Wolf) fitted on these residuals"
    if background == "perturbative":
        pb = PerturbativeBackground(seed=seed, n_directions=min(8, r.shape[1])).fit(r)
        return pb.gaussian_, pb, "perturbative background fitted on these residuals"
    if isinstance(background, PerturbativeBackground):
        fitted = hasattr(background, "gaussian_")
        pb = background if fitted else copy.deepcopy(background).fit(r)
        return pb.gaussian_, pb, "the given perturbative background" + ("" if fitted else " (fitted on these residuals)")
    if isinstance(background, GaussianBackground):
        fitted = hasattr(background, "mean_")
        g = background if fitted else copy.deepcopy(background).fit(r)
        return g, None, "the given Gaussian background" + ("" if fitted else " (fitted on these residuals)")
    raise InputError(
        f"`background` must be None, 'gaussian', 'perturbative', a GaussianBackground or a "
        f"PerturbativeBackground; got {describe(background)}."
    )


class GaussianDraws:
    """Draws of a fitted :class:`GaussianBackground` as float64 tensors on ``device``: the
    standard normals ``z`` come from the caller's numpy generator exactly as in
    ``GaussianBackground.sample`` (the same stream), and ``μ + z Λ^{1/2} Vᵀ`` is formed where the
    model runs (no host round trip of the (k, d) draws)."""

    def __init__(self, g: GaussianBackground, device: Any) -> None:
        import torch

        r = int(g.rank_)
        self.r = r
        self.factor = torch.as_tensor(np.sqrt(g.eigenvalues_[:r])[:, None] * g.eigenvectors_[:, :r].T, device=device)
        self.mean = torch.as_tensor(g.mean_, device=device)

    def __call__(self, k: int, rng: np.random.Generator):
        import torch

        z = torch.from_numpy(rng.standard_normal((int(k), self.r))).to(self.factor.device)
        return torch.addmm(self.mean, z, self.factor)


# ---------------------------------------------------------------------- several draws per forward
class _Untileable(Exception):
    """The hooked output of a repeated batch does not hold the copies along its first axis."""


def tile(obj: Any, n: int, rows: int):
    """``obj`` with every tensor whose first axis has ``rows`` entries repeated ``n`` times along it
    (copy 0 first); None when some tensor has another first axis (it cannot be told apart)."""
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.ndim == 0 or obj.shape[0] != rows:
            return None
        return obj.repeat(n, *([1] * (obj.ndim - 1)))
    if isinstance(obj, Mapping):
        out = {k: tile(v, n, rows) for k, v in obj.items()}
        return None if any(out[k] is None and obj[k] is not None for k in obj) else out
    if isinstance(obj, (tuple, list)):
        vals = [tile(v, n, rows) for v in obj]
        if any(t is None and v is not None for t, v in zip(vals, obj)):
            return None
        return type(obj)(vals)
    if obj is None or isinstance(obj, (int, float, str, bool)):
        return obj
    return None


class _Stacked:
    """The transform of ``len(transforms)`` stacked copies of a batch's ``rows`` hooked rows:
    copy ``j`` is spliced by ``transforms[j]``, in order (the same draws as one forward each)."""

    def __init__(self, transforms: list, rows: int) -> None:
        self.transforms = transforms
        self.rows = rows

    def __call__(self, x):
        import torch

        rows = self.rows
        if x.shape[0] != len(self.transforms) * rows:
            raise _Untileable
        return torch.cat([f(x[j * rows:(j + 1) * rows]) for j, f in enumerate(self.transforms)])


def tile_group(n: int, copy_bytes: int, device: Any) -> int:
    """How many of ``n`` draws share one forward on the repeated batch, for a batch whose output
    (logits, or the hooked activations) takes ``copy_bytes``: as many as fit in the tiled-batch
    budget of the device (at least 1). On a CPU the arithmetic is the same either way and larger
    tensors only cost memory traffic, so copies are stacked only while they are small (saving the
    per-forward overhead); on an accelerator a larger batch is fewer, larger kernels, up to a
    budget that keeps the tiled logits and their KL temporaries in memory."""
    budget = TILE_BYTES_CPU if getattr(device, "type", "cpu") == "cpu" else TILE_BYTES
    return max(1, min(int(n), budget // max(int(copy_bytes), 1)))


# ---------------------------------------------------------------------- the forward passes
class Runner:
    """Runs spliced forwards of one :func:`patch_scores` call through its open ``hook``.

    ``loss_fn``, ``logits`` and ``vocab`` say how a forward's output becomes per-row loss and KL
    sums; ``resume_at`` is the block to enter the model at (None: always the whole model);
    ``n_resamples`` draws of a noise rung are stacked into one forward while ``batch_resamples``
    holds and the model keeps the copies apart; ``bar`` (a tqdm bar or None) counts forwards.
    """

    def __init__(self, model: Any, hook: Any, *, loss_fn: Callable, logits: Any, vocab: int | None,
                 resume_at: int | None, n_resamples: int, batch_resamples: bool, device: Any, bar: Any) -> None:
        self.model = model
        self.hook = hook
        self.loss_fn = loss_fn
        self.logits = logits
        self.vocab = vocab
        self.resume_at = resume_at
        self.n_resamples = int(n_resamples)
        self.tiling = bool(batch_resamples) and n_resamples > 1
        self.device = device
        self.bar = bar

    def tick(self, n: int = 1) -> None:
        """Count ``n`` forwards on the progress bar."""
        if self.bar is not None:
            self.bar.update(n)

    def spliced(self, b: Any, transform: Callable, x: Any = None, lead: tuple | None = None):
        """The model's output on batch ``b`` with the module's output replaced by
        ``transform(x)``: the whole forward with a hook, or, given the clean output ``x`` (flat
        rows) of a model that can be entered there (``resume_at``), only the rest of it."""
        if x is None:
            return self.hook.run(self.model, b, transform=transform)
        new = transform(x)
        return self.hook.resume(self.model, new.reshape(*lead, new.shape[-1]), self.resume_at)

    def run_once(self, b: Any, transform: Callable, keep_lead: Any, lp_clean: Any, what: str, x: Any = None,
                 lead: tuple | None = None):
        """One spliced forward: per-row ``(sums, counts)`` of the loss, and of the KL to the
        clean distribution ``lp_clean`` (None without one)."""
        out = self.spliced(b, transform, x, lead)
        lr = row_sums(self.loss_fn(out, b), what, keep_lead)
        kr = kl_rows(lp_clean, out, self.logits, what, keep_lead, self.vocab)
        self.tick()
        return lr, kr

    def run_resampled(self, b: Any, lead: tuple, transform: Callable, keep_lead: Any, lp_clean: Any, what: str,
                      rng: np.random.Generator, x: Any = None, copy_bytes: int = 0):
        """``n_resamples`` draws of a noise rung (``transform`` draws afresh on each call),
        averaged per row: in forwards on the batch repeated along its first axis (as many copies
        as :func:`tile_group` allows for a copy of ``copy_bytes``) when the model allows, else
        one forward per draw. Draws are made in the same order either way."""
        n = self.n_resamples
        group = tile_group(n, copy_bytes, self.device) if self.tiling else 1
        acc_l = acc_k = None
        done = 0
        while done < n:
            k = min(group, n - done)
            if k > 1:
                state = rng.bit_generator.state  # a failed try must not use up the draws
                res = self._run_tiled(b, lead, k, transform, keep_lead, lp_clean, what, x)
                if res is None:  # the model or loss does not keep copies apart: one forward per draw
                    self.tiling = False
                    rng.bit_generator.state = state
                    group = 1
                    continue
                self.tick(k)
                lr, kr = res
            else:
                lr, kr = self.run_once(b, transform, keep_lead, lp_clean, what, x, lead)
            acc_l = lr if acc_l is None else (acc_l[0] + lr[0], lr[1])
            if kr is not None:
                acc_k = kr if acc_k is None else (acc_k[0] + kr[0], kr[1])
            done += k
        return (acc_l[0] / n, acc_l[1]), (None if acc_k is None else (acc_k[0] / n, acc_k[1]))

    def _run_tiled(self, b: Any, lead: tuple, n: int, transform: Callable, keep_lead: Any, lp_clean: Any, what: str,
                   x: Any):
        """One forward on ``n`` stacked copies of batch ``b``, each spliced by its own call of
        ``transform``: per-row ``(loss, KL)`` as ``(sums, counts)`` with the sums added over the
        copies, or None when the model or the loss does not keep the copies apart along the
        first axis (the caller then runs one forward per draw)."""
        import torch

        B = int(lead[0]) if lead else 0
        bt = tile(b, n, B) if B else None
        if bt is None:
            return None
        rows = int(np.prod(lead))
        stacked = _Stacked([transform] * n, rows)
        lead_n = (n * B, *lead[1:])
        try:
            out = self.spliced(bt, stacked, None if x is None else x.repeat(n, 1), lead_n)
        except _Untileable:
            return None
        loss = self.loss_fn(out, bt)
        if not isinstance(loss, torch.Tensor) or loss.ndim == 0 or loss.shape[0] != n * B:
            return None
        acc_l = acc_k = None
        lg = logits_of(out, self.logits, self.vocab) if lp_clean is not None else None
        if lp_clean is not None and (lg is None or lg.shape[0] != n * B):
            return None
        for j in range(n):
            lr = row_sums(loss[j * B:(j + 1) * B], what, keep_lead)
            acc_l = lr if acc_l is None else (acc_l[0] + lr[0], lr[1])
            if lg is not None:
                kr = kl_rows_of(lp_clean, lg[j * B:(j + 1) * B], what, keep_lead)
                acc_k = kr if acc_k is None else (acc_k[0] + kr[0], kr[1])
        return acc_l, acc_k
