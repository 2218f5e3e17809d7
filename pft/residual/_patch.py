"""patch_scores(): what the model does when a module's output is replaced by the interpretation
plus each candidate model of its residual."""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from pft._device import tensor_from_numpy
from pft._validate import describe
from pft.errors import InputError, PatchError
from pft.numeric import GaussianBackground, Moments, PerturbativeBackground
from pft.residual._interpretation import as_interpretation, trailing_axes
from pft.residual._patch_report import RUNGS, PatchReport
from pft.residual._patch_resume import resume_layer, token_batch
from pft.residual._sampling import sample_perturbative

__all__ = ["patch_scores", "PatchError", "resolve_module", "forward", "hooked"]


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early once the activations are captured."""


# ---------------------------------------------------------------------- model plumbing
def resolve_module(model: Any, module: Any):
    """``(submodule, dotted_name)`` for a dotted path or a submodule of ``model``."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise InputError(f"`model` must be a torch.nn.Module; got {describe(model)}.")
    names = {m: n for n, m in model.named_modules()}
    if isinstance(module, str):
        try:
            return model.get_submodule(module), module
        except AttributeError:
            paths = [n for n in names.values() if n]
            close = difflib.get_close_matches(module, paths, n=3, cutoff=0.5)
            hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else (
                f" Some paths: {', '.join(repr(p) for p in paths[:5])}." if paths else ""
            )
            raise InputError(
                f"`module` {module!r} is not a submodule of the model ({type(model).__name__}).{hint}"
            ) from None
    if isinstance(module, torch.nn.Module):
        if module not in names:
            raise InputError(
                f"`module` ({type(module).__name__}) is not a submodule of `model` ({type(model).__name__}); "
                "pass one of model.modules() or its dotted path."
            )
        return module, names[module] or "<model>"
    raise InputError(f"`module` must be a dotted path or a torch.nn.Module; got {describe(module)}.")


def _to_device(obj: Any, device: Any):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, Mapping):  # a plain dict comes back (model(**batch) takes any Mapping)
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (tuple, list)):
        return type(obj)(_to_device(v, device) for v in obj)
    return obj


def forward(model: Any, batch: Any):
    """Call ``model`` on one batch: a Mapping is passed as keywords, a tuple/list's first element
    is the input (the rest is for the loss), anything else is passed as is."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, (tuple, list)):
        if not batch:
            raise InputError("a batch is an empty tuple; pass (inputs, targets, ...) or a Mapping of model inputs.")
        inputs = batch[0]
        return model(**inputs) if isinstance(inputs, Mapping) else model(inputs)
    return model(batch)


def _primary(output: Any):
    """The tensor a hook replaces: the output itself, or the first element of a tuple output
    (transformers 4.x layers return ``(hidden_states, ...)``)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output, lambda new: new
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        rest = tuple(output[1:])
        if isinstance(output, list):
            return output[0], lambda new: [new, *rest]
        if hasattr(output, "_fields"):  # a NamedTuple
            return output[0], lambda new: type(output)(new, *rest)
        return output[0], lambda new: (new, *rest)
    raise InputError(
        f"the hooked module returned {describe(output)}; pft patches a tensor or the first tensor of a tuple."
    )


class hooked:
    """Context manager: a forward hook on ``module`` that maps its (n, d) output through
    ``self.transform`` (``None``: observe only). The hook is removed on exit, error or not.

    ``width`` (the interpretation's declared input width, optional) decides how the output is
    cut into rows: when its last axis is not ``width`` wide but its last k axes multiply to it
    (attention ``hook_z`` outputs ``(B, L, n_heads, d_head)``), the last k axes are flattened,
    as SAELens does."""

    def __init__(self, module: Any, name: str, width: int | None = None) -> None:
        self.module = module
        self.name = name
        self.width = width
        self.transform: Callable | None = None
        self.capture: list | None = None
        self.stop = False
        self.calls = 0
        self.armed = False
        self.shape: tuple | None = None  # leading shape (all but the row axes) of the last output seen
        self.handle = None

    def _hook(self, mod, inputs, output):
        if not self.armed:
            raise InputError(
                f"`module` {self.name!r} ran outside the model's forward pass on the batch — `loss_fn` called the "
                "model (or the module) again. `loss_fn` must compute the loss from the output it is given: for a "
                "HookedTransformer, return the per-token cross-entropy of the logits it receives (see "
                "pft.interop.next_token_loss)."
            )
        self.calls += 1
        if self.calls > 1:
            raise InputError(
                f"`module` {self.name!r} was called {self.calls} times in one forward pass; pft patches a "
                "module called once per forward (hook a module that is not shared or reused)."
            )
        x, rebuild = _primary(output)
        shape = x.shape
        # rows of the interpretation's width (a hook_z output's last two axes); when nothing
        # fits, rows of the last axis, and the interpretation names the mismatch
        k = trailing_axes(tuple(shape), self.width) or 1
        self.shape = tuple(shape[:-k])
        flat = x.reshape(-1, int(np.prod(shape[-k:]))) if (x.ndim != 2 or k != 1) else x
        if self.capture is not None:
            self.capture.append(flat.detach())
        if self.stop:
            raise _Stop
        if self.transform is None:
            return None
        new = self.transform(flat)
        return rebuild(new.reshape(shape))

    def run(self, model: Any, batch: Any, *, transform=None, capture=None, stop=False):
        """One forward with this hook's settings; checks the module was called."""
        self.transform, self.capture, self.stop, self.calls = transform, capture, stop, 0
        out = None
        self.armed = True
        try:
            out = forward(model, batch)
        except _Stop:
            pass
        finally:
            self.armed = False
        if self.calls == 0:
            raise InputError(
                f"`module` {self.name!r} was not called during the model's forward pass; hook a module on the "
                "path from these inputs to the output (print(model) lists them)."
            )
        return out

    def resume(self, model: Any, new: Any, start: int):
        """The model run from block ``start`` on the spliced output ``new`` (see
        :mod:`pft.residual._patch_resume`); the hooked module, when it runs again (a block's
        ``hook_resid_pre``), passes ``new`` through unchanged."""
        self.transform, self.capture, self.stop, self.calls = None, None, False, 0
        self.armed = True
        try:
            return model(new, start_at_layer=start)
        finally:
            self.armed = False

    def __enter__(self) -> "hooked":
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


# ---------------------------------------------------------------------- token masks
def _as_bool_mask(v: Any, what: str):
    """``v`` as a boolean tensor: bool, or integers that are all 0/1 (an ``attention_mask``)."""
    import torch

    if isinstance(v, torch.Tensor):
        t = v.detach()
        dtype, floating = t.dtype, t.is_floating_point() or t.is_complex()
    else:
        try:
            arr = np.asarray(v)
        except Exception:
            arr = None
        if arr is None or arr.dtype.kind not in "biufc":
            raise InputError(f"{what} must be a boolean array or tensor (True = the token counts); got {describe(v)}.")
        dtype, floating = arr.dtype, arr.dtype.kind in "fc"
        t = None if floating else tensor_from_numpy(arr)
    if floating:
        raise InputError(
            f"{what} must be boolean (True = the token counts) or integer 0/1 like an attention_mask; got dtype "
            f"{dtype}. Compare it explicitly, e.g. mask > 0.5."
        )
    if t.dtype == torch.bool:
        return t
    if t.numel() and not bool(((t == 0) | (t == 1)).all()):
        raise InputError(
            f"{what} has integer values other than 0 and 1 (dtype {t.dtype}); pass a boolean mask "
            "(True = the token counts)."
        )
    return t != 0


