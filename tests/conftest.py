"""Shared fixtures: the torch devices that device paths are tested on.

``PFT_TEST_DEVICES`` (comma-separated, default ``cpu``) names them. CI runs every device test on
the CPU (the torch code path, checked against numpy); on a GPU machine
``PFT_TEST_DEVICES=cpu,cuda python -m pytest -m device`` runs the same tests on the GPU.
"""

import os

import pytest


def _devices() -> list[str]:
    names = [s.strip() for s in os.environ.get("PFT_TEST_DEVICES", "cpu").split(",") if s.strip()]
    return names or ["cpu"]


@pytest.fixture(params=_devices())
def device(request):
    """A torch device name; tests using it are marked ``device`` (skipped if not available)."""
    import torch

    name = request.param
    if name.startswith("cuda") and not torch.cuda.is_available():
        pytest.skip(f"PFT_TEST_DEVICES names {name!r} but torch sees no CUDA device")
    return name


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "device" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.device)


@pytest.fixture
def one_torch_thread():
    """torch on one intra-op thread for the test: thousands of tiny torch calls (SGLD or SAE
    steps) ran 10-100x slower with threads contending on a shared 2-core machine. Results do not
    depend on the thread count beyond rounding."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def readout_rung_losses(H, Xhat, y, w, b):
    """Closed-form mean squared-error losses of a linear read-out ``h ↦ wᵀh + b`` (target ``y``)
    under each deterministic patch rung, and the Gaussian rung's expectation: with ``r = H − X̂``,
    ``E_z (wᵀ(x̂ + z) + b − y)² = (wᵀx̂ + wᵀμ + b − y)² + wᵀΣw`` for ``z ~ N(μ, Σ)`` (Σ the 1/N
    covariance of the residual, what an unshrunk background fits)."""
    import numpy as np

    R = H - Xhat
    mu = R.mean(0)
    Sigma = (R - mu).T @ (R - mu) / len(R)
    L = {
        "clean": np.mean((H @ w + b - y) ** 2),
        "zero_ablation": np.mean((b - y) ** 2),
        "mean_ablation": np.mean((H.mean(0) @ w + b - y) ** 2),
        "recon": np.mean((Xhat @ w + b - y) ** 2),
        "recon+mean": np.mean((Xhat @ w + mu @ w + b - y) ** 2),
        "recon+residual": np.mean((H @ w + b - y) ** 2),
    }
    return L, L["recon+mean"] + w @ Sigma @ w


@pytest.fixture(name="readout_rung_losses")
def _readout_rung_losses():
    return readout_rung_losses


def run_torchrun(args, timeout=120):
    """``python -m torch.distributed.run`` with 2 CPU ranks on a free local port (one thread each,
    the repository on PYTHONPATH); ``args`` is a script and its arguments, or ``-m module ...``.
    Returns the finished process; the timeout keeps a hung rank from hanging the test."""
    import os
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=2", "--rdzv-backend=c10d",
           "--rdzv-endpoint=127.0.0.1:0", *[str(a) for a in args]]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.getcwd())
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(name="torchrun")
def _torchrun_fixture():
    return run_torchrun
