"""The two ways of drawing a block of networks (torch, imported by the caller's first draw)
and how networks are cut into seeded blocks.

``weights_chunk`` draws every weight and bias; ``exact_chunk`` draws each layer from its exact
conditional Gaussian law given the previous one (see :func:`pft.scaling.sample_ensemble`).
Both take the block's own ``torch.Generator``; a block's seed depends on ``(seed, block index)``
only (:func:`chunk_seed`).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["exact_chunk", "weights_chunk", "chunk_seed", "default_chunk"]



def _cov_factor(G):
    """A batch of factors F with F Fᵀ = G (Cholesky; eigen-square-root where that fails)."""
    import torch

    if G.shape[-1] == 1:
        return torch.sqrt(torch.clamp(G, min=0.0))
    F, info = torch.linalg.cholesky_ex(G)
    bad = info != 0
    if bool(bad.any()):
        evals, evecs = torch.linalg.eigh(G[bad])
        F = F.clone()
        F[bad] = evecs * torch.sqrt(torch.clamp(evals, min=0.0)).unsqueeze(-2)
    return F


def _mix(eps, F):
    """``eps @ Fᵀ`` for a batch: (B, m, k) × (B, k, k); elementwise for one input (bmm of tiny
    matrices is slow)."""
    if F.shape[-1] == 1:
        return eps * F[:, :, 0].unsqueeze(1)
    return eps @ F.transpose(1, 2)


def _gram(s):
    """``sᵀ s`` per network: (B, n, k) → (B, k, k)."""
    if s.shape[-1] == 1:
        return (s * s).sum(dim=1, keepdim=True)
    return s.transpose(1, 2) @ s


def exact_chunk(act, cfg, X, B, gen):
    import torch

    n, k = cfg.width, X.shape[0]
    K1 = cfg.C_b + cfg.C_W * (X @ X.T) / X.shape[1]
    kw = dict(generator=gen, device=X.device, dtype=X.dtype)
    if k == 1:  # one input: (B, n) tensors and a scalar variance per network
        g = K1.reshape(1).expand(B)
        for _ in range(cfg.depth - 1):
            s = act.torch(torch.randn(B, n, **kw) * torch.sqrt(g).unsqueeze(1))
            g = cfg.C_b + (cfg.C_W / n) * (s * s).sum(dim=1)
        out = torch.randn(B, cfg.output_width, **kw) * torch.sqrt(g).unsqueeze(1)
        return out.unsqueeze(2), g.reshape(B, 1, 1)
    G = K1.expand(B, k, k)
    for _ in range(cfg.depth - 1):
        eps = torch.randn(B, n, k, **kw)
        s = act.torch(_mix(eps, _cov_factor(G)))
        G = cfg.C_b + (cfg.C_W / n) * _gram(s)
    eps = torch.randn(B, cfg.output_width, k, **kw)
    return _mix(eps, _cov_factor(G)), G


def weights_chunk(act, cfg, X, B, gen):
    import torch

    n, k, n0 = cfg.width, X.shape[0], X.shape[1]
    kw = dict(generator=gen, device=X.device, dtype=X.dtype)
    sw, sb = math.sqrt(cfg.C_W), math.sqrt(cfg.C_b)
    XT = X.T  # (n0, k)
    if cfg.depth == 1:
        W = torch.randn(B, cfg.output_width, n0, **kw) * (sw / math.sqrt(n0))
        b = torch.randn(B, cfg.output_width, 1, **kw) * sb
        K1 = cfg.C_b + cfg.C_W * (X @ X.T) / n0
        return b + W @ XT, K1.expand(B, k, k)
    W = torch.randn(B, n, n0, **kw) * (sw / math.sqrt(n0))
    z = torch.randn(B, n, 1, **kw) * sb + W @ XT
    for _ in range(cfg.depth - 2):
        s = act.torch(z)
        W = torch.randn(B, n, n, **kw) * (sw / math.sqrt(n))
        z = torch.randn(B, n, 1, **kw) * sb + W @ s
    s = act.torch(z)
    G = cfg.C_b + (cfg.C_W / n) * _gram(s)
    W = torch.randn(B, cfg.output_width, n, **kw) * (sw / math.sqrt(n))
    out = torch.randn(B, cfg.output_width, 1, **kw) * sb + W @ s
    return out, G


def chunk_seed(seed: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


#: Default networks per block. Blocks are the unit of seeding and of splitting across ranks, so the
#: default must not depend on the number of ranks; 1024 gives a 20 000-network cell 20 blocks to
#: share and costs nothing on one process (a 2-core CPU draws n ≤ 128 ensembles as fast in blocks of
#: 313, 1024 or 2048 networks as in one block of 20 000).
_MAX_BLOCK = 1024


def default_chunk(config, method: str, k: int, n_networks: int) -> int:
    n = config.width
    per = n * k if method == "exact" else n * max(n, config.input_dim, k)
    return max(1, min(n_networks, _MAX_BLOCK, (1 << 22) // max(per, 1)))  # ≤ ~32 MiB per tensor