class _TokenMasks:
    """The token masks of :func:`patch_scores`, one batch at a time (True = the token counts).

    ``for_batch(i, batch, lead)`` gives batch ``i``'s boolean mask of the hooked output's
    leading shape ``lead`` (None when neither ``mask`` nor ``exclude_positions`` is given);
    ``finish()`` checks that a single stacked array was used up exactly."""

    def __init__(self, mask: Any, exclude_positions: Any, n_batches: int) -> None:
        import torch

        if exclude_positions is not None:
            ep = exclude_positions
            if isinstance(ep, (str, bytes, bool, torch.Tensor)) or not hasattr(ep, "__iter__"):
                raise InputError(f"`exclude_positions` must be a tuple of integer positions, e.g. (0,); got {describe(ep)}.")
            pos = list(exclude_positions)
            if not all(isinstance(p, (int, np.integer)) and not isinstance(p, (bool, np.bool_)) for p in pos):
                raise InputError(f"`exclude_positions` must hold integers; got {exclude_positions!r}.")
            self.pos = [int(p) for p in pos]
        else:
            self.pos = []
        self.mask = mask
        self.n_batches = n_batches
        self.active = mask is not None or bool(self.pos)
        self.rows_used = 0
        self.stacked = None
        if mask is None:
            pass
        elif isinstance(mask, (torch.Tensor, np.ndarray)):
            self.stacked = _as_bool_mask(mask, "`mask`")
        elif isinstance(mask, (list, tuple)):
            if len(mask) != n_batches:
                raise InputError(
                    f"`mask` is a {type(mask).__name__} of {len(mask)} masks but there are {n_batches} batches; "
                    "pass one mask per batch (or one array for all of them, or a callable batch -> mask)."
                )
        elif not callable(mask):
            raise InputError(
                "`mask` must be None, a boolean (rows, seq) array or tensor for all of `batches`, a list with one per "
                f"batch, or a callable batch -> mask; got {describe(mask)}."
            )
        self.description = ", ".join(
            (["mask"] if mask is not None else []) + ([f"positions {tuple(self.pos)}"] if self.pos else [])
        )

    def for_batch(self, i: int, batch: Any, lead: tuple):
        import torch

        if not self.active:
            return None
        mask, lead = self.mask, tuple(lead)
        if mask is None:
            m = torch.ones(lead, dtype=torch.bool)
        elif self.stacked is not None:
            st = self.stacked
            want = (int(st.shape[0]) if st.ndim else None, *lead[1:])
            if not lead or st.ndim != len(lead) or tuple(st.shape[1:]) != lead[1:]:
                raise InputError(
                    f"`mask` has shape {tuple(st.shape)}; one array for all of `batches` must have shape {want} "
                    f"(the hooked output's leading shape is {lead} on batch {i}; the batches' rows stacked along the "
                    "first axis). Pass a list with one mask per batch, or a callable batch -> mask, when the batches differ."
                )
            lo, hi = self.rows_used, self.rows_used + lead[0]
            if hi > st.shape[0]:
                raise InputError(
                    f"`mask` has {st.shape[0]} rows but `batches` give at least {hi} (batch {i} has {lead[0]}); one "
                    "array for all of `batches` has one row per row of every batch, stacked."
                )
            self.rows_used = hi
            m = st[lo:hi]
        elif isinstance(mask, (list, tuple)):
            m = _as_bool_mask(mask[i], f"`mask`[{i}]")
        else:
            m = _as_bool_mask(mask(batch), f"`mask`(batch {i}) (the callable's result)")
        if tuple(m.shape) != lead:
            raise InputError(
                f"`mask` for batch {i} has shape {tuple(m.shape)} but the hooked output of that batch has "
                f"{len(lead)} leading axes of shape {lead} (one entry per token; its last axis is the width)."
            )
        if self.pos:
            if len(lead) < 2:
                raise InputError(
                    f"`exclude_positions` needs a sequence axis, but the hooked output of batch {i} has leading shape "
                    f"{lead} (rows, width only); pass `mask` with one boolean per token instead."
                )
            bad = [p for p in self.pos if not -lead[1] <= p < lead[1]]
            if bad:
                raise InputError(
                    f"`exclude_positions` {bad} out of range for batch {i}, whose sequences have {lead[1]} positions."
                )
            m = m.clone()  # never write into the caller's tensor
            m[:, self.pos] = False
        return m

    def finish(self) -> None:
        st = self.stacked
        if st is not None and self.rows_used != st.shape[0]:
            raise InputError(
                f"`mask` has shape {tuple(st.shape)}; one array for all of `batches` must have "
                f"{self.rows_used} rows (the rows of every batch, stacked)."
            )


def _entry_weights(keep: Any, shape: tuple, loss_name: str):
    """Which entries of a (B, ...) loss or KL tensor count, from the batch's token mask ``keep``
    (the hooked output's leading shape).

    Axes are matched from the left: the first is the row; a position axis of the loss may be as
    long as the mask's or one shorter (next-token losses on ``logits[:, :-1]``: entry ``t`` is the
    prediction made at position ``t``). Mask axes the loss lacks are reduced with ``any`` (a
    per-row loss counts when any of its tokens does); loss axes the mask lacks inherit it.
    """
    if len(shape) == 0:
        return keep.any().reshape(())
    if keep.ndim == 0 or shape[0] != keep.shape[0]:
        rows = keep.shape[0] if keep.ndim else 0
        raise InputError(
            f"{loss_name} has {shape[0]} rows but `mask` has {rows} for this batch; with a mask, the loss's "
            "first axis must be the batch's rows (the hooked output's first axis)."
        )
    k = keep
    for a in range(1, min(len(shape), k.ndim)):
        n, p = shape[a], k.shape[a]
        if n == p:
            continue
        if a == 1 and n == p - 1:
            k = k.narrow(1, 0, n)
            continue
        raise InputError(
            f"{loss_name} has shape {tuple(shape)} but `mask` has shape {tuple(keep.shape)}: axis {a} must have "
            f"{p} entries{' (or ' + str(p - 1) + ' for a next-token loss)' if a == 1 else ''}. Return one loss per "
            "position, or per row (B,) averaged as you wish."
        )
    if k.ndim > len(shape):
        k = k.reshape(*k.shape[: len(shape)], -1).any(dim=-1)
    while k.ndim < len(shape):
        k = k.unsqueeze(-1)
    return k.expand(shape)


def _rows(loss: Any, what: str, keep: Any = None, label: str = "loss", check: bool = True):
    """Per-row ``(sums, counts)`` of a scalar, (B,) or (B, ...) loss over the entries that count
    (all of them without a mask; see :func:`_entry_weights`)."""
    import torch

    if not isinstance(loss, torch.Tensor):
        try:
            loss = torch.as_tensor(loss, dtype=torch.float64)
        except Exception:
            raise InputError(f"`loss_fn` must return a tensor of losses; got {describe(loss)}.") from None
    loss = loss.detach().to(torch.float64)
    if keep is None:
        w = torch.ones(loss.shape, dtype=torch.bool, device=loss.device)
    else:
        source = "`loss_fn`'s loss" if label == "loss" else "the per-position KL (from the logits)"
        w = _entry_weights(keep.to(loss.device), tuple(loss.shape), source)
    if loss.ndim == 0:
        loss, w = loss.reshape(1), w.reshape(1)
    flat = loss.reshape(loss.shape[0], -1)
    wf = w.reshape(loss.shape[0], -1)
    bad_rows = (wf & ~torch.isfinite(flat)).any(dim=1)
    if check and bool(bad_rows.any()):
        bad = int(bad_rows.sum())
        raise PatchError(
            f"the {label} is non-finite on {bad} row{'s' if bad != 1 else ''} in the "
            f"{what} run; "
            + (
                "the unpatched model already produces NaN/inf — check the inputs and the model."
                if what == "clean"
                else "the patched model overflows; check the interpretation's scale (or the background)."
            )
        )
    sums = torch.where(wf, flat, torch.zeros((), dtype=flat.dtype, device=flat.device)).sum(dim=1)
    return sums.cpu().numpy(), wf.sum(dim=1).cpu().numpy().astype(np.float64)


