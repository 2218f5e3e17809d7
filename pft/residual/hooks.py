"""Model plumbing for patching: find a submodule, call a model on a batch, hook a module's output.

Package-internal API (no underscore): :func:`pft.residual.patch_scores` runs its rungs through
these, and :mod:`pft.interop` and :mod:`pft.models` use them to capture a layer's output.

- :func:`resolve_module` turns a dotted path (or a submodule) into ``(submodule, name)``;
- :func:`forward` calls a model on one batch (a Mapping as keywords, a tuple's first element);
- :class:`hooked` is a context manager holding a forward hook that reads, replaces or stops at
  the module's output, flattened to rows of the interpretation's width.

Examples
--------
>>> import torch
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())
>>> mod, name = resolve_module(model, "0")
>>> with hooked(mod, name) as hook:
...     rows: list = []
...     _ = hook.run(model, torch.ones(4, 3), capture=rows, stop=True)
>>> name, tuple(rows[0].shape), hook.shape
('0', (4, 2), (4,))
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any, Callable

import numpy as np

from pft._validate import describe
from pft.errors import InputError
from pft.residual._interpretation import trailing_axes

__all__ = ["resolve_module", "forward", "hooked"]


class _Stop(Exception):
    """Raised inside a hook to end a forward pass early once the activations are captured."""


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
