"""A small TopK sparse autoencoder in plain torch, for the demos (seeded, fixed budget)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pft._deprecation import renamed_keywords
from pft._device import tensor_from_numpy, torch_device
from pft._validate import as_matrix, check_float, check_int, check_seed
from pft.errors import InputError

__all__ = ["TopKSAE", "train_topk_sae"]


@dataclass(frozen=True)
class _Cfg:
    d_in: int
    d_sae: int
    k: int


def _module_base():
    import torch

    return torch.nn.Module


class TopKSAE(_module_base()):  # type: ignore[misc]
    """``x̂ = TopK(W_encᵀ(x − b_dec) + b_enc) W_dec + b_dec`` (Gao et al. 2024).

    It has the SAELens shape (``encode``, ``decode``, ``W_enc`` (d, m), ``W_dec`` (m, d),
    ``b_dec``, ``cfg.d_in``), so :func:`pft.residual.as_interpretation` takes it as is. The
    activations are divided by a fixed ``scale`` (set at training time so that the mean squared
    norm of centred inputs is ``d_in``) on the way in and multiplied back on the way out.
    """

    def __init__(self, d_in: int, d_sae: int, k: int, *, scale: float = 1.0) -> None:
        import torch

        super().__init__()
        self.cfg = _Cfg(int(d_in), int(d_sae), int(k))
        self.W_enc = torch.nn.Parameter(torch.zeros(d_in, d_sae))
        self.b_enc = torch.nn.Parameter(torch.zeros(d_sae))
        self.W_dec = torch.nn.Parameter(torch.zeros(d_sae, d_in))
        self.b_dec = torch.nn.Parameter(torch.zeros(d_in))
        self.register_buffer("scale", torch.tensor(float(scale)))

    def encode(self, x):
        """(n, d_sae) sparse codes: the k largest pre-activations per token, ReLU'd."""
        import torch

        pre = (x / self.scale - self.b_dec) @ self.W_enc + self.b_enc
        vals, idx = torch.topk(pre, self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))

    def decode(self, codes):
        """(n, d_in) reconstruction in the activations' units."""
        return (codes @ self.W_dec + self.b_dec) * self.scale

    def forward(self, x):
        return self.decode(self.encode(x))

    def save(self, path: Any) -> str:
        """Write ``pft_sae.json`` and ``sae_weights.safetensors`` to the directory ``path``
        (read back by :meth:`load` and :func:`pft.interop.load_sae`)."""
        import json
        import os

        from safetensors.torch import save_file

        p = os.fspath(path)
        os.makedirs(p, exist_ok=True)
        with open(os.path.join(p, "pft_sae.json"), "w") as fh:
            json.dump({"architecture": "pft-topk", "d_in": self.cfg.d_in, "d_sae": self.cfg.d_sae, "k": self.cfg.k}, fh)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()},
                  os.path.join(p, "sae_weights.safetensors"))
        return p

    @classmethod
    def load(cls, path: Any, *, device: Any = None) -> "TopKSAE":
        """The SAE :meth:`save` wrote to ``path``, in eval mode."""
        import json
        import os

        from safetensors.torch import load_file

        p = os.fspath(path)
        with open(os.path.join(p, "pft_sae.json")) as fh:
            c = json.load(fh)
        if c.get("architecture") != "pft-topk":
            raise InputError(f"{p!r}: pft_sae.json has architecture {c.get('architecture')!r}; expected 'pft-topk'.")
        sae = cls(int(c["d_in"]), int(c["d_sae"]), int(c["k"]))
        sae.load_state_dict(load_file(os.path.join(p, "sae_weights.safetensors")))
        if device is not None:
            sae.to(torch_device(device))
        for q in sae.parameters():
            q.requires_grad_(False)
        return sae.eval()


@renamed_keywords(steps="n_steps")
def train_topk_sae(
    activations: Any,
    *,
    d_sae: int,
    k: int,
    n_steps: int = 600,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    device: Any = None,
    progress: bool = True,
) -> TopKSAE:
    """Train a :class:`TopKSAE` on (N, d) activations with Adam for a fixed number of steps.

    Parameters
    ----------
    activations : (N, d) array or tensor
    d_sae : int
        Dictionary size.
    k : int
        Active latents per token.
    n_steps, batch_size : int
        The fixed budget: ``n_steps`` Adam steps on batches of ``batch_size`` rows drawn with
        replacement (``steps=`` still works, deprecated).
    lr : float
    seed : int, default 0
        Seeds the initialisation and the batches (same seed, same SAE on the same device).
    device : str or torch.device, optional
        Where the SAE is trained (default: the CPU).
    progress : bool, default True

    Returns
    -------
    TopKSAE
        In eval mode, float32, on ``device``.

    Notes
    -----
    Initialisation: decoder rows random unit vectors, encoder its transpose, ``b_dec`` the
    mean of the (scaled) data. Loss: mean squared error of the scaled reconstruction. After
    every step the decoder rows are renormalised to unit norm (their scale lives in the codes).
    No auxiliary dead-latent loss: with a short budget some latents stay dead, which the
    report's ``dead_fraction`` shows.

    References
    ----------
    .. [1] L. Gao et al., "Scaling and evaluating sparse autoencoders", arXiv:2406.04093 (2024).

    Examples
    --------
    >>> import numpy as np
    >>> from pft.toy import superposition
    >>> data = superposition(4000, d=16, n_features=32, seed=0)
    >>> sae = train_topk_sae(data.activations, d_sae=64, k=4, n_steps=300, progress=False)
    >>> import torch
    >>> x = torch.as_tensor(data.activations, dtype=torch.float32)
    >>> fvu = float(((x - sae(x)) ** 2).sum(1).mean() / ((x - x.mean(0)) ** 2).sum(1).mean())
    >>> fvu < 0.5
    True
    """
    import torch

    X = as_matrix(activations, "activations", min_rows=2, dtype=np.float32)
    N, d = X.shape
    for name, v, lo in (("d_sae", d_sae, 1), ("k", k, 1), ("n_steps", n_steps, 0), ("batch_size", batch_size, 1)):
        check_int(v, name, minimum=lo)
    seed = check_seed(seed)
    if k > d_sae:
        raise InputError(f"`k` = {k} exceeds `d_sae` = {d_sae}; a TopK SAE keeps k of its d_sae latents.")
    device = torch_device(device)
    lr = check_float(lr, "lr", minimum=0, exclusive_minimum=True)
    gen = torch.Generator().manual_seed(int(seed))
    Xt = tensor_from_numpy(X)
    centred = Xt - Xt.mean(0)
    scale = math.sqrt(float((centred**2).sum(1).mean()) / d) or 1.0
    sae = TopKSAE(d, d_sae, k, scale=scale)
    with torch.no_grad():
        W = torch.randn(d_sae, d, generator=gen)
        W /= W.norm(dim=1, keepdim=True)
        sae.W_dec.copy_(W)
        sae.W_enc.copy_(W.T)
        sae.b_dec.copy_(Xt.mean(0) / scale)
    sae.to(device)
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    idx = torch.randint(0, N, (int(n_steps), int(batch_size)), generator=gen)
    Xd = Xt.to(device)
    it = range(int(n_steps))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="TopK SAE", unit="step")
    sae.train()
    for s in it:
        xb = Xd[idx[s].to(device)]
        loss = ((sae(xb) - xb) ** 2).sum(-1).mean() / (scale * scale)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            sae.W_dec /= sae.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-12)
    sae.eval()
    for p in sae.parameters():
        p.requires_grad_(False)
    return sae
