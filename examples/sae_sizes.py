"""SAE size vs what its residual carries, on MiniLM-L6 block 3.

Three TopK SAEs trained on the same activations for the same budget, with k chosen so that
their FVUs come out close: a small dictionary with many active latents, a medium and a large
one with fewer. FVU alone cannot rank them; pft's residual scores (held-out non-Gaussian bits,
Mardia's kurtosis z, linear predictability) and the downstream gaussian_recovered show which
residual still carries structure the model uses. A dictionary too small to hold the features
leaves them in the residual, and a Gaussian with the residual's covariance does not stand in
for it.

A few minutes on two CPU cores. Needs `pft[models]`.

    python examples/sae_sizes.py
"""

import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from pft.models import capture, load, train_topk_sae, windows  # noqa: E402
from pft.residual import compare, patch_scores, score  # noqa: E402

SIZES = [(96, 48), (384, 32), (1536, 20)]  # (d_sae, k)
LAYER, N_WIN, LEN = 3, 96, 64

t0 = time.perf_counter()
m = load("minilm", progress=False)
X = capture(m, LAYER, windows(m, N_WIN, LEN), progress=False)
batches = m.batches(windows(m, 32, LEN, offset=N_WIN), batch_size=8)
Xt = torch.from_numpy(X)
reports, patches = {}, {}
for d_sae, k in SIZES:
    name = f"{d_sae} latents, k={k}"
    sae = train_topk_sae(X, d_sae=d_sae, k=k, steps=400, seed=0, progress=False)
    with torch.no_grad():
        codes = sae.encode(Xt)
        recon = sae.decode(codes).numpy()
    reports[name] = score(X, recon, codes=codes.numpy(), progress=False)
    patches[name] = patch_scores(
        m.model, m.module(LAYER), batches, interpretation=sae, loss_fn=m.loss_fn,
        n_resamples=4, progress=False, loss_name=m.loss_name,
    )
    print(f"trained and scored {name} ({time.perf_counter() - t0:.0f} s)")

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
print(f"\nFVUs span {fvus.min():.3f}–{fvus.max():.3f}; total {time.perf_counter() - t0:.0f} s")
