"""Shared toy models for the pft.residual tests."""

import pytest
import torch


class _Out:
    """A model output object carrying ``.logits`` (as Hugging Face models return)."""

    def __init__(self, logits):
        self.logits = logits


class _LogitsModel(torch.nn.Module):
    """Its hooked module ``layer`` is the identity and its output *is* the logits: zero ablation
    gives the uniform distribution, so ``KL(p‖u) = Σ p log p + log V`` exactly."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Identity()

    def forward(self, x):
        return _Out(self.layer(x))


@pytest.fixture
def logits_model():
    return _LogitsModel()
