"""Local files in: a model directory, an SAE directory, tokens. Nothing is fetched from a hub."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from pft._device import torch_device
from pft._validate import check_int
from pft.errors import InputError

__all__ = ["load_model", "load_sae", "save_hooked_transformer", "load_tokens", "special_token_ids"]

#: The file names of pft's own format for a TransformerLens HookedTransformer built from a config.
TL_CONFIG = "transformer_lens_config.json"
TL_WEIGHTS = "model.safetensors"

_OFFLINE = (
    "pft reads local files only (nothing is fetched from a hub): download the model or SAE elsewhere "
    "(e.g. huggingface-cli download NAME --local-dir DIR, or SAE.from_pretrained(...).save_model(DIR)) and "
    "pass the directory."
)


def _need(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise InputError(f"{what} needs {module.split('.')[0]}: pip install 'pft[interop]' ({exc}).") from None


def _check_dir(path: Any, name: str) -> str:
    p = os.fspath(path)
    if not os.path.isdir(p):
        raise InputError(f"`{name}` must be a directory; got {p!r}. {_OFFLINE}")
    return p


def save_hooked_transformer(model: Any, path: Any) -> str:
    """Save a TransformerLens ``HookedTransformer`` (its config and weights) to a directory that
    :func:`load_model` reads: ``transformer_lens_config.json`` and ``model.safetensors``.

    For a model built from a ``HookedTransformerConfig`` (one that no hub name describes).
    """
    from safetensors.torch import save_file

    cfg = getattr(model, "cfg", None)
    if cfg is None or not hasattr(cfg, "to_dict"):
        raise InputError(f"`model` must be a TransformerLens HookedTransformer; got {type(model).__name__}.")
    p = os.fspath(path)
    os.makedirs(p, exist_ok=True)
    d = {k: v for k, v in cfg.to_dict().items() if _jsonable(v)}
    with open(os.path.join(p, TL_CONFIG), "w") as fh:
        json.dump(d, fh, indent=1, default=str)
    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, os.path.join(p, TL_WEIGHTS))
    return p


def _jsonable(v: Any) -> bool:
    try:
        json.dumps(v)
        return True
    except TypeError:
        return False


def load_model(path: Any, *, tl_name: str | None = None, device: Any = None) -> Any:
    """A model from a local directory, in eval mode.

    Parameters
    ----------
    path : str or path
        - a directory written by :func:`save_hooked_transformer` (``transformer_lens_config.json``
          and ``model.safetensors``): a TransformerLens ``HookedTransformer``;
        - a Hugging Face model directory (``config.json`` and weights): a transformers causal LM,
          or, with ``tl_name``, that model loaded into TransformerLens under its name.
    tl_name : str, optional
        Load the Hugging Face directory into a TransformerLens ``HookedTransformer`` (named
        ``tl_name``, e.g. ``"gpt2"``) with TransformerLens' own config and weight conversion
        read from ``path`` (no weight processing: the same function as the transformers model).
    device : str or torch.device, optional

    Returns
    -------
    torch.nn.Module
    """
    p = _check_dir(path, "model")
    dev = torch_device(device)
    if os.path.exists(os.path.join(p, TL_CONFIG)):
        tl = _need("transformer_lens", "a TransformerLens model directory")
        from safetensors.torch import load_file

        with open(os.path.join(p, TL_CONFIG)) as fh:
            cfg = json.load(fh)
        cfg = {k: v for k, v in cfg.items() if k in tl.HookedTransformerConfig.__dataclass_fields__}
        cfg.pop("n_params", None)
        cfg["device"] = str(dev)
        model = _quiet(lambda: tl.HookedTransformer(tl.HookedTransformerConfig(**cfg)))
        model.load_state_dict(load_file(os.path.join(p, TL_WEIGHTS), device=str(dev)))
        return model.eval()
    if not os.path.exists(os.path.join(p, "config.json")):
        raise InputError(
            f"`model` {p!r} has neither {TL_CONFIG} (pft.interop.save_hooked_transformer) nor config.json "
            f"(a Hugging Face model directory). {_OFFLINE}"
        )
    tr = _need("transformers", "a Hugging Face model directory")
    major, minor = (int(v) for v in tr.__version__.split(".")[:2])
    dtype_kw = "dtype" if (major, minor) >= (4, 56) else "torch_dtype"  # renamed in transformers 4.56
    import torch

    hf = tr.AutoModelForCausalLM.from_pretrained(p, local_files_only=True, **{dtype_kw: torch.float32})
    tok = None
    tok_files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model", "vocab.txt")
    if any(os.path.exists(os.path.join(p, f)) for f in tok_files):
        tok = tr.AutoTokenizer.from_pretrained(p, local_files_only=True)
    # else: no tokenizer files: tokens must then be given as ids
    if tl_name is None:
        hf = hf.to(dev).eval()
        hf._pft_tokenizer = tok
        return hf
    _need("transformer_lens", "`tl_name`")
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as tl_loading

    def build():
        # TransformerLens' own conversion, pointed at the directory (its from_pretrained would
        # look the name up on the hub first)
        cfg = tl_loading.get_pretrained_model_config(p, hf_cfg=hf.config.to_dict(), fold_ln=False, device=str(dev),
                                                     n_devices=1, dtype=torch.float32)
        cfg.model_name = str(tl_name)
        state = tl_loading.get_pretrained_state_dict(p, cfg, hf)
        model = HookedTransformer(cfg, tokenizer=tok, move_to_device=False)
        model.load_and_process_state_dict(state, fold_ln=False, center_writing_weights=False, center_unembed=False,
                                          fold_value_biases=False, refactor_factored_attn_matrices=False)
        return model

    return _quiet(build).to(dev).eval()


def _quiet(fn):
    """Run a TransformerLens constructor without its deprecation notice for HookedTransformer."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning)
        return fn()