# ---------------------------------------------------------------------- statistics
def _ratio(num: np.ndarray, den: np.ndarray) -> tuple[float, float]:
    """``mean(num)/mean(den)`` and its delta-method standard error from paired rows."""
    n = len(num)
    mden = float(np.mean(den))
    if n == 0 or mden == 0:
        return math.nan, math.nan
    R = float(np.mean(num)) / mden
    if n < 2:
        return R, math.nan
    return R, float(np.std(num - R * den, ddof=1) / (math.sqrt(n) * abs(mden)))


def _vocab_size(model: Any) -> int | None:
    """The model's vocabulary size when it declares one (TransformerLens ``cfg.d_vocab_out`` /
    ``cfg.d_vocab``, transformers ``config.vocab_size``)."""
    for holder, names in ((getattr(model, "cfg", None), ("d_vocab_out", "d_vocab")),
                          (getattr(model, "config", None), ("vocab_size",))):
        for n in names:
            v = getattr(holder, n, None)
            if isinstance(v, (int, np.integer)) and v > 1:
                return int(v)
    return None


def _logits_of(out: Any, logits: Any, vocab: int | None = None):
    """The logits in a model output (None when there are none to find)."""
    import torch

    if logits is None or logits is False:
        return None
    if callable(logits):
        return logits(out)
    if logits == "auto":
        lg = getattr(out, "logits", None)
        if lg is None and isinstance(out, Mapping):
            lg = out.get("logits")
        if lg is None and isinstance(out, torch.Tensor) and vocab is not None and out.ndim >= 2 \
                and out.shape[-1] == vocab and out.is_floating_point():
            lg = out  # a bare logits tensor (TransformerLens' HookedTransformer)
        return lg if isinstance(lg, torch.Tensor) else None
    raise InputError(f"`logits` must be 'auto', None or a callable output -> logits; got {logits!r}.")


def _no_logits_reason(out: Any, logits: Any, vocab: int | None) -> str:
    if logits is None or logits is False:
        return "logits=None was passed: no KL is computed"
    shape = f" of shape {tuple(out.shape)}" if hasattr(out, "shape") else ""
    voc = f" (the model's vocabulary is {vocab})" if vocab else " (the model declares no vocabulary size)"
    return (f"logits='auto' found no logits in the model's output ({type(out).__name__}{shape}): no `.logits`, no "
            f"'logits' key, and not a tensor whose last axis is the vocabulary{voc}; pass logits=lambda out: ...")


def _kl_rows(logp_clean, out, logits, what: str, keep: Any = None, vocab: int | None = None):
    """Per-row ``(sums, counts)`` of ``KL(p_clean ‖ p)`` per position (None without logits)."""
    lg = _logits_of(out, logits, vocab)
    if lg is None or logp_clean is None:
        return None
    return _kl_rows_of(logp_clean, lg, what, keep)


class _Clean:
    """The clean distribution of one batch, for ``KL(p_clean ‖ p)`` against any rung: the clean
    logits ``ℓ_c``, ``p_c = softmax ℓ_c`` and ``log Σ_v p_c`` (≈ 0), in the logits' dtype
    (float32 at least), computed once per batch."""

    def __init__(self, lg) -> None:
        import torch

        self.dtype = torch.float64 if lg.dtype == torch.float64 else torch.float32
        self.l = lg.detach().to(self.dtype)
        self.p = torch.softmax(self.l, dim=-1)
        self.logz = torch.log(self.p.sum(dim=-1))


def _kl_rows_of(clean: _Clean, lg, what: str, keep: Any = None):
    """Per-row ``(sums, counts)`` of ``KL(p_c ‖ p)`` per position, with ``Δ = ℓ_c − ℓ``:
    ``KL = Σ_v p_c Δ + log Σ_v p_c e^{−Δ}`` (``log Σ p_c`` subtracted). Each term is small when
    the rung is close to clean, so there is no cancellation of large numbers and the per-position
    values can be evaluated in float32 (float64 logits stay float64); positions are summed in
    float64. Where an exponent underflows, the batch is redone in float64."""
    import torch

    delta = clean.l - lg.detach().to(clean.dtype)
    lin = torch.linalg.vecdot(clean.p, delta)
    delta.neg_()
    m = delta.amax(dim=-1, keepdim=True)
    delta.sub_(m).exp_()
    kl = lin + m.squeeze(-1) + torch.log(torch.linalg.vecdot(clean.p, delta)) - clean.logz
    if not bool(torch.isfinite(kl).all()) and clean.dtype != torch.float64:
        lc = clean.l.double()
        logp_c = torch.log_softmax(lc, dim=-1)
        logp = torch.log_softmax(lg.detach().double(), dim=-1)
        kl = (logp_c.exp() * (logp_c - logp)).sum(dim=-1)
    return _rows(kl, what, keep, label="KL", check=False)


# ---------------------------------------------------------------------- backgrounds
def _background_needs_rows(background: Any) -> bool:
    """Whether fitting ``background`` needs the residual's rows (not only its moments)."""
    if isinstance(background, PerturbativeBackground):
        return not hasattr(background, "gaussian_")
    if isinstance(background, GaussianBackground):
        return not hasattr(background, "mean_")
    return background == "perturbative"


def _fit_background(background: Any, moments: Moments, r: np.ndarray | None, seed: int, device: Any = None):
    """``(gaussian, perturbative or None, label)`` from the residual's :class:`Moments` (the
    default Ledoit–Wolf Gaussian, its eigendecomposition on ``device``) or its rows ``r``
    (float64 numpy, where :func:`_background_needs_rows`)."""
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


class _GaussianDraws:
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


