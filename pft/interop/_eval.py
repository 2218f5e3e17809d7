"""evaluate(): a saved model, a saved SAE and tokens in; score + patch_scores out, one report."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pft._deprecation import warn_renamed
from pft._device import torch_device
from pft._plotting import finish
from pft._results import JsonResult
from pft._validate import check_int, check_seed
from pft.errors import InputError
from pft.interop._load import load_model, load_sae, load_tokens, special_token_ids, tokenizer_of
from pft.residual import PatchReport, ResidualReport
from pft._plotting import panels, tidy

__all__ = ["evaluate", "EvalResult", "next_token_loss"]


def next_token_loss(output: Any, batch: Any):
    """(B, L − 1) next-token cross-entropy (nats) of a language model's output, as float64.

    Evaluated per position in the logits' dtype (float32 at least; ``logsumexp − ℓ_target``, as
    TransformerLens and SAELens do), returned as float64 for the averages.

    ``output``: logits ``(B, L, V)`` (a TransformerLens ``HookedTransformer``), or an object or
    Mapping with ``logits`` (transformers). ``batch``: the ``(B, L)`` token ids, a Mapping with
    ``input_ids``, or a tuple whose first element is one of those. Entry ``t`` is the loss of
    predicting token ``t + 1`` at position ``t``: SAELens' ``loss_per_token``.

    Examples
    --------
    >>> import torch
    >>> logits = torch.zeros(1, 3, 4)            # uniform over 4 tokens
    >>> next_token_loss(logits, torch.tensor([[0, 1, 2]]))
    tensor([[1.3863, 1.3863]], dtype=torch.float64)
    """
    import torch

    lg = getattr(output, "logits", None)
    if lg is None and isinstance(output, Mapping):
        lg = output.get("logits")
    if lg is None:
        lg = output
    ids = batch
    if isinstance(ids, (tuple, list)):
        ids = ids[0]
    if isinstance(ids, Mapping):
        ids = ids.get("input_ids")
    if not isinstance(lg, torch.Tensor) or not isinstance(ids, torch.Tensor) or lg.ndim != 3 or ids.shape != lg.shape[:2]:
        raise InputError(
            "next_token_loss needs (B, L, V) logits and (B, L) token ids; got "
            f"{type(lg).__name__}{tuple(getattr(lg, 'shape', ()))} and {type(ids).__name__}{tuple(getattr(ids, 'shape', ()))}."
        )
    lgd = lg[:, :-1]
    if lgd.dtype not in (torch.float32, torch.float64):
        lgd = lgd.float()
    target = lgd.gather(-1, ids[:, 1:, None].long().to(lgd.device)).squeeze(-1)
    return (torch.logsumexp(lgd, dim=-1) - target).to(torch.float64)


@dataclass(frozen=True)
class EvalResult(JsonResult):
    """What :func:`evaluate` (``pft eval``) found: the residual report and the patched-model
    report of one SAE on one model's hook point.

    Attributes
    ----------
    model, sae, hook : str
        What was evaluated (paths or type names, and the hook point).
    n_seqs, context : int
        Token windows evaluated and their length.
    excluded_token_ids : tuple of int
        Token ids whose positions did not count (SAELens' special tokens by default).
    score : ResidualReport
    patch : PatchReport
    """

    model: str
    sae: str
    hook: str
    n_seqs: int
    context: int
    excluded_token_ids: tuple
    score: ResidualReport = field(repr=False)
    patch: PatchReport = field(repr=False)

    def saelens_metrics(self) -> dict:
        """Every number SAELens' ``run_evals`` also reports, under its names."""
        return {**self.patch.saelens_metrics(), **self.score.saelens_metrics()}

    def to_dict(self) -> dict:
        return {
            "model": self.model, "sae": self.sae, "hook": self.hook, "n_seqs": self.n_seqs,
            "context": self.context, "excluded_token_ids": list(self.excluded_token_ids),
            "saelens_metrics": self.saelens_metrics(),
            "score": self.score.to_dict(), "patch": self.patch.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "EvalResult":
        return cls(model=d["model"], sae=d["sae"], hook=d["hook"], n_seqs=int(d["n_seqs"]), context=int(d["context"]),
                   excluded_token_ids=tuple(d["excluded_token_ids"]), score=ResidualReport.from_dict(d["score"]),
                   patch=PatchReport.from_dict(d["patch"]))

    def __str__(self) -> str:
        ex = f", positions of token ids {list(self.excluded_token_ids)} left out" if self.excluded_token_ids else ""
        L = [f"pft eval: {self.sae} on {self.model} at {self.hook}: {self.n_seqs} windows × {self.context} tokens{ex}",
             "", str(self.score), "", str(self.patch), "", " SAELens' names (the same numbers)"]
        for k, v in self.saelens_metrics().items():
            L.append(f"  {k:<28}{'n/a' if math.isnan(v) else format(v, '.6g'):>14}")
        return "\n".join(L)

    def plot(self, path: Any = None, *, ax: Any = None) -> Any:
        """The patched-model panels (loss, and KL when there are logits, per rung) above the
        residual panels (spectrum, kurtosis z of the top directions), in one figure.

        Parameters
        ----------
        path : str or path-like, optional
            Also write the figure there (atomically; the format from the extension). A
            directory (the former ``plot(directory)``) still writes ``score.png`` and
            ``patch.png`` there and returns their paths, with a deprecation warning: use
            :meth:`save_plots`.
        ax : matplotlib Axes or sequence of four, optional
            Draw on these instead of a new figure: one Axes gets the loss panel only; four get
            the loss, KL, spectrum and kurtosis panels.

        Returns
        -------
        matplotlib.figure.Figure
            A new figure (not registered with pyplot), or ``ax``'s.
        """
        if path is not None and (os.path.isdir(path) or not os.path.splitext(os.fspath(path))[1]):
            warn_renamed("EvalResult.plot(directory)", "EvalResult.save_plots(directory)")
            return self.save_plots(path)
        fig, axes = panels(ax, 4, figsize=(11, 7.6), nrows=2)
        self.patch.plot(ax=[a for a in axes[:2] if a is not None])
        if any(a is not None for a in axes[2:]):
            self.score.plot(ax=[a for a in axes[2:] if a is not None])
        if ax is None and not bool(np.any(np.isfinite(self.patch.kl))):
            fig.delaxes(axes[1])  # no logits: no KL panel
        tidy(fig, ax)
        return finish(fig, path)

    def save_plots(self, directory: Any) -> list[str]:
        """Write ``score.png`` (:meth:`ResidualReport.plot <pft.residual.ResidualReport.plot>`)
        and ``patch.png`` (:meth:`PatchReport.plot <pft.residual.PatchReport.plot>`) in
        ``directory`` (made when missing); returns their paths."""
        directory = os.fspath(directory)
        os.makedirs(directory, exist_ok=True)
        paths = [os.path.join(directory, "score.png"), os.path.join(directory, "patch.png")]
        self.score.plot(paths[0])
        self.patch.plot(paths[1])
        return paths


def evaluate(
    model: Any,
    sae: Any,
    tokens: Any = None,
    *,
    hook: str | None = None,
    context: int = 128,
    n_seqs: int | None = 64,
    batch_size: int = 8,
    exclude_tokens: Any = "special",
    rungs: Any = None,
    n_resamples: int = 4,
    convention: str = "pft",
    seed: int = 0,
    device: Any = None,
    tl_name: str | None = None,
    progress: bool = True,
) -> EvalResult:
    """Score an SAE on a language model, offline: the Python twin of ``pft eval``.

    Parameters
    ----------
    model : torch.nn.Module or path
        A TransformerLens ``HookedTransformer`` or a transformers causal LM, or a local
        directory :func:`pft.interop.load_model` reads.
    sae : SAE object or path
        A SAELens ``SAE`` (or anything with ``encode``/``decode``), or a local directory in
        SAELens' format (``cfg.json`` + ``sae_weights.safetensors``) or pft's own.
    tokens : None, path, or integer array
        None: Python's own documentation, tokenized by the model's tokenizer; a text file; a
        ``.npy`` of token ids ((n, L) windows, or a 1-D stream); or an array of ids.
    hook : str, optional
        The module path to hook (a TransformerLens hook name such as
        ``"blocks.0.hook_resid_post"``); default: the SAE's ``cfg.metadata.hook_name``.
    context, n_seqs : int
        Window length (text and 1-D streams) and how many windows to use (None: all).
    batch_size : int
        Windows per forward pass (also SAELens' ``eval_batch_size_prompts`` for
        ``explained_variance_legacy``).
    exclude_tokens : "special", None, or list of int
        Token ids whose positions do not count (``mask`` of :func:`~pft.residual.score` and
        :func:`~pft.residual.patch_scores`): ``"special"`` = the tokenizer's BOS/EOS/PAD, as
        SAELens' ``run_evals`` does by default.
    rungs, n_resamples, convention, seed :
        Passed to :func:`~pft.residual.patch_scores`.
    device : str or torch.device, optional
    tl_name : str, optional
        With a Hugging Face directory: the TransformerLens name to load it under.
    progress : bool, default True

    Returns
    -------
    EvalResult
    """
    import torch

    from pft.residual import as_interpretation, patch_scores, score
    from pft.residual.hooks import hooked, resolve_module

    model_label = os.fspath(model) if isinstance(model, (str, os.PathLike)) else type(model).__name__
    sae_label = os.fspath(sae) if isinstance(sae, (str, os.PathLike)) else type(sae).__name__
    if isinstance(model, (str, os.PathLike)):
        model = load_model(model, tl_name=tl_name, device=device)
    if isinstance(sae, (str, os.PathLike)):
        sae = load_sae(sae, device=device)
    if not isinstance(model, torch.nn.Module):
        raise InputError(f"`model` must be a torch.nn.Module or a model directory; got {type(model).__name__}.")
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    seed = check_seed(seed)
    model.eval()
    if hook is None:
        hook = getattr(getattr(getattr(sae, "cfg", None), "metadata", None), "hook_name", None) or getattr(
            getattr(sae, "cfg", None), "hook_name", None)
        if not hook:
            raise InputError("the SAE does not name its hook point (cfg.metadata.hook_name): pass `hook`.")
    tok = tokenizer_of(model)
    W = load_tokens(tokens, tok, context=context, n_seqs=n_seqs)
    if exclude_tokens == "special":
        ex = special_token_ids(tok)
    elif exclude_tokens is None:
        ex = []
    else:
        ex = [int(t) for t in exclude_tokens]
    keep = ~np.isin(W, ex) if ex else None
    if keep is not None and keep.all():
        keep = None
    ids = torch.as_tensor(W, device=torch_device(None, default=model))
    is_tl = hasattr(model, "run_with_hooks")
    inputs = ids if is_tl else {"input_ids": ids, "attention_mask": torch.ones_like(ids)}

    # capture the hooked rows, one forward per batch that stops at the hook
    mod, name = resolve_module(model, hook)
    interp = as_interpretation(sae)
    rows = []
    it = range(0, W.shape[0], int(batch_size))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=f"capture {name}", unit="batch")
    with torch.no_grad(), hooked(mod, name, width=interp.d_in) as h:
        for lo in it:
            b = ids[lo:lo + batch_size] if is_tl else {k: v[lo:lo + batch_size] for k, v in inputs.items()}
            cap: list = []
            h.run(model, b, capture=cap, stop=True)
            rows.append(cap[0].float().cpu().numpy().reshape(*h.shape[:2], -1) if len(h.shape) >= 2
                        else cap[0].float().cpu().numpy())
    acts = np.concatenate(rows)
    rep = score(acts, interp, mask=keep, saelens_batch=int(batch_size), seed=seed, progress=progress,
                device=device)
    prep = patch_scores(model, name, inputs, batch_size=int(batch_size), interpretation=interp,
                        loss_fn=next_token_loss, mask=keep, rungs=rungs, n_resamples=n_resamples,
                        convention=convention, seed=seed, progress=progress, loss_name="CE (nats)")
    return EvalResult(model=model_label, sae=sae_label, hook=name, n_seqs=int(W.shape[0]), context=int(W.shape[1]),
                      excluded_token_ids=tuple(ex), score=rep, patch=prep)
