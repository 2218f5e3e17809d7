"""pft against devinterp at matched settings (skipped where devinterp is not installed).

devinterp's SGLD (``SGMCMC.sgld``) takes ``lr = ε``, ``nbeta = n β``, ``localization = γ`` and
makes the same step ``Δw = -(ε/2)(nβ ∇L + γ (w - w*)) + N(0, ε)``; its LLC is
``nbeta (mean sampled loss - L(w*))``. Given pft's chosen ε, γ and nβ, both samplers target
the same stationary law, so their λ̂ must agree within the combined standard error (the
chains are independent: different random streams), and both must sit at the closed form
``½ Σ nβh / (p (1 - εp/4))`` of a linear regression.
"""

import math
import warnings

import numpy as np
import pytest
import torch

devinterp_optim = pytest.importorskip(
    "devinterp.optim", reason="devinterp is not installed (pip install torch==2.13.0 devinterp)"
)

from pft.degrade import TemperedPosterior  # noqa: E402


def devinterp_llc(model, x, y, *, lr, nbeta, localization, burn_in, draws, chains, seed):
    """LLC with devinterp's SGLD step on full-batch gradients: per-chain means of the
    kept losses, as in devinterp's ``compute_llc``."""
    import copy

    with torch.no_grad():
        init = float(torch.nn.functional.mse_loss(model(x), y))
    per_chain = []
    for c in range(chains):
        work = copy.deepcopy(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opt = devinterp_optim.SGMCMC.sgld(work.parameters(), lr=lr, nbeta=nbeta, localization=localization)
        gen = torch.Generator().manual_seed(1000 + seed * 100 + c)
        kept = []
        for step in range(burn_in + draws):
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(work(x), y)
            loss.backward()
            if step >= burn_in:
                kept.append(float(loss.detach()))
            opt.step(noise_generator=gen)
        per_chain.append(nbeta * (np.mean(kept) - init))
    per_chain = np.array(per_chain)
    return per_chain.mean(), per_chain.std(ddof=1) / math.sqrt(chains)


@pytest.mark.slow
def test_pft_and_devinterp_agree_on_linear_regression(regression):
    model, x, y, h = regression([0.6, 0.8, 1.0, 1.2, 1.4, 1.0], n=1000, seed=0)
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y))
    eps, gamma, nbeta = post.step_size_, post.localization_, post.nbeta_
    post.sample(1500, burn_in=500, progress=False)
    lam, se = post.learning_coefficient()
    d_lam, d_se = devinterp_llc(model, x, y, lr=eps, nbeta=nbeta, localization=gamma, burn_in=500, draws=1500,
                                chains=4, seed=0)
    hv = np.linalg.eigvalsh(h)
    p = nbeta * hv + gamma
    exact = 0.5 * np.sum(nbeta * hv / (p * (1 - eps * p / 4)))
    print(f"pft λ̂ = {lam:.4f} ± {se:.4f}; devinterp {d_lam:.4f} ± {d_se:.4f}; exact {exact:.4f}")
    assert abs(lam - d_lam) < 4 * math.hypot(se, d_se)
    assert abs(d_lam - exact) < 4 * d_se + 0.05
    assert abs(lam - exact) < 4 * se