# ---------------------------------------------------------------------- the score
def patch_scores(
    model: Any,
    module: Any,
    batches: Any,
    *,
    interpretation: Any,
    loss_fn: Callable[[Any, Any], Any],
    background: Any = None,
    n_resamples: int = 4,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
    logits: Any = "auto",
    check_rtol: float = 1e-4,
    loss_name: str = "loss",
    mask: Any = None,
    exclude_positions: Any = None,
    rungs: Any = None,
    batch_size: int | None = None,
    convention: str = "pft",
    batch_resamples: bool = True,
) -> PatchReport:
    """Run ``model`` with ``module``'s output replaced, rung by rung, and score the interpretation
    by what the model does.

    Parameters
    ----------
    model : torch.nn.Module
        Called once per batch per rung, under ``torch.no_grad()``; put it in ``eval()`` mode
        (dropout makes the sanity check fail, on purpose).
    module : str or torch.nn.Module
        The submodule (or its dotted path, e.g. ``"model.layers.6"``) whose output is replaced.
        Its output is a tensor ``(..., d)`` or a tuple whose first element is one (transformers
        4.x layers); leading axes are tokens.
    batches : iterable
        Each batch is a Mapping (passed as ``model(**batch)``), a tuple/list whose first element
        is the model input (``model(batch[0])``, or ``model(**batch[0])`` for a Mapping) and whose
        rest is for the loss, or a tensor (``model(batch)``). Read into a list (iterated twice).
    interpretation : see :func:`as_interpretation`
        Maps the module's (n, d) output ``x`` to ``x̂``.
    loss_fn : callable ``(output, batch) -> losses``
        A scalar, (B,) or (B, ...) tensor; trailing axes are averaged, giving one loss per row.
    background : None, "gaussian", "perturbative", GaussianBackground or PerturbativeBackground
        The residual's noise model. ``None``/``"gaussian"``: a Ledoit–Wolf Gaussian fitted on the
        residuals ``r = x − x̂`` of these batches. ``"perturbative"`` fits a
        :class:`~pft.numeric.PerturbativeBackground` on them (and adds its rung). Unfitted
        instances are copied and fitted on them; fitted ones are used as they are.
    n_resamples : int, default 4
        Noise draws per row for the two stochastic rungs (their losses are averaged per row).
    seed : int, default 0
    device : str or torch.device, optional
        Where batches are moved (default: the device of the model's first parameter). The model
        itself is not moved.
    progress : bool, default True
    logits : "auto", None or callable ``output -> logits``, default "auto"
        How to find logits for the KL columns; ``"auto"`` uses ``output.logits`` when present.
    check_rtol : float, default 1e-4
        The ``recon+residual`` rung must reproduce the clean loss within
        ``check_rtol · (|L_clean| + 1)``.
    loss_name : str
        Label of the loss in the table.
    mask : None, array or tensor, list of them, or callable ``batch -> mask``
        Which tokens count (True) and which are left alone (False), with the hooked output's
        leading shape: ``(B, L)`` for a ``(B, L, d)`` output. One boolean array for all of
        ``batches`` (their rows stacked: ``(ΣB, L)``), a list with one per batch, or a callable
        called on each batch, e.g. ``lambda b: b["attention_mask"]``; integer 0/1 masks (an
        ``attention_mask``) are read as booleans. See Notes for what a masked token does.
    exclude_positions : tuple of int, optional
        Positions along the sequence axis (the second axis of a ``(B, L, ..., d)`` output;
        negative ones count from the end) that never count, e.g. ``(0,)`` for a causal LM's
        attention-sink/BOS position. Combined with ``mask`` (a token counts when both allow it).
    rungs : list of str, optional
        Run only these rungs (default: all; ``recon+perturbative`` only with a perturbative
        background). ``clean`` is always run: it is the pass that captures the module's output.
        SAELens' ``run_evals`` rungs are ``["clean", "zero_ablation", "recon"]``. Scores whose
        rungs were not run are NaN and say so in :attr:`PatchReport.nan_reasons`. Without
        ``recon+residual`` the sanity check runs on the first batch only.
    batch_size : int, optional
        Cut ``batches``, then one tensor or array of inputs (or a Mapping or tuple of them that
        share their first axis, e.g. ``{"input_ids": ids, "attention_mask": am}``), into batches
        of this many rows.
    convention : "pft" or "saelens", default "pft"
        ``"saelens"``: the ablation rungs replace every token, masked ones included, as
        SAELens' ``run_evals`` zero-ablates all of them; everything else is unchanged. With no
        mask the two conventions are the same.
    batch_resamples : bool, default True
        Run the ``n_resamples`` draws of a noise rung as one forward on the batch repeated
        ``n_resamples`` times along its first axis (each copy spliced with its own draws; the
        same draws as one forward per draw). The repeated batch is capped by the size of its
        output (logits, or the hooked activations): 8 MiB on a CPU, where larger tensors only
        add memory traffic, and 1 GiB on an accelerator; past that the draws run in groups
        (down to one forward per draw). Falls back to one forward per draw when the batch
        holds a tensor with another first axis, or the hooked output or the loss does not keep
        the copies along the first axis.

    Returns
    -------
    PatchReport

    Notes
    -----
    Forward passes per batch: the clean one (it also captures the module's output), then
    ``zero_ablation``, ``recon`` and ``recon+residual`` right away; once every batch has been
    seen (means and the background need all tokens), ``mean_ablation``, ``recon+mean`` and the
    noise rungs (one forward each with ``batch_resamples``). The clean logits are kept for the
    second group's KL up to 1 GiB; past that the clean forward is run again for it.

    A TransformerLens ``HookedTransformer`` hooked at a block's ``hook_resid_pre``,
    ``hook_resid_post`` (or the block itself) and called on token ids runs its patched rungs
    from that block on (``start_at_layer``), on the clean pass's activations spliced: the same
    numbers, without recomputing the blocks before the splice (their clean outputs are kept up
    to 1 GiB for the second group). ``recon+residual``, the sanity check, always runs the whole
    model. The conditions under which this is exact are listed in
    ``pft.residual._patch_resume``; anything else runs the whole model with a hook.

    Rungs, with ``x`` the module's output and ``r = x − x̂``:

    ======================  =====================================================
    clean                   ``x``
    zero_ablation           ``0``
    mean_ablation           ``mean_t x_t`` over every token of ``batches``
    recon                   ``x̂``
    recon+mean              ``x̂ + mean_t r_t``
    recon+gaussian          ``x̂ + z``, ``z ~ N(μ, Σ)`` of the background, drawn per token
                            independently of the token (a noise model)
    recon+perturbative      ``x̂ + z``, ``z`` from the perturbative background (when given)
    recon+residual          ``x̂ + r`` — must give the clean loss; raises otherwise
    ======================  =====================================================

    Scores are ratios of mean losses (the SAELens convention, not means of ratios):
    ``ce_loss_recovered = (L_zero − L_recon) / (L_zero − L_clean)`` (SAELens' "CE loss
    recovered", with zero ablation; ``mean_ablation_recovered`` uses mean ablation) and
    ``gaussian_recovered = (L_recon − L_gauss) / (L_recon − L_clean)``. Standard errors treat
    rows (the first axis of the loss) as independent: every rung is run on the same rows, so
    the ratios' errors come from the paired per-row differences by the delta method,
    ``SE(Ā/B̄) = std(a_i − R b_i) / (√n |B̄|)``. Tokens within a row are correlated and are
    never treated as independent. KL is ``KL(p_clean ‖ p_rung)`` per position, averaged.

    **SAELens.** With nothing masked, ``ce_loss_recovered`` and ``kl_score`` are SAELens'
    ``ce_loss_score`` and ``kl_div_score`` (with a next-token loss, see
    :func:`pft.interop.next_token_loss`), and the clean / recon / zero_ablation losses and KLs its
    ``ce_loss_without_sae`` / ``ce_loss_with_sae`` / ``ce_loss_with_ablation`` /
    ``kl_div_with_sae`` / ``kl_div_with_ablation`` (aliases on the report). With masked tokens
    (SAELens masks special tokens by default) they differ in one place: SAELens zero-ablates
    masked tokens too, pft keeps them clean in every rung. ``convention="saelens"`` reproduces
    SAELens exactly; the default keeps the rungs comparable token for token.

    Losses and KLs with trailing axes are averaged over all their entries, pooled across rows
    (token-weighted, like a language model's mean cross-entropy): a row contributes the sum of
    its entries and their count, so the means and ratios above are ratios of sums, and their
    standard errors the delta method over rows as stated. Without a mask every row has the same
    count and this is the plain mean of per-row means.

    **Masked tokens** (``mask`` False, or a position in ``exclude_positions``):

    - are *never spliced*: in every rung, ablations included, they keep their clean activation
      (bit for bit), so the rungs differ only at tokens that count;
    - are left out of everything fitted or averaged at the hooked module: ``mean_t x_t`` and
      ``mean_t r_t``, the Gaussian/perturbative background, ``n_tokens``; the interpretation is
      evaluated on the tokens that count only (a precomputed array still has one row per token
      of ``batches``, masked ones included; those rows are ignored);
    - are left out of the loss and KL averages *as the position whose output is scored*: the
      entries of a ``(B, L)`` loss/KL are matched to the mask position by position, and a
      ``(B, L − 1)`` loss to its first ``L − 1`` positions (a next-token loss on
      ``logits[:, :-1]``: entry ``t`` is the prediction made at position ``t``, of token
      ``t + 1``). So ``exclude_positions=(0,)`` drops the prediction made at the sink, which no
      rung can change in a causal model (position 0 sees only itself, and it is not spliced).
      The prediction *of* a masked token, made at the position before it, is kept: if it
      should not count (a padding target), leave it out in ``loss_fn`` and return a (B,) loss
      averaged as you wish. A (B,) loss is one number per row, used as is; a row counts when
      any of its tokens does, and rows with nothing that counts are left out of every average
      (``n_rows``).

    In a causal model a masked token is not isolated: its activation stays clean, but its
    output still sees the spliced tokens before it, and the tokens after it see its clean
    activation. The mask decides what is replaced and what is averaged, not what attends to
    what; use the model's own ``attention_mask`` for that.

    ``mask=None`` and an all-True mask give the same report, number for number.

    Examples
    --------
    >>> import torch
    >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
    <torch._C.Generator object at ...>
    >>> model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 1))
    >>> x = torch.randn(512, 4)
    >>> batches = [(x[i:i + 128], model(x[i:i + 128]).detach()) for i in range(0, 512, 128)]
    >>> rep = patch_scores(model, "0", batches, interpretation=lambda h: 0.5 * h,
    ...                    loss_fn=lambda out, b: ((out - b[1]) ** 2).sum(-1), progress=False)
    >>> rep.loss_of("clean"), rep.loss_of("recon+residual")
    (0.0, 0.0)
    >>> bool(rep.loss_of("recon+gaussian") > rep.loss_of("recon"))   # noise is not the signal
    True

    Sequences: a (B, L, d) hooked output and one loss per position; position 0 left alone.

    >>> u = torch.randn(16, 8, 4)
    >>> seq = [(u[i:i + 8], model(u[i:i + 8]).detach()) for i in (0, 8)]
    >>> rep = patch_scores(model, "0", seq, interpretation=lambda h: 0.5 * h, exclude_positions=(0,),
    ...                    loss_fn=lambda out, b: ((out - b[1]) ** 2)[..., 0], progress=False)
    >>> rep.n_tokens, rep.n_excluded, rep.excluded          # 16 windows x 7 positions spliced
    (112, 16, 'positions (0,)')
    """
    import torch

    mod, name = resolve_module(model, module)
    interp = as_interpretation(interpretation)
    if not callable(loss_fn):
        raise InputError(f"`loss_fn` must be a callable (output, batch) -> losses; got {describe(loss_fn)}.")
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"`n_resamples` must be a positive integer; got {n_resamples!r}.")
    if convention not in ("pft", "saelens"):
        raise InputError(f"`convention` must be 'pft' or 'saelens'; got {convention!r}.")
    batches = _batch_list(batches, batch_size)
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    batches = [_to_device(b, device) for b in batches]
    gauss = pert = None
    bg_label = "not fitted: no noise rung was run"
    want = _requested_rungs(rungs, background)
    global_rungs = [r for r in want if r in _GLOBAL_RUNGS]
    noise = any(r in ("recon+gaussian", "recon+perturbative") for r in want)
    sanity_all = "recon+residual" in want
    vocab = _vocab_size(model)
    masks = _TokenMasks(mask, exclude_positions, len(batches))
    saelens = convention == "saelens"

    per_loss: dict[str, list] = {k: [None] * len(batches) for k in want}
    per_kl: dict[str, list] = {k: [None] * len(batches) for k in want}
    sanity_rows: list = []  # (clean, recon+residual) loss rows of the batches checked
    no_kl = ""
    bar = None
    if progress:
        from tqdm.auto import tqdm

        per_batch = sum(n_resamples if r in ("recon+gaussian", "recon+perturbative") else 1 for r in want)
        bar = tqdm(total=len(batches) * per_batch + (0 if sanity_all else 1), desc="pft patch", unit="fwd")

    def tick(n=1):
        if bar is not None:
            bar.update(n)

    def splicer(keep, every=False):
        """Transform builder: the tokens that count become ``new_rows(x_counted, x)``; masked ones
        keep their clean values (all tokens are replaced when ``every``)."""

        def make(new_rows):
            def f(x):
                if keep is None or every:
                    return new_rows(x, x)
                if not bool(keep.any()):
                    return x
                out = x.clone()
                out[keep] = new_rows(x[keep], x)
                return out

            return f

        return make

    def const(v, keep):
        t = torch.as_tensor(v)
        return splicer(keep, every=saelens)(lambda xk, x: t.to(dtype=xk.dtype, device=xk.device).expand_as(xk))

    def recon_plus(keep, start, extra=None, sampler=None, cached=None):
        def g(xk, x):
            xh = cached if cached is not None else _checked_recon(interp, x, start, name, keep)
            if isinstance(extra, str):
                return xh + (xk - xh)
            if extra is not None:
                return xh + torch.as_tensor(extra).to(dtype=xk.dtype, device=xk.device)
            if sampler is not None:
                z = sampler(xk.shape[0])
                z = z if isinstance(z, torch.Tensor) else torch.from_numpy(z)
                return xh + z.to(dtype=xk.dtype, device=xk.device)
            return xh

        return splicer(keep)(g)

    resume_at = resume_layer(model, name)

    def spliced(b, transform, x=None, lead=None):
        """The model's output on batch ``b`` with the module's output replaced by
        ``transform(x)``: the whole forward with a hook, or, given the clean output ``x``
        (flat rows) of a model that can be entered there (``resume_at``), only the rest of it."""
        if x is None:
            return hook.run(model, b, transform=transform)
        new = transform(x)
        return hook.resume(model, new.reshape(*lead, new.shape[-1]), resume_at)

    def run_once(b, transform, keep_lead, lp_clean, what, x=None, lead=None):
        out = spliced(b, transform, x, lead)
        lr = _rows(loss_fn(out, b), what, keep_lead)
        kr = _kl_rows(lp_clean, out, logits, what, keep_lead, vocab)
        tick()
        return lr, kr

    tiling = {"ok": bool(batch_resamples) and n_resamples > 1}

    def run_resampled(b, lead, make_transform, keep_lead, lp_clean, what, rng, x=None, copy_bytes=0):
        """``n_resamples`` draws of a noise rung, averaged per row: in forwards on the batch
        repeated along its first axis (as many copies as :func:`_tile_group` allows for a copy of
        ``copy_bytes``) when the model allows, else one forward per draw. Draws are made in the
        same order either way."""
        n = int(n_resamples)
        group = _tile_group(n, copy_bytes, device) if tiling["ok"] else 1
        acc_l = acc_k = None
        done = 0
        while done < n:
            k = min(group, n - done)
            if k > 1:
                state = rng.bit_generator.state  # a failed try must not use up the draws
                B = int(lead[0]) if lead else 0
                lead_k = (k * B, *lead[1:]) if lead else lead

                def run_tiled(bt, f):
                    return spliced(bt, f, None if x is None else x.repeat(k, 1), lead_k)

                res = _run_tiled(run_tiled, b, lead, k, make_transform, loss_fn, logits, vocab, keep_lead, lp_clean,
                                 what)
                if res is None:  # the model or loss does not keep copies apart: one forward per draw
                    tiling["ok"] = False
                    rng.bit_generator.state = state
                    group = 1
                    continue
                tick(k)
                lr, kr = res
            else:
                lr, kr = run_once(b, make_transform(), keep_lead, lp_clean, what, x, lead)
            acc_l = lr if acc_l is None else (acc_l[0] + lr[0], lr[1])
            if kr is not None:
                acc_k = kr if acc_k is None else (acc_k[0] + kr[0], kr[1])
            done += k
        return (acc_l[0] / n, acc_l[1]), (None if acc_k is None else (acc_k[0] / n, acc_k[1]))

    try:
        with torch.no_grad(), hooked(mod, name, width=interp.d_in) as hook:
            # Pass 1, per batch: the clean forward (capturing the module's output), then the rungs
            # that need nothing from other batches, while the clean log-probabilities are at hand.
            leads, keeps, token_masks, counts, starts, copy_bytes = [], [], [], [], [0], []
            R_parts, xh_store, x_store = [], [], []
            sum_x = moments_r = first_r = None
            varies = False  # whether r = x − x̂ differs between two tokens that count
            rows_needed = noise and _background_needs_rows(background)
            clean_logits: list = []
            cache_bytes = x_bytes = 0
            d = None
            for i, b in enumerate(batches):
                cap: list = []
                out = hook.run(model, b, capture=cap)
                xb = cap[0]
                lead = hook.shape
                if d is None:
                    d = int(xb.shape[1])
                elif xb.shape[1] != d:
                    raise InputError(f"the hooked output has width {xb.shape[1]} on batch {i} but {d} on batch 0.")
                tm = masks.for_batch(i, b, lead)
                tm = None if tm is None else tm.to(device)
                keep = None if tm is None else tm.reshape(-1)
                leads.append(lead)
                token_masks.append(tm)
                keeps.append(keep)
                starts.append(starts[-1] + int(xb.shape[0]))
                counts.append(int(xb.shape[0]) if keep is None else int(keep.sum()))
                xk = xb if keep is None else xb[keep]
                if not torch.all(torch.isfinite(xk)):
                    raise PatchError(f"`module` {name!r} outputs NaN/inf on batch {i} of the clean model; check the inputs.")
                if interp.n_tokens is not None and interp.n_tokens < starts[-1]:
                    raise InputError(
                        f"the precomputed `interpretation` has {interp.n_tokens} rows but `batches` give at least "
                        f"{starts[-1]} tokens at the hooked module; pass one reconstruction per token"
                        + (" (masked tokens included: their rows are ignored)." if masks.active else ".")
                    )
                per_loss["clean"][i] = _rows(loss_fn(out, b), "clean", tm)
                tick()
                lg = _logits_of(out, logits, vocab)
                lg_bytes = 0 if lg is None else lg.numel() * lg.element_size()
                copy_bytes.append(max(xb.numel() * xb.element_size(), lg_bytes))
                lp_clean = None
                if lg is None:
                    no_kl = no_kl or _no_logits_reason(out, logits, vocab)
                else:
                    if not torch.all(torch.isfinite(lg)):
                        raise PatchError("the clean model's logits contain NaN/inf; check the inputs.")
                    lp_clean = _Clean(lg)
                    # KL(p_clean ‖ p_clean) = 0 exactly; only which entries count is needed
                    zero_kl = torch.zeros(lg.shape[:-1], dtype=torch.float64, device=lg.device)
                    per_kl["clean"][i] = _rows(zero_kl, "clean", tm, label="KL", check=False)
                    if global_rungs:
                        nbytes = lg.numel() * lg.element_size()
                        cache_bytes += nbytes
                        clean_logits.append(lg.detach() if cache_bytes <= _CLEAN_LOGITS_BYTES else None)
                del out
                start = starts[i]
                xh = _checked_recon(interp, xb, start, name, keep)
                # the patched rungs run the model from the module on, from x, where that is exact
                xr = xb if resume_at is not None and token_batch(b, lead) else None
                if global_rungs:
                    xk64 = xk.double()
                    if xk64.shape[0]:
                        rb = xk64 - xh.double()
                        sum_x = xk64.sum(dim=0) if sum_x is None else sum_x + xk64.sum(dim=0)
                        # the residual's moments, one batch at a time (O(d²) memory): its mean and
                        # the default Gaussian background need nothing else
                        mb = Moments.from_array(rb, name="x − x̂")
                        moments_r = mb if moments_r is None else moments_r.merge(mb)
                        if first_r is None:
                            first_r = rb[:1]
                        varies = varies or bool((rb != first_r).any())
                        if rows_needed:
                            R_parts.append(rb.cpu())
                        del rb
                    del xk64
                    xh_store.append(xh)  # reused by every pass-2 rung of this batch (x is the same)
                    if xr is not None:
                        x_bytes += xr.numel() * xr.element_size()
                    x_store.append(xr if x_bytes <= _RESUME_BYTES else None)
                local = {
                    "zero_ablation": lambda: const(np.zeros(d), keep),
                    "recon": lambda: recon_plus(keep, start, cached=xh),
                    "recon+residual": lambda: recon_plus(keep, start, extra="residual", cached=xh),
                }
                for rung in want:
                    if rung in local:
                        # the sanity rung runs the whole model: it checks that the splice reaches it
                        xs = None if rung == "recon+residual" else xr
                        lr, kr = run_once(b, local[rung](), tm, lp_clean, rung, xs, lead)
                        per_loss[rung][i], per_kl[rung][i] = lr, kr
                if not sanity_all and i == 0:
                    lr, _ = run_once(b, local["recon+residual"](), tm, None, "recon+residual")
                    sanity_rows.append((per_loss["clean"][0], lr))
                del xh, xb, xk, xr, lp_clean
            masks.finish()
            n_all = starts[-1]
            n_tokens = int(sum(counts))
            if interp.n_tokens is not None and interp.n_tokens != n_all:
                raise InputError(
                    f"the precomputed `interpretation` has {interp.n_tokens} rows but `batches` give {n_all} tokens "
                    "at the hooked module; pass one reconstruction per token"
                    + (" (masked tokens included: their rows are ignored)." if masks.active else ".")
                )
            if masks.active and n_tokens == 0:
                raise InputError(
                    f"`mask`/`exclude_positions` ({masks.description}) exclude every one of the {n_all} tokens of "
                    "`batches`; True marks a token that counts — check the mask's polarity."
                )
            if n_tokens < 2:
                raise InputError(
                    f"`batches` give {n_tokens} token{'s' if n_tokens != 1 else ''} "
                    f"{'that count ' if masks.active else ''}at the hooked module; a background needs at least 2."
                )

            if global_rungs:
                R = torch.cat(R_parts).numpy() if rows_needed else None
                del R_parts
                mean_x = sum_x / n_tokens
                mean_r = torch.as_tensor(moments_r.mean, device=sum_x.device)
                if noise:
                    if not varies:
                        raise InputError(
                            "the residual x − x̂ is constant over every token of `batches` (an exact interpretation, "
                            "or one off by a constant): there is no noise to model; compare rungs with a plain "
                            "forward instead."
                        )
                    gauss, pert, bg_label = _fit_background(background, moments_r, R, int(seed), device)
                    if gauss.n_features_in_ != d:
                        raise InputError(
                            f"`background` was fitted on {gauss.n_features_in_} features but the hooked output has {d}."
                        )
                    if "recon+perturbative" in want and pert is None:
                        raise InputError(
                            "`rungs` asks for 'recon+perturbative' but `background` is Gaussian; pass "
                            "background='perturbative' (or a PerturbativeBackground)."
                        )
                    draws = _GaussianDraws(gauss, device) if "recon+gaussian" in want else None
                del R
                # Pass 2, per batch: the rungs that need every batch's tokens (means, backgrounds).
                for i, b in enumerate(batches):
                    keep, tm, start = keeps[i], token_masks[i], starts[i]
                    rng = np.random.default_rng([int(seed), i, 0x9A7C])
                    lp_clean = None
                    if not no_kl:
                        lg = clean_logits[i] if i < len(clean_logits) else None
                        if lg is None:  # over the cache budget: the clean logits are computed again
                            out = hook.run(model, b)
                            lg = _logits_of(out, logits, vocab)
                            del out
                        lp_clean = _Clean(lg)
                        clean_logits[i] = None
                    xh, xr, lead = xh_store[i], x_store[i], leads[i]
                    makers = {
                        "mean_ablation": lambda: const(mean_x, keep),
                        "recon+mean": lambda: recon_plus(keep, start, extra=mean_r, cached=xh),
                        "recon+gaussian": lambda: recon_plus(
                            keep, start, sampler=lambda k: draws(k, rng), cached=xh),
                        "recon+perturbative": lambda: recon_plus(
                            keep, start, sampler=lambda k: sample_perturbative(pert, k, seed=rng), cached=xh),
                    }
                    for rung in global_rungs:
                        if rung in ("recon+gaussian", "recon+perturbative"):
                            lr, kr = run_resampled(b, lead, makers[rung], tm, lp_clean, rung, rng, xr, copy_bytes[i])
                        else:
                            lr, kr = run_once(b, makers[rung](), tm, lp_clean, rung, xr, lead)
                        per_loss[rung][i], per_kl[rung][i] = lr, kr
                    del lp_clean, xr
                    xh_store[i] = x_store[i] = None
    finally:
        if bar is not None:
            bar.close()

    return _assemble(
        want, per_loss, per_kl, sanity_rows, no_kl=no_kl, check_rtol=check_rtol, name=name, n_tokens=n_tokens,
        n_all=n_all, d=d, n_resamples=n_resamples, seed=seed, bg_label=bg_label, pert=pert, loss_name=loss_name,
        excluded=masks.description, convention=convention,
    )


