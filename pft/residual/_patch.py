"""patch_scores(): what the model does when a module's output is replaced by the interpretation
plus each candidate model of its residual."""

from __future__ import annotations

import copy
import difflib
import math
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from pft._validate import describe
from pft.errors import InputError, PftError
from pft.numeric import GaussianBackground, PerturbativeBackground
from pft.residual._interpretation import as_interpretation
from pft.residual._patch_report import RUNGS, PatchReport
from pft.residual._sampling import sample_perturbative

__all__ = ["patch_scores", "PatchError", "resolve_module", "forward", "hooked"]


class PatchError(PftError, RuntimeError):
    """A patched run went wrong in a way that is not a malformed argument (a failed sanity check,
    a non-finite loss)."""


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
    ``self.transform`` (``None``: observe only). The hook is removed on exit, error or not."""

    def __init__(self, module: Any, name: str) -> None:
        self.module = module
        self.name = name
        self.transform: Callable | None = None
        self.capture: list | None = None
        self.stop = False
        self.calls = 0
        self.handle = None

    def _hook(self, mod, inputs, output):
        self.calls += 1
        if self.calls > 1:
            raise InputError(
                f"`module` {self.name!r} was called {self.calls} times in one forward pass; pft patches a "
                "module called once per forward (hook a module that is not shared or reused)."
            )
        x, rebuild = _primary(output)
        shape = x.shape
        flat = x.reshape(-1, shape[-1]) if x.ndim != 2 else x
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
        try:
            out = forward(model, batch)
        except _Stop:
            pass
        if self.calls == 0:
            raise InputError(
                f"`module` {self.name!r} was not called during the model's forward pass; hook a module on the "
                "path from these inputs to the output (print(model) lists them)."
            )
        return out

    def __enter__(self) -> "hooked":
        self.handle = self.module.register_forward_hook(self._hook)
        return self

    def __exit__(self, *exc) -> None:
        if self.handle is not None:
            self.handle.remove()
            self.handle = None


# ---------------------------------------------------------------------- statistics
def _rows(loss: Any, what: str):
    """Per-row losses from a scalar, (B,) or (B, ...) tensor (trailing axes averaged)."""
    import torch

    if not isinstance(loss, torch.Tensor):
        try:
            loss = torch.as_tensor(loss, dtype=torch.float64)
        except Exception:
            raise InputError(f"`loss_fn` must return a tensor of losses; got {describe(loss)}.") from None
    loss = loss.detach().to(torch.float64)
    if loss.ndim == 0:
        loss = loss.reshape(1)
    elif loss.ndim > 1:
        loss = loss.reshape(loss.shape[0], -1).mean(dim=1)
    out = loss.cpu().numpy()
    if not np.all(np.isfinite(out)):
        bad = int(np.sum(~np.isfinite(out)))
        raise PatchError(
            f"the loss is non-finite on {bad} row{'s' if bad != 1 else ''} in the {what} run; "
            + (
                "the unpatched model already produces NaN/inf — check the inputs and the model."
                if what == "clean"
                else "the patched model overflows; check the interpretation's scale (or the background)."
            )
        )
    return out


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


def _logits_of(out: Any, logits: Any):
    import torch

    if logits is None or logits is False:
        return None
    if callable(logits):
        return logits(out)
    if logits == "auto":
        lg = getattr(out, "logits", None)
        if lg is None and isinstance(out, Mapping):
            lg = out.get("logits")
        return lg if isinstance(lg, torch.Tensor) else None
    raise InputError(f"`logits` must be 'auto', None or a callable output -> logits; got {logits!r}.")


def _kl_rows(logp_clean, out, logits):
    import torch

    lg = _logits_of(out, logits)
    if lg is None or logp_clean is None:
        return None
    logp = torch.log_softmax(lg.detach().to(torch.float64), dim=-1)
    kl = (logp_clean.exp() * (logp_clean - logp)).sum(dim=-1)
    kl = kl.reshape(kl.shape[0], -1).mean(dim=1) if kl.ndim > 1 else kl.reshape(-1)
    return kl.cpu().numpy()


# ---------------------------------------------------------------------- backgrounds
def _fit_background(background: Any, r: np.ndarray, seed: int):
    """``(gaussian, perturbative or None, label)``."""
    if background is None or background == "gaussian":
        return GaussianBackground(shrinkage="ledoit-wolf").fit(r), None, "Gaussian (Ledoit–Wolf) fitted on these residuals"
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

    Returns
    -------
    PatchReport

    Notes
    -----
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
    """
    import torch

    mod, name = resolve_module(model, module)
    interp = as_interpretation(interpretation)
    if not callable(loss_fn):
        raise InputError(f"`loss_fn` must be a callable (output, batch) -> losses; got {describe(loss_fn)}.")
    if not isinstance(n_resamples, (int, np.integer)) or n_resamples < 1:
        raise InputError(f"`n_resamples` must be a positive integer; got {n_resamples!r}.")
    if isinstance(batches, (torch.Tensor, np.ndarray, Mapping)):
        raise InputError(
            f"`batches` must be an iterable of batches; got a single {describe(batches)}. Wrap it: [batch]."
        )
    try:
        batches = list(batches)
    except TypeError:
        raise InputError(f"`batches` must be an iterable of batches; got {describe(batches)}.") from None
    if not batches:
        raise InputError("`batches` is empty; pass at least one batch.")
    if device is None:
        p = next(iter(model.parameters()), None)
        device = p.device if p is not None else torch.device("cpu")
    device = torch.device(device)
    batches = [_to_device(b, device) for b in batches]

    bar = None
    with torch.no_grad(), hooked(mod, name) as hook:
        # Pass 1: the module's output on every batch (the forward stops there).
        xs = []
        for b in batches:
            cap: list = []
            hook.run(model, b, capture=cap, stop=True)
            xs.append(cap[0])
        d = int(xs[0].shape[1])
        for i, xb in enumerate(xs):
            if xb.shape[1] != d:
                raise InputError(f"the hooked output has width {xb.shape[1]} on batch {i} but {d} on batch 0.")
            if not torch.all(torch.isfinite(xb)):
                raise PatchError(f"`module` {name!r} outputs NaN/inf on batch {i} of the clean model; check the inputs.")
        starts = np.concatenate([[0], np.cumsum([x.shape[0] for x in xs])]).astype(int)
        n_tokens = int(starts[-1])
        if interp.n_tokens is not None and interp.n_tokens != n_tokens:
            raise InputError(
                f"the precomputed `interpretation` has {interp.n_tokens} rows but `batches` give {n_tokens} tokens "
                "at the hooked module; pass one reconstruction per token."
            )
        X = np.empty((n_tokens, d))
        R = np.empty((n_tokens, d))
        for i, xb in enumerate(xs):
            xh = _checked_recon(interp, xb, int(starts[i]), name)
            X[starts[i] : starts[i + 1]] = xb.double().cpu().numpy()
            R[starts[i] : starts[i + 1]] = (xb.double() - xh.double()).cpu().numpy()
        del xs
        mean_x = X.mean(axis=0)
        mean_r = R.mean(axis=0)
        if n_tokens < 2:
            raise InputError(f"`batches` give {n_tokens} token at the hooked module; a background needs at least 2.")
        if not np.any(R - mean_r):
            raise InputError(
                "the residual x − x̂ is constant over every token of `batches` (an exact interpretation, or "
                "one off by a constant): there is no noise to model; compare rungs with a plain forward instead."
            )
        gauss, pert, bg_label = _fit_background(background, R, int(seed))
        if gauss.n_features_in_ != d:
            raise InputError(f"`background` was fitted on {gauss.n_features_in_} features but the hooked output has {d}.")
        del X, R

        rungs = [k for k in RUNGS if k != "recon+perturbative" or pert is not None]
        per_rung_loss: dict[str, list] = {k: [] for k in rungs}
        per_rung_kl: dict[str, list] = {k: [] for k in rungs}
        if progress:
            from tqdm.auto import tqdm

            n_fwd = len(batches) * (len(rungs) + (n_resamples - 1) * (1 + (pert is not None)))
            bar = tqdm(total=n_fwd, desc="pft patch", unit="fwd")
        try:
            for i, b in enumerate(batches):
                start = int(starts[i])
                rng = np.random.default_rng([int(seed), i, 0x9A7C])

                def const(v):
                    t = torch.as_tensor(v)

                    def f(x):
                        return t.to(dtype=x.dtype, device=x.device).expand_as(x)

                    return f

                def recon_plus(extra=None, sampler=None):
                    def f(x):
                        xh = _checked_recon(interp, x, start, name)
                        if isinstance(extra, str):
                            return xh + (x - xh)
                        if extra is not None:
                            return xh + torch.as_tensor(extra).to(dtype=x.dtype, device=x.device)
                        if sampler is not None:
                            z = torch.from_numpy(sampler(x.shape[0]))
                            return xh + z.to(dtype=x.dtype, device=x.device)
                        return xh

                    return f

                transforms: dict[str, Any] = {
                    "clean": None,
                    "zero_ablation": const(np.zeros(d)),
                    "mean_ablation": const(mean_x),
                    "recon": recon_plus(),
                    "recon+mean": recon_plus(extra=mean_r),
                    "recon+gaussian": recon_plus(sampler=lambda k: gauss.sample(k, seed=rng)),
                    "recon+perturbative": recon_plus(sampler=lambda k: sample_perturbative(pert, k, seed=rng)),
                    "recon+residual": recon_plus(extra="residual"),
                }
                logp_clean = None
                for rung in rungs:
                    reps = n_resamples if rung in ("recon+gaussian", "recon+perturbative") else 1
                    acc_l = acc_k = None
                    for _ in range(reps):
                        out = hook.run(model, b, transform=transforms[rung])
                        lr = _rows(loss_fn(out, b), rung)
                        if rung == "clean":
                            lg = _logits_of(out, logits)
                            if lg is not None:
                                if not torch.all(torch.isfinite(lg)):
                                    raise PatchError("the clean model's logits contain NaN/inf; check the inputs.")
                                logp_clean = torch.log_softmax(lg.detach().to(torch.float64), dim=-1)
                        kr = _kl_rows(logp_clean, out, logits)
                        acc_l = lr if acc_l is None else acc_l + lr
                        if kr is not None:
                            acc_k = kr if acc_k is None else acc_k + kr
                        if bar is not None:
                            bar.update(1)
                    per_rung_loss[rung].append(acc_l / reps)
                    if acc_k is not None:
                        per_rung_kl[rung].append(acc_k / reps)
        finally:
            if bar is not None:
                bar.close()

    loss_rows = {k: np.concatenate(v) for k, v in per_rung_loss.items()}
    n_rows = len(loss_rows["clean"])
    for k, v in loss_rows.items():
        if len(v) != n_rows:
            raise InputError(f"`loss_fn` returned {len(v)} rows for rung {k!r} but {n_rows} for the clean run.")
    has_kl = all(len(per_rung_kl[k]) == len(batches) for k in rungs)
    kl_rows = {k: np.concatenate(per_rung_kl[k]) for k in rungs} if has_kl else {}

    def se(v):
        return float(np.std(v, ddof=1) / math.sqrt(len(v))) if len(v) > 1 else math.nan

    L_clean = float(np.mean(loss_rows["clean"]))
    delta = float(np.mean(loss_rows["recon+residual"]) - L_clean)
    tol = float(check_rtol) * (abs(L_clean) + 1.0)
    if not abs(delta) <= tol:
        raise PatchError(
            f"sanity check failed: splicing x̂ + (x − x̂) back into {name!r} gives mean loss "
            f"{L_clean + delta:.6g}, but the clean model gives {L_clean:.6g} (difference {delta:.3g} > {tol:.3g}). "
            "The model is not deterministic (call model.eval() to turn off dropout) or the hooked module's "
            "output is not what reaches the rest of the model."
        )
    c, z, m, rc = (loss_rows[k] for k in ("clean", "zero_ablation", "mean_ablation", "recon"))
    ce, ce_se = _ratio(z - rc, z - c)
    ma, ma_se = _ratio(m - rc, m - c)
    gr, gr_se = _ratio(rc - loss_rows["recon+gaussian"], rc - c)
    if pert is not None:
        pr, pr_se = _ratio(rc - loss_rows["recon+perturbative"], rc - c)
    else:
        pr = pr_se = math.nan
    kl_score = math.nan
    if has_kl:
        kz = float(np.mean(kl_rows["zero_ablation"]))
        kl_score = (kz - float(np.mean(kl_rows["recon"]))) / kz if kz > 0 else math.nan
    nan = np.full(len(rungs), math.nan)
    return PatchReport(
        rungs=tuple(rungs),
        loss=np.array([np.mean(loss_rows[k]) for k in rungs]),
        loss_se=np.array([se(loss_rows[k]) for k in rungs]),
        kl=np.array([np.mean(kl_rows[k]) for k in rungs]) if has_kl else nan,
        kl_se=np.array([se(kl_rows[k]) for k in rungs]) if has_kl else nan.copy(),
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
        n_rows=int(n_rows),
        n_tokens=n_tokens,
        d=d,
        n_resamples=int(n_resamples),
        seed=int(seed),
        module=name,
        background=bg_label,
        loss_name=loss_name,
    )


def _checked_recon(interp, x, start: int, name: str):
    import torch

    xh = interp(x, start=start)
    if not torch.all(torch.isfinite(xh)):
        bad = int((~torch.isfinite(xh)).sum())
        raise InputError(
            f"`interpretation` returned {bad} NaN/inf value{'s' if bad != 1 else ''} on the output of {name!r} "
            f"(tokens {start}..{start + x.shape[0] - 1}); fix the interpretation (or its input scaling)."
        )
    return xh