def tokenizer_of(model: Any) -> Any:
    return getattr(model, "tokenizer", None) or getattr(model, "_pft_tokenizer", None)


def load_sae(path: Any, *, device: Any = None) -> Any:
    """An SAE from a local directory in SAELens' on-disk format (``cfg.json`` and
    ``sae_weights.safetensors``, as ``SAE.save_model`` writes them), through SAELens'
    ``SAE.load_from_disk``; or pft's own :class:`~pft.models.TopKSAE` format
    (``pft_sae.json`` + ``sae_weights.safetensors``, :meth:`pft.models.TopKSAE.save`)."""
    p = _check_dir(path, "sae")
    if os.path.exists(os.path.join(p, "pft_sae.json")):
        from pft.models import TopKSAE

        return TopKSAE.load(p, device=device)
    if not (os.path.exists(os.path.join(p, "cfg.json")) and os.path.exists(os.path.join(p, "sae_weights.safetensors"))):
        raise InputError(
            f"`sae` {p!r} holds neither SAELens' format (cfg.json + sae_weights.safetensors) nor pft's "
            f"(pft_sae.json + sae_weights.safetensors). {_OFFLINE}"
        )
    sl = _need("sae_lens", "an SAE in SAELens' format")
    return sl.SAE.load_from_disk(p, device=str(torch_device(device))).eval()


def special_token_ids(tokenizer: Any) -> list[int]:
    """BOS, EOS and PAD ids of a tokenizer (what SAELens masks by default); [] without one."""
    if tokenizer is None:
        return []
    ids = {getattr(tokenizer, n, None) for n in ("bos_token_id", "eos_token_id", "pad_token_id")}
    return sorted(int(i) for i in ids if isinstance(i, (int, np.integer)))


def load_tokens(source: Any, tokenizer: Any, *, context: int, n_seqs: int | None = None, prepend_bos: bool = True) -> np.ndarray:
    """(n, context) int64 token windows.

    ``source``: None (Python's own documentation, :func:`pft.models.corpus`), a text file, a
    ``.npy`` of token ids ((n, L) windows used as they are, or a 1-D stream cut into windows),
    or an array. Text is tokenized once and packed into consecutive windows; with
    ``prepend_bos`` each window starts with the tokenizer's BOS token.
    """
    context = check_int(context, "context", minimum=2)
    if n_seqs is not None:
        n_seqs = check_int(n_seqs, "n_seqs", minimum=0)
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".npy"):
        if not os.path.exists(source):
            raise InputError(f"`tokens` file {os.fspath(source)!r} does not exist.")
        source = np.load(source)
    if isinstance(source, np.ndarray) or hasattr(source, "numpy"):
        ids = np.asarray(source)
        if ids.dtype.kind not in "iu":
            raise InputError(f"token ids must be integers; got dtype {ids.dtype}.")
        if ids.ndim == 2:
            W = ids
        elif ids.ndim == 1:
            n = ids.size // context
            if n == 0:
                raise InputError(f"{ids.size} token ids make no window of {context}.")
            W = ids[: n * context].reshape(n, context)
        else:
            raise InputError(f"token ids must be 1-D (a stream) or 2-D (windows); got shape {ids.shape}.")
    else:
        if tokenizer is None:
            raise InputError(
                "this model has no tokenizer, so text cannot be tokenized: pass token ids (an .npy file or array of "
                "shape (n, L))."
            )
        if source is None:
            from pft.models import corpus

            text = corpus()
        else:
            if not os.path.exists(source):
                raise InputError(f"`tokens` file {os.fspath(source)!r} does not exist.")
            with open(source, encoding="utf-8") as fh:
                text = fh.read()
        stream = np.asarray(tokenizer(text, add_special_tokens=False)["input_ids"], dtype=np.int64)
        bos = getattr(tokenizer, "bos_token_id", None)
        body = context - 1 if (prepend_bos and bos is not None) else context
        n = stream.size // body
        if n == 0:
            raise InputError(f"the text gives {stream.size} tokens: not one window of {context}.")
        W = stream[: n * body].reshape(n, body)
        if body < context:
            W = np.c_[np.full(n, bos), W]
    if n_seqs is not None:
        if W.shape[0] < n_seqs:
            raise InputError(f"the tokens make {W.shape[0]} windows of {W.shape[1]}; asked for {n_seqs}.")
        W = W[:n_seqs]
    return np.ascontiguousarray(W, dtype=np.int64)
