"""The SGLD kernel on a flat parameter buffer.

The working copy of the model has its trainable parameters re-pointed into one contiguous
buffer, so the localisation pull and the injected noise are single vector operations on
``d`` numbers whatever the number of parameter tensors; the gradient term is one fused
``_foreach`` add over the parameter views (autograd hands over its fresh gradient tensors,
nothing is zeroed or copied).
"""

from __future__ import annotations

import math

import torch

__all__ = ["FlatParameters", "sgld_update"]


class FlatParameters:
    """The trainable parameters of ``module`` as views into one flat buffer.

    Parameters
    ----------
    module : torch.nn.Module
        Modified in place: its trainable parameters become views of ``self.flat``. Only pass
        a private copy.

    Attributes
    ----------
    names : tuple of str
    shapes : tuple of torch.Size
    params : tuple of torch.nn.Parameter
        In ``named_parameters`` order (tied parameters once).
    flat : torch.Tensor, shape (d,)
    """

    def __init__(self, module: torch.nn.Module):
        named = [(k, p) for k, p in module.named_parameters() if p.requires_grad]
        self.names = tuple(k for k, _ in named)
        self.shapes = tuple(p.shape for _, p in named)
        self.params = tuple(p for _, p in named)
        self.numels = tuple(p.numel() for _, p in named)
        self.d = int(sum(self.numels))
        if named:
            ref = named[0][1]
            self.flat = torch.cat([p.detach().reshape(-1) for _, p in named]).contiguous()
            offset = 0
            for p, k in zip(self.params, self.numels):
                p.data = self.flat[offset : offset + k].view(p.shape)
                p.grad = None
                offset += k
            self.dtype, self.device = ref.dtype, ref.device

    def zero_grad(self) -> None:
        """Drop the gradients (the next ``backward`` allocates fresh ones)."""
        for p in self.params:
            p.grad = None

    def grads(self) -> tuple[list, list]:
        """``(views, grads)``: the parameters that received a gradient and their gradients."""
        views, grads = [], []
        for p in self.params:
            if p.grad is not None:
                views.append(p.data)
                grads.append(p.grad)
        return views, grads

    def flat_grad(self) -> torch.Tensor:
        """The gradient as one ``(d,)`` tensor (zeros where a parameter got none)."""
        return torch.cat(
            [
                torch.zeros(k, dtype=self.dtype, device=self.device) if p.grad is None else p.grad.reshape(-1)
                for p, k in zip(self.params, self.numels)
            ]
        )

    def set(self, values: torch.Tensor) -> None:
        with torch.no_grad():
            self.flat.copy_(values)


def sgld_update(
    flat: torch.Tensor,
    views: list,
    grads: list,
    anchor: torch.Tensor,
    noise: torch.Tensor,
    *,
    step_size: float,
    nbeta: float,
    localization: float,
    generator: torch.Generator,
) -> None:
    """One SGLD step in place: ``w ← w - (ε/2)[nβ ∇L(w) + γ (w - w*)] + sqrt(ε) ξ``.

    ``views`` are the parameter tensors (views into ``flat``) and ``grads`` their gradients
    ``∇L``; ``noise`` is scratch space shaped like ``flat``.

    Notes
    -----
    Written as ``w ← lerp(w, w*, εγ/2)``, ``w ← w + sqrt(ε) ξ``, ``w ← w - (εnβ/2) ∇L``: the
    gradient is taken at the old ``w`` (it was computed before the call), so the order of
    the three in-place updates does not matter. Three passes over the ``d`` numbers besides
    drawing ``ξ``; nothing is allocated.

    References
    ----------
    Welling & Teh (2011), "Bayesian learning via stochastic gradient Langevin dynamics",
    ICML; Lau, Furman, Wang, Murfet, Wei (2023), arXiv:2308.12108, eq. (12).
    """
    with torch.no_grad():
        shrink = 0.5 * step_size * localization
        if shrink:
            flat.lerp_(anchor, shrink)
        torch.randn(noise.shape, generator=generator, out=noise)
        flat.add_(noise, alpha=math.sqrt(step_size))
        if grads:
            torch._foreach_add_(views, grads, alpha=-0.5 * step_size * nbeta)