def _assemble(want, per_loss, per_kl, sanity_rows, *, no_kl, check_rtol, name, n_tokens, n_all, d, n_resamples,
              seed, bg_label, pert, loss_name, excluded, convention) -> PatchReport:
    """The report from each rung's per-batch ``(row sums, row counts)`` of loss and KL."""

    def joined(parts):
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    loss_rows = {k: joined(v) for k, v in per_loss.items()}
    n_all_rows = len(loss_rows["clean"][0])
    for k, (v, _) in loss_rows.items():
        if len(v) != n_all_rows:
            raise InputError(f"`loss_fn` returned {len(v)} rows for rung {k!r} but {n_all_rows} for the clean run.")
    has_kl = not no_kl and all(all(p is not None for p in per_kl[k]) for k in want)
    kl_rows = {k: joined(per_kl[k]) for k in want} if has_kl else {}
    # Rows with no entry that counts (masked throughout) are left out of every average.
    n_w = loss_rows["clean"][1]
    live = n_w > 0
    if not np.any(live):
        raise InputError(
            f"no entry of `loss_fn`'s loss counts: every row's scored positions are masked ({excluded}); "
            "see patch_scores' Notes for how loss entries are matched to the mask."
        )
    loss_rows = {k: v[0][live] for k, v in loss_rows.items()}
    n_w = n_w[live]
    if has_kl:
        k_w = kl_rows["clean"][1]
        k_live = k_w > 0
        kl_rows = {k: v[0][k_live] for k, v in kl_rows.items()}
        k_w = k_w[k_live]
        has_kl = bool(np.any(k_live))
        if not has_kl:
            no_kl = "every KL entry is masked"
    n_rows = int(np.sum(live))

    L_clean = _ratio(loss_rows["clean"], n_w)[0]
    if sanity_rows:  # recon+residual was not asked for: checked on the first batch only
        (cs, cw), (ss, _) = sanity_rows[0]
        ok = cw > 0
        delta = float(np.sum(ss[ok]) / np.sum(cw[ok]) - np.sum(cs[ok]) / np.sum(cw[ok])) if np.any(ok) else 0.0
        ref = float(np.sum(cs[ok]) / np.sum(cw[ok])) if np.any(ok) else L_clean
        where = " (first batch)"
    else:
        delta = _ratio(loss_rows["recon+residual"], n_w)[0] - L_clean
        ref, where = L_clean, ""
    tol = float(check_rtol) * (abs(ref) + 1.0)
    if not abs(delta) <= tol:
        raise PatchError(
            f"sanity check failed{where}: splicing x̂ + (x − x̂) back into {name!r} gives mean loss "
            f"{ref + delta:.6g}, but the clean model gives {ref:.6g} (difference {delta:.3g} > {tol:.3g}). "
            "The model is not deterministic (call model.eval() to turn off dropout) or the hooked module's "
            "output is not what reaches the rest of the model."
        )
    why: dict[str, str] = {}

    def score(field_, num_rungs, fn):
        missing = [r for r in num_rungs if r not in want]
        if missing:
            why[field_] = f"rung{'s' if len(missing) > 1 else ''} {', '.join(missing)} not run (see `rungs`)"
            return math.nan, math.nan
        v, se = fn(*(loss_rows[r] for r in num_rungs))
        if math.isnan(v):
            why[field_] = "its denominator is 0 (the rungs it compares give the same loss)"
        return v, se

    ce, ce_se = score("ce_loss_recovered", ("clean", "zero_ablation", "recon"), lambda c, z, rc: _ratio(z - rc, z - c))
    ma, ma_se = score("mean_ablation_recovered", ("clean", "mean_ablation", "recon"), lambda c, m, rc: _ratio(m - rc, m - c))
    gr, gr_se = score("gaussian_recovered", ("clean", "recon", "recon+gaussian"), lambda c, rc, g: _ratio(rc - g, rc - c))
    if pert is not None:
        pr, pr_se = score("perturbative_recovered", ("clean", "recon", "recon+perturbative"),
                          lambda c, rc, p: _ratio(rc - p, rc - c))
    else:
        pr = pr_se = math.nan
        why["perturbative_recovered"] = "no perturbative background: pass background='perturbative' to run its rung"
    for f_ in ("ce_loss_recovered", "mean_ablation_recovered", "gaussian_recovered", "perturbative_recovered"):
        if f_ in why:
            why[f_ + "_se"] = why[f_]
    kl_score = math.nan
    if has_kl:
        if "zero_ablation" in want and "recon" in want:
            kz = _ratio(kl_rows["zero_ablation"], k_w)[0]
            kl_score = (kz - _ratio(kl_rows["recon"], k_w)[0]) / kz if kz > 0 else math.nan
            if not kz > 0:
                why["kl_score"] = "the zero-ablation KL is 0"
        else:
            why["kl_score"] = "rungs zero_ablation and recon are needed (see `rungs`)"
    else:
        why["kl_score"] = why["kl"] = why["kl_se"] = no_kl
    nan = np.full(len(want), math.nan)
    loss_stats = [_ratio(loss_rows[k], n_w) for k in want]
    kl_stats = [_ratio(kl_rows[k], k_w) for k in want] if has_kl else None
    return PatchReport(
        rungs=tuple(want),
        loss=np.array([v for v, _ in loss_stats]),
        loss_se=np.array([e for _, e in loss_stats]),
        kl=np.array([v for v, _ in kl_stats]) if has_kl else nan,
        kl_se=np.array([e for _, e in kl_stats]) if has_kl else nan.copy(),
        ce_loss_recovered=ce,
        ce_loss_recovered_se=ce_se,
        mean_ablation_recovered=ma,
        mean_ablation_recovered_se=ma_se,
        gaussian_recovered=gr,
        gaussian_recovered_se=gr_se,
        perturbative_recovered=pr,
        perturbative_recovered_se=pr_se,
        kl_score=kl_score,
        sanity_delta=delta,
        n_rows=n_rows,
        n_tokens=n_tokens,
        d=d,
        n_resamples=int(n_resamples),
        seed=int(seed),
        module=name,
        background=bg_label,
        loss_name=loss_name,
        n_excluded=n_all - n_tokens,
        excluded=excluded if n_all > n_tokens else "",
        convention=convention,
        nan_reasons=why,
    )


