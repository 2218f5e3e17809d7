"""The real-model main job: capture a layer, train a TopK SAE, score its residual, patch it back."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pft._deprecation import renamed_keywords
from pft._device import torch_device
from pft._results import JsonResult, _plain
from pft._validate import check_choice, check_int, check_seed
from pft.errors import InputError

__all__ = ["DEFAULTS", "DemoResult", "run_model_demo"]

# Budgets sized for two CPU cores (docs/real_models.md, "The model demos"). The keys are the
# settings of run_model_demo and DemoResult.settings; "n_steps" and "n_patch_windows" were
# "steps" and "patch_windows" (the old names are still accepted as overrides, with a warning,
# and read back from old DemoResult files; these dicts carry only the new ones).
# exclude_positions: token positions of every window left out of the SAE's training and score
# and never spliced by patch_scores. SmolLM2's position 0 is an attention sink (norm ~2.3e4 at
# block 12 against a median of 143) that would dominate the FVU and the SAE; MiniLM's [CLS] and
# [SEP] are ordinary in size at block 3 (median norms 10.6 and 8.8 against 13.6; 1.5 % and
# 0.6 % of the total variance, 1/64 = 1.6 % a position) and its sentence embedding pools them,
# so none are excluded there.
DEFAULTS = {
    "minilm": dict(layer=3, n_windows=96, length=64, d_sae=1536, k=32, n_steps=400, n_patch_windows=32, batch_size=8, n_resamples=4,
                   exclude_positions=()),
    "smollm2": dict(layer=12, n_windows=48, length=64, d_sae=2304, k=32, n_steps=300, n_patch_windows=12, batch_size=4, n_resamples=2,
                    exclude_positions=(0,)),
}


# settings renamed to the n_<things> count convention: old name -> new name
_OLD_SETTINGS = {"steps": "n_steps", "patch_windows": "n_patch_windows"}


@dataclass(frozen=True)
class DemoResult(JsonResult):
    """What :func:`run_model_demo` produced: the reports, the SAE, and how long each stage took.

    Attributes
    ----------
    name, title, module : str
        Which model (a key of :data:`DEFAULTS`), its description, and the hooked block.
    settings : dict
        The settings used (:data:`DEFAULTS` ``[name]`` with the overrides).
    residual : ResidualReport
        :func:`pft.residual.score` of the SAE on the windows it was trained on.
    patch : PatchReport
        :func:`pft.residual.patch_scores` of the SAE on the next windows.
    sae : TopKSAE or None
        The trained SAE (not written to JSON: ``from_json`` gives None; save it with
        :meth:`TopKSAE.save <pft.models.TopKSAE.save>`).
    seconds : dict
        Wall-clock seconds of each stage (``load``, ``capture``, ``sae``, ``score``, ``patch``).
    """

    name: str
    title: str
    module: str
    settings: dict
    residual: Any = field(repr=False)
    patch: Any = field(repr=False)
    sae: Any = field(default=None, repr=False)
    seconds: dict = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python types; the reports as their own ``to_dict()``, the SAE left out."""
        return {
            "name": self.name, "title": self.title, "module": self.module, "settings": _plain(self.settings),
            "residual": self.residual.to_dict(), "patch": self.patch.to_dict(),
            "seconds": {k: float(v) for k, v in self.seconds.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DemoResult":
        """Inverse of :meth:`to_dict` (``sae`` is None)."""
        from pft.residual import PatchReport, ResidualReport

        settings = {_OLD_SETTINGS.get(k, k): v for k, v in d["settings"].items()}  # files written before the rename
        return cls(name=d["name"], title=d["title"], module=d["module"], settings=settings,
                   residual=ResidualReport.from_dict(d["residual"]), patch=PatchReport.from_dict(d["patch"]),
                   seconds=dict(d.get("seconds") or {}))

    def __str__(self) -> str:
        times = ", ".join(f"{k} {v:.1f} s" for k, v in self.seconds.items())
        return "\n".join([f"{self.title}: SAE at {self.module} ({times})", "", str(self.residual), "",
                          str(self.patch)])


@renamed_keywords(**_OLD_SETTINGS)
def run_model_demo(
    name: str,
    *,
    loaded: Any = None,
    seed: int = 0,
    progress: bool = True,
    device: Any = None,
    background: Any = None,
    **overrides: Any,
) -> DemoResult:
    """Capture ``layer``'s output on pydoc text, train a TopK SAE, ``score`` it and ``patch_scores`` it.

    The SAE is trained and scored on windows ``0 … n_windows − 1`` of the corpus; the patched
    runs use the next ``n_patch_windows`` windows (text the SAE never saw); the SAE trains for
    ``n_steps`` steps. Settings default to :data:`DEFAULTS` ``[name]``; any of them can be
    overridden by keyword (``steps=`` and ``patch_windows=``, the old names of ``n_steps`` and
    ``n_patch_windows``, still work and raise :class:`~pft.errors.PftDeprecationWarning`).

    ``exclude_positions`` (default ``(0,)`` for SmolLM2, its attention-sink position, and ``()``
    for MiniLM) are window positions left out everywhere: the SAE is trained and ``score`` runs on
    the other positions only, and ``patch_scores`` gets ``exclude_positions=`` (those tokens keep
    their clean activations and their predictions are not averaged). Pass
    ``exclude_positions=()`` to include them.
    """
    import torch

    from pft.models._load import load, windows, capture
    from pft.models._sae import train_topk_sae
    from pft.residual import patch_scores, score

    check_choice(name, "name", tuple(DEFAULTS))
    seed = check_seed(seed)
    unknown = set(overrides) - set(DEFAULTS[name])
    if unknown:
        raise InputError(f"unknown setting(s) {sorted(unknown)}; known: {sorted(DEFAULTS[name])}.")
    cfg = {**DEFAULTS[name], **overrides}
    excl, L = cfg["exclude_positions"], cfg["length"]
    if excl is None:
        excl = ()
    excl = tuple(excl) if hasattr(excl, "__iter__") and not isinstance(excl, (str, bytes)) else excl
    if not isinstance(excl, tuple) or not all(isinstance(p, (int, np.integer)) and not isinstance(p, bool) for p in excl):
        raise InputError(f"`exclude_positions` must be a tuple of integer positions, e.g. (0,) or (); got {excl!r}.")
    L = check_int(L, "length", minimum=4)
    if any(not -L <= p < L for p in excl) or len({p % L for p in excl}) >= L:
        raise InputError(
            f"`exclude_positions` must name positions of a {L}-token window and leave at least one; got {tuple(excl)!r}."
        )
    excl = tuple(sorted({int(p) % L for p in excl}))
    cfg["exclude_positions"] = excl
    sec = {}
    t = time.perf_counter()
    m = loaded if loaded is not None else load(name, device=device, progress=progress)
    sec["load"] = time.perf_counter() - t

    t = time.perf_counter()
    module = m.module(cfg["layer"])
    ids = windows(m, cfg["n_windows"], cfg["length"])
    X = capture(m, cfg["layer"], ids, progress=progress)
    if excl:  # rows are window-major: drop the excluded positions of every window
        keep = np.ones(cfg["length"], dtype=bool)
        keep[list(excl)] = False
        X = X.reshape(len(ids), cfg["length"], -1)[:, keep].reshape(-1, X.shape[-1])
    sec["capture"] = time.perf_counter() - t

    t = time.perf_counter()
    sae = train_topk_sae(X, d_sae=cfg["d_sae"], k=cfg["k"], n_steps=cfg["n_steps"], seed=seed, device=m.device, progress=progress)
    sec["sae"] = time.perf_counter() - t

    t = time.perf_counter()
    with torch.no_grad():
        Xt = torch.from_numpy(X).to(m.device)
        codes = sae.encode(Xt)
        recon = sae.decode(codes).cpu().numpy()
        codes = codes.cpu().numpy()
    # score where asked, else where the model runs; a model on the CPU scores with numpy on the
    # host (score's device=None), which is what device=None means there
    run_on = torch_device(device, default=m.model)
    score_device = run_on if device is not None or run_on.type != "cpu" else None
    rep = score(X, recon, codes=codes, seed=seed, device=score_device, progress=progress)
    sec["score"] = time.perf_counter() - t

    t = time.perf_counter()
    batches = m.batches(windows(m, cfg["n_patch_windows"], cfg["length"], offset=cfg["n_windows"]), batch_size=cfg["batch_size"])
    patch = patch_scores(
        m.model, module, batches, interpretation=sae, loss_fn=m.loss_fn, background=background,
        n_resamples=cfg["n_resamples"], seed=seed, progress=progress, loss_name=m.loss_name,
        exclude_positions=excl or None,
    )
    sec["patch"] = time.perf_counter() - t
    return DemoResult(name=name, title=m.title, module=module, settings=cfg, residual=rep, patch=patch, sae=sae, seconds=sec)
