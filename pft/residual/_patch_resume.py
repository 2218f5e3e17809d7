"""Running a model from the hooked module on: the part of the forward pass after the splice.

A patched rung changes the model only from the hooked module on; everything before it computes
the clean activations again. Where the model can be entered at the hooked point, the patched
rungs run only the rest of it, from the activations the clean pass captured. This is exact, not
an approximation, only where the model's remaining computation depends on the batch through
that point alone, so it is used for one architecture whose forward pass is known: a
TransformerLens ``HookedTransformer`` (its ``forward(residual, start_at_layer=k)`` runs blocks
``k, k+1, ...``, the final norm and the unembedding on a given residual stream) hooked at a
block's ``hook_resid_pre``, ``hook_resid_post`` or the block itself, with

- the class's own ``forward`` and ``input_to_embed`` (a subclass that overrides either, e.g. one
  that splices SAEs itself, runs the whole model);
- no ``shortformer`` positional embedding (it is added again inside each block) and no
  tokenizer padding on the left (the only case in which ``forward`` builds an attention mask
  from bare token ids);
- no forward hooks or pre-hooks on the model object itself (they would see a residual stream
  instead of token ids), nor on the hooked module besides pft's own (a hook registered after
  pft's would change the spliced output in a whole forward but not run in a resumed one);
- batches that are a ``(B, L)`` tensor of token ids, or a tuple/list whose first element is one
  (``model(tokens)``; a Mapping may carry an ``attention_mask`` or other keywords).

Every other model, module or batch runs the whole forward pass with a hook, as before.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["resume_layer", "token_batch"]

_BLOCK = re.compile(r"^blocks\.(\d+)(\.hook_resid_(pre|post))?$")


def resume_layer(model: Any, name: str) -> int | None:
    """The block index to start the model at on the hooked module's (spliced) output, or None
    when the model cannot be entered there exactly (see the module docstring)."""
    tl = sys.modules.get("transformer_lens")  # never imported here: only a model built with it qualifies
    ht = getattr(tl, "HookedTransformer", None) if tl is not None else None
    if ht is None or not isinstance(model, ht):
        return None
    cls = type(model)
    if cls.forward is not ht.forward or cls.input_to_embed is not ht.input_to_embed:
        return None
    if model._forward_hooks or model._forward_pre_hooks:
        return None
    cfg = getattr(model, "cfg", None)
    if cfg is None or getattr(cfg, "positional_embedding_type", None) == "shortformer":
        return None
    tok = getattr(model, "tokenizer", None)
    if tok is not None and getattr(tok, "padding_side", None) == "left":
        return None
    m = _BLOCK.match(name)
    if m is None:
        return None
    k = int(m.group(1))
    n_layers = len(model.blocks)
    if not 0 <= k < n_layers:
        return None
    mod = model.get_submodule(name)
    if mod._forward_hooks or mod._forward_pre_hooks:
        return None
    return k if m.group(3) == "pre" else k + 1


def token_batch(batch: Any, lead: tuple) -> bool:
    """Whether the model is called on ``batch`` as ``model(tokens)`` with ``tokens`` a tensor of
    integer ids of shape ``lead`` (the hooked output's leading shape ``(B, L)``)."""
    import torch

    if isinstance(batch, Mapping):
        return False
    if isinstance(batch, (tuple, list)):
        if not batch:
            return False
        batch = batch[0]
    return (
        isinstance(batch, torch.Tensor)
        and not (batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool)
        and batch.ndim == 2
        and tuple(batch.shape) == tuple(lead)
    )