# ---------------------------------------------------------------------- helpers of the rungs
#: Rungs that need every batch's tokens first (a mean or a background fitted on all of them).
_GLOBAL_RUNGS = ("mean_ablation", "recon+mean", "recon+gaussian", "recon+perturbative")
#: Clean logits kept from pass 1 for the KL of the pass-2 rungs; beyond this the clean forward
#: is run again in pass 2 instead.
_CLEAN_LOGITS_BYTES = 1 << 30
#: The most bytes of output (logits, or the hooked activations) of one forward on a batch repeated
#: for several noise draws (see _tile_group): on a CPU, and on an accelerator.
_TILE_BYTES_CPU = 8 << 20
_TILE_BYTES = 1 << 30
#: Clean module outputs kept from pass 1 for the pass-2 rungs of a model that can be entered at
#: the module (see pft.residual._patch_resume); beyond this those batches run the whole model.
_RESUME_BYTES = 1 << 30


def _requested_rungs(rungs: Any, background: Any) -> list[str]:
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
    # the clean rung is the pass that captures the module's output: always run
    return [k for k in RUNGS if k == "clean" or k in names]


def _batch_list(batches: Any, batch_size: Any) -> list:
    """``batches`` as a list; with ``batch_size``, one tensor/array (or a Mapping or tuple of them
    sharing a first axis) is cut into batches of that many rows."""
    import torch

    if batch_size is not None:
        if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
            raise InputError(f"`batch_size` must be a positive integer; got {batch_size!r}.")
        if isinstance(batches, list):
            raise InputError(
                "`batch_size` cuts one tensor (or a Mapping/tuple of tensors) into batches; `batches` is already a "
                "list of batches: pass one or the other."
            )
        leaves: list = []

        def walk(o):
            if isinstance(o, np.ndarray):
                o = tensor_from_numpy(o)
            if isinstance(o, torch.Tensor):
                leaves.append(o.shape[0] if o.ndim else None)
                return o
            if isinstance(o, Mapping):
                return {k: walk(v) for k, v in o.items()}
            if isinstance(o, tuple):
                return tuple(walk(v) for v in o)
            return o

        whole = walk(batches)
        sizes = {n for n in leaves if n is not None}
        if len(sizes) != 1:
            raise InputError(
                f"with `batch_size`, `batches` must be one tensor or array (or a Mapping/tuple of them) whose tensors "
                f"share their first axis; got {describe(batches)} with first axes {sorted(sizes) or 'none'}."
            )
        n = sizes.pop()

        def cut(o, lo, hi):
            if isinstance(o, torch.Tensor):
                return o[lo:hi] if o.ndim else o
            if isinstance(o, Mapping):
                return {k: cut(v, lo, hi) for k, v in o.items()}
            if isinstance(o, tuple):
                return tuple(cut(v, lo, hi) for v in o)
            return o

        return [cut(whole, lo, min(n, lo + int(batch_size))) for lo in range(0, n, int(batch_size))]
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


