"""Shared toy models for the pft.degrade tests: a regular linear regression whose tempered
posterior is an exact Gaussian, stationary AR(1) chains with a known autocorrelation, and a
parameter checksum to prove models are not mutated."""

import hashlib
import math

import numpy as np
import pytest
import torch


def make_regression(spectrum, *, n=1000, noise=1.0, seed=0):
    """Rows ``X`` with ``XᵀX / n = V diag(spectrum) Vᵀ`` exactly, ``y = X w₀ + noise``, and a
    bias-free ``nn.Linear`` set to the least-squares solution ``w*``.

    Returns ``(model, X, y, H)`` with ``H = 2 XᵀX / n`` the Hessian of the mean squared error.
    """
    rng = np.random.default_rng(seed)
    d = len(spectrum)
    q, _ = np.linalg.qr(rng.normal(size=(n, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    x = math.sqrt(n) * q @ np.diag(np.sqrt(spectrum)) @ v.T
    w0 = rng.normal(size=d)
    y = x @ w0 + noise * rng.normal(size=n)
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w_star)[None, :])
    h = 2.0 * x.T @ x / n
    return model, torch.from_numpy(x), torch.from_numpy(y)[:, None], h


def checksum(model: torch.nn.Module) -> str:
    """Hash of every parameter and buffer value, dtype, device, requires_grad flag, the
    grads and the training mode: any change to the model changes it."""
    h = hashlib.sha256()
    for name, t in list(model.named_parameters()) + list(model.named_buffers()):
        h.update(name.encode())
        h.update(str((t.dtype, t.device, t.shape, t.requires_grad)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
        h.update(b"grad:none" if getattr(t, "grad", None) is None else t.grad.cpu().numpy().tobytes())
    h.update(str(model.training).encode())
    return h.hexdigest()


def ar1_chains(rho, n_chains, n, rng):
    """Stationary AR(1) chains x_t = ρ x_{t-1} + sqrt(1-ρ²) ξ_t (unit variance), (n_chains, n)."""
    x = np.empty((n_chains, n))
    x[:, 0] = rng.normal(size=n_chains)
    xi = rng.normal(size=(n_chains, n)) * math.sqrt(1 - rho**2)
    for t in range(1, n):
        x[:, t] = rho * x[:, t - 1] + xi[:, t]
    return x


@pytest.fixture
def regression():
    return make_regression


@pytest.fixture(name="ar1")
def ar1_fixture():
    return ar1_chains


@pytest.fixture(name="checksum")
def checksum_fixture():
    return checksum


@pytest.fixture(autouse=True)
def _one_torch_thread(one_torch_thread):
    # thousands of tiny SGLD steps (see tests/conftest.py)
    yield
