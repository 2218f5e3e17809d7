"""SAE size vs what its residual carries, on MiniLM-L6 block 3.

Three TopK SAEs trained on the same activations for the same budget: a small dictionary with
many active latents, a medium and a large one with fewer. The better ones are then degraded
with isotropic Gaussian noise added to their reconstruction until every FVU equals the worst
one, up to sampling noise (the matched-FVU construction of pft.toy.interpretations), so FVU and MSE cannot
tell them apart. pft's residual scores (held-out non-Gaussian bits, Mardia's kurtosis z, the
top non-Gaussian direction's z, linear predictability) still can: a dictionary too small to
hold the features leaves them in the residual as non-Gaussian structure, where noise is
Gaussian. The patched runs show what each residual does downstream.

A few minutes on two CPU cores. Needs `pft[models]`.

    python examples/sae_sizes.py
    PFT_EXAMPLE_SIZE=tiny python examples/sae_sizes.py     (the CI size)
"""

import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pft.models import capture, load, train_topk_sae, windows  # noqa: E402
from pft.residual import compare, patch_scores, score  # noqa: E402

SIZE = os.environ.get("PFT_EXAMPLE_SIZE", "full")
if SIZE not in ("full", "tiny"):
    sys.exit(f"PFT_EXAMPLE_SIZE must be 'full' or 'tiny'; got {SIZE!r}.")
if SIZE == "tiny":
    SIZES, LAYER, N_WIN, LEN, STEPS, PATCH_WIN = [(32, 8), (128, 4)], 3, 8, 32, 20, 4
else:
    SIZES, LAYER, N_WIN, LEN, STEPS, PATCH_WIN = [(96, 48), (384, 32), (1536, 20)], 3, 96, 64, 400, 32  # (d_sae, k)

t0 = time.perf_counter()
m = load("minilm", progress=False)
X = capture(m, LAYER, windows(m, N_WIN, LEN), progress=False)
batches = m.batches(windows(m, PATCH_WIN, LEN, offset=N_WIN), batch_size=8)
Xt = torch.from_numpy(X)
tv = float(((Xt - Xt.mean(0)) ** 2).sum(1).mean())
saes = {}
for d_sae, k in SIZES:
    sae = train_topk_sae(X, d_sae=d_sae, k=k, n_steps=STEPS, seed=0, progress=False)
    with torch.no_grad():
        fvu = float(((Xt - sae(Xt)) ** 2).sum(1).mean()) / tv
    saes[f"{d_sae} latents, k={k}"] = (sae, fvu)
    print(f"trained {d_sae} latents, k={k}: FVU {fvu:.4f} ({time.perf_counter() - t0:.0f} s)")
target = max(f for _, f in saes.values())


class Noisy(torch.nn.Module):
    """x̂ + σ·n with n ~ N(0, I) drawn afresh per call: raises the FVU by σ²d/total variance."""

    def __init__(self, sae, sigma, seed=0):
        super().__init__()
        self.sae, self.sigma = sae, sigma
        self.gen = torch.Generator().manual_seed(seed)

    def forward(self, x):
        noise = torch.randn(x.shape, generator=self.gen, dtype=x.dtype)
        return self.sae(x) + self.sigma * noise


reports, patches = {}, {}
for name, (sae, fvu) in saes.items():
    # E‖r + σn‖² = ‖r‖² + σ²d: the σ that brings this SAE's FVU up to the worst one's.
    sigma = (max(target - fvu, 0.0) * tv / X.shape[1]) ** 0.5
    interp = Noisy(sae, sigma)
    with torch.no_grad():
        codes = sae.encode(Xt)
        recon = interp(Xt).numpy()
    reports[name] = score(X, recon, codes=codes.numpy(), progress=False)
    patches[name] = patch_scores(
        m.model, m.module(LAYER), batches, interpretation=interp, loss_fn=m.loss_fn,
        n_resamples=4 if SIZE == "full" else 1, progress=False, loss_name=m.loss_name,
    )
    print(f"scored {name} + noise σ = {sigma:.3f} ({time.perf_counter() - t0:.0f} s)")

print()
print(compare(reports))
print()
head = f"{'interpretation':<24}{'FVU':>8}{'L_recon':>10}{'L_gauss':>10}{'ce_loss_rec.':>14}{'gaussian_rec.':>18}"
print(head)
print("-" * len(head))
for name, p in patches.items():
    print(
        f"{name:<24}{reports[name].fvu:>8.4f}{p.loss_of('recon'):>10.4f}{p.loss_of('recon+gaussian'):>10.4f}"
        f"{p.ce_loss_recovered:>14.3f}{p.gaussian_recovered:>11.3f} ± {p.gaussian_recovered_se:.3f}"
    )
fvus = np.array([r.fvu for r in reports.values()])
print(f"\nFVUs after matching span {fvus.min():.4f}–{fvus.max():.4f}; total {time.perf_counter() - t0:.0f} s")
print(
    "The loss here is a distance to the clean embedding, which no token-independent noise can\n"
    "recover (gaussian_recovered < 0 for all); compare the rows with each other."
)