class _Untileable(Exception):
    """The hooked output of a repeated batch does not hold the copies along its first axis."""


def _tile(obj: Any, n: int, rows: int):
    """``obj`` with every tensor whose first axis has ``rows`` entries repeated ``n`` times along it
    (copy 0 first); None when some tensor has another first axis (it cannot be told apart)."""
    import torch

    if isinstance(obj, torch.Tensor):
        if obj.ndim == 0 or obj.shape[0] != rows:
            return None
        return obj.repeat(n, *([1] * (obj.ndim - 1)))
    if isinstance(obj, Mapping):
        out = {k: _tile(v, n, rows) for k, v in obj.items()}
        return None if any(out[k] is None and obj[k] is not None for k in obj) else out
    if isinstance(obj, (tuple, list)):
        vals = [_tile(v, n, rows) for v in obj]
        if any(t is None and v is not None for t, v in zip(vals, obj)):
            return None
        return type(obj)(vals)
    if obj is None or isinstance(obj, (int, float, str, bool)):
        return obj
    return None


def _run_tiled(run, b, lead, n, make_transform, loss_fn, logits, vocab, keep_lead, lp_clean, what):
    """One forward on ``n`` stacked copies of batch ``b``, each spliced by its own transform:
    per-row ``(loss, KL)`` as ``(sums, counts)`` with the sums added over the copies, or None
    when the model or the loss does not keep the copies apart along the first axis (the caller
    then runs one forward per draw). ``run(batch, transform)`` is the spliced forward."""
    import torch

    B = int(lead[0]) if lead else 0
    bt = _tile(b, n, B) if B else None
    if bt is None:
        return None
    rows = int(np.prod(lead))
    fs = [make_transform() for _ in range(n)]  # in draw order: the same noise as one forward per draw

    def f(x):
        if x.shape[0] != n * rows:
            raise _Untileable
        return torch.cat([fj(x[j * rows:(j + 1) * rows]) for j, fj in enumerate(fs)])

    try:
        out = run(bt, f)
    except _Untileable:
        return None
    loss = loss_fn(out, bt)
    if not isinstance(loss, torch.Tensor) or loss.ndim == 0 or loss.shape[0] != n * B:
        return None
    acc_l = acc_k = None
    lg = _logits_of(out, logits, vocab) if lp_clean is not None else None
    if lp_clean is not None and (lg is None or lg.shape[0] != n * B):
        return None
    for j in range(n):
        lr = _rows(loss[j * B:(j + 1) * B], what, keep_lead)
        acc_l = lr if acc_l is None else (acc_l[0] + lr[0], lr[1])
        if lg is not None:
            kr = _kl_rows_of(lp_clean, lg[j * B:(j + 1) * B], what, keep_lead)
            acc_k = kr if acc_k is None else (acc_k[0] + kr[0], kr[1])
    return acc_l, acc_k


def _tile_group(n: int, copy_bytes: int, device: Any) -> int:
    """How many of ``n`` draws share one forward on the repeated batch, for a batch whose output
    (logits, or the hooked activations) takes ``copy_bytes``: as many as fit in the tiled-batch
    budget of the device (at least 1). On a CPU the arithmetic is the same either way and larger
    tensors only cost memory traffic, so copies are stacked only while they are small (saving the
    per-forward overhead); on an accelerator a larger batch is fewer, larger kernels, up to a
    budget that keeps the tiled logits and their KL temporaries in memory."""
    budget = _TILE_BYTES_CPU if getattr(device, "type", "cpu") == "cpu" else _TILE_BYTES
    return max(1, min(int(n), budget // max(int(copy_bytes), 1)))


def _checked_recon(interp, x, start: int, name: str, keep: Any = None):
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
            f"`interpretation` returned {bad} NaN/inf value{'s' if bad != 1 else ''} on the output of {name!r} "
            f"(tokens {start}..{start + x.shape[0] - 1}); fix the interpretation (or its input scaling)."
        )
    return xh
