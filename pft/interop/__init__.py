"""pft where SAE researchers already work: TransformerLens models and SAELens SAEs in, from
local files; :func:`evaluate` (``pft eval``) gives the residual report and the patched-model
report in one table, with SAELens' metric names beside pft's. sae-lens and transformer-lens are
optional (the ``interop`` extra); nothing here imports them until a file in their format is read.
"""

from pft.interop._eval import EvalResult, evaluate, next_token_loss
from pft.interop._load import load_model, load_sae, load_tokens, save_hooked_transformer, special_token_ids

__all__ = ["evaluate", "EvalResult", "next_token_loss", "load_model", "load_sae", "load_tokens",
           "save_hooked_transformer", "special_token_ids"]
