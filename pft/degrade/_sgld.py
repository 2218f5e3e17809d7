"""The SGLD kernel on a flat parameter buffer.

The working copy of the model has its trainable parameters re-pointed into one contiguous
buffer (and their gradients into another), so one SGLD step is a handful of vector
operations on ``d`` numbers whatever the number of parameter tensors.
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
    flat : torch.Tensor, shape (d,)
    grad : torch.Tensor, shape (d,)
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
            self.grad = torch.zeros_like(self.flat)
            offset = 0
            for p, k in zip(self.params, self.numels):
                p.data = self.flat[offset : offset + k].view(p.shape)
                p.grad = self.grad[offset : offset + k].view(p.shape)
                offset += k
            self.dtype, self.device = ref.dtype, ref.device
        self._grads_are_views = True

    def zero_grad(self) -> None:
        self.grad.zero_()
        if not self._grads_are_views:
            for p in self.params:
                if p.grad is not None:
                    p.grad.zero_()

    def gather_grad(self) -> torch.Tensor:
        """The flat gradient after ``backward``. Autograd accumulates in place into the
        gradient views; if a module replaced a ``.grad`` tensor the gradients are copied."""
        if self._grads_are_views:
            offset = 0
            for p, k in zip(self.params, self.numels):
                g = p.grad
                if g is None or g.data_ptr() != self.grad[offset:].data_ptr():
                    self._grads_are_views = False
                    break
                offset += k
        if not self._grads_are_views:
            parts = [
                torch.zeros(k, dtype=self.dtype, device=self.device)
                if p.grad is None
                else p.grad.reshape(-1)
                for p, k in zip(self.params, self.numels)
            ]
            self.grad.copy_(torch.cat(parts))
        return self.grad

    def set(self, values: torch.Tensor) -> None:
        with torch.no_grad():
            self.flat.copy_(values)


def sgld_update(
    flat: torch.Tensor,
    grad: torch.Tensor,
    anchor: torch.Tensor,
    noise: torch.Tensor,
    *,
    step_size: float,
    nbeta: float,
    localization: float,
    generator: torch.Generator,
) -> None:
    """One SGLD step in place: ``w ← w - (ε/2)[nβ ∇L(w) + γ (w - w*)] + sqrt(ε) ξ``.

    ``grad`` holds ``∇L`` (overwritten), ``noise`` is scratch space of the same shape.

    Notes
    -----
    Written as ``w ← (1 - εγ/2) w + (εγ/2) w* + [sqrt(ε) ξ - (εnβ/2) ∇L]`` so each step makes
    four passes over the ``d`` numbers and allocates nothing.

    References
    ----------
    Welling & Teh (2011), "Bayesian learning via stochastic gradient Langevin dynamics",
    ICML; Lau, Furman, Wang, Murfet, Wei (2023), arXiv:2308.12108, eq. (12).
    """
    with torch.no_grad():
        torch.randn(noise.shape, generator=generator, out=noise)
        noise.mul_(math.sqrt(step_size)).add_(grad, alpha=-0.5 * step_size * nbeta)
        shrink = 0.5 * step_size * localization
        if shrink:
            flat.mul_(1.0 - shrink).add_(anchor, alpha=shrink)
        flat.add_(noise)
