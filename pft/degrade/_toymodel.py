"""A trained toy model of superposition (Elhage et al. 2022) for the degrade example and CLI.

``h = W c`` embeds ``F`` sparse features in ``d < F`` dimensions, ``ĉ = ReLU(Wᵀ h + b)``
reads them back. Trained on the codes of :func:`pft.toy.superposition`, its hidden
activations ``h`` (plus the toy's Gaussian background) are what interpretations reconstruct.
Private: used by :func:`pft.degrade.degrade_experiment` (``pft degrade``, ``examples/degrade_toy.py``).
"""

from __future__ import annotations

import torch

__all__ = ["ToySuperpositionModel", "train_toy_model"]


class ToySuperpositionModel(torch.nn.Module):
    """``ĉ = ReLU(Wᵀ W c + b)`` with ``W`` of shape ``(d, F)``.

    ``forward(c)`` returns the reconstruction, shape ``(N, F)``; :meth:`hidden` returns
    ``h = c Wᵀ``, shape ``(N, d)``; the rows of ``W.T`` are the learned feature directions.
    """

    def __init__(self, n_features: int, d: int, *, seed: int = 0, dtype=torch.float64):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = torch.nn.Parameter(torch.randn(d, n_features, generator=g, dtype=dtype) / d**0.5)
        self.b = torch.nn.Parameter(torch.zeros(n_features, dtype=dtype))

    def hidden(self, codes: torch.Tensor) -> torch.Tensor:
        return codes @ self.W.T

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.hidden(codes) @ self.W + self.b)


def train_toy_model(codes, *, d: int, steps: int = 3000, lr: float = 1e-2, seed: int = 0):
    """Fit :class:`ToySuperpositionModel` to ``codes`` (shape ``(N, F)``) by full-batch Adam
    on the mean squared reconstruction error; returns ``(model, codes_tensor)``."""
    c = torch.as_tensor(codes, dtype=torch.float64)
    model = ToySuperpositionModel(c.shape[1], d, seed=seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(c), c).backward()
        opt.step()
    model.zero_grad(set_to_none=True)
    return model, c
