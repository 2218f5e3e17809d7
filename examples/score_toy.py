"""Score interpretations of toy activations with pft's Python API.

Run:  python examples/score_toy.py [out_dir]        (about 20 s on a 2-core laptop CPU)
      PFT_EXAMPLE_SIZE=tiny python examples/score_toy.py [out_dir]     (the CI size)

To score your own sparse autoencoder, replace the toy data by your arrays:

    acts  = ...   # (N, d) activations at the hooked site, e.g. the residual stream
    recon = ...   # (N, d) what your SAE / transcoder / circuit reconstructs for them
    codes = ...   # optional (N, m) SAE feature activations, for L0 and dead features
    report = pft.residual.score(acts, recon, codes=codes)
    print(report)

A few things matter in practice:
- Use the same tokens you would use for FVU, but exclude BOS/special tokens: their huge norms
  dominate every second-moment statistic.
- Score the activations the SAE actually saw (if it normalises its inputs, normalise both).
- `holdout` keeps fitting and scoring on different tokens. Tokens are split at random; if your
  tokens come from a few long documents, split by document yourself.
"""

import os
import sys

import numpy as np

import pft.residual
import pft.toy

SIZE = os.environ.get("PFT_EXAMPLE_SIZE", "full")
if SIZE not in ("full", "tiny"):
    sys.exit(f"PFT_EXAMPLE_SIZE must be 'full' or 'tiny'; got {SIZE!r}.")
out = sys.argv[1] if len(sys.argv) > 1 else "."
os.makedirs(out, exist_ok=True)
N, D, F, FVU = (20000, 64, 256, 0.15) if SIZE == "full" else (4000, 16, 48, 0.25)

# 1. Ground truth: F sparse, heavy-tailed features in a D-dimensional space (superposition),
#    plus a Gaussian background that no dictionary can (or should) reconstruct.
data = pft.toy.superposition(N, d=D, n_features=F, seed=0)
print(data)

# 2. Four interpretations with *the same* fraction of variance unexplained (FVU = 0.15; 0.25 at
#    the tiny size, where 4 missing features of 48 leave more than 0.15).
interps = pft.toy.interpretations(data, fvu=FVU, n_missing=4, n_spurious=4, seed=0)

# 3. Score each one. Everything fitted is fitted on 80 % of the tokens and evaluated on 20 %.
reports = {name: pft.residual.score(data.activations, it.reconstruction, progress=False) for name, it in interps.items()}

# 4. MSE and FVU tie; the non-Gaussian scores do not.
missing = interps["missing"]
truth = {"missing": data.features[list(missing.missing)], "spurious": interps["spurious"].spurious_directions}
print(pft.residual.compare(reports, truth=truth))

# 5. The directions pft reports for the 'missing' interpretation are the features it dropped.
rep = reports["missing"]
cos = np.abs(rep.nongaussian_directions[:4] @ data.features[list(missing.missing)].T)
print("\nbest |cos| between reported directions and the dropped features:", np.round(cos.max(axis=0), 3))

# 6. The whole report, as a person reads it, and as JSON and a plot for later.
print()
print(rep)
rep.plot(os.path.join(out, "score_toy_missing.png"))
rep.to_json(os.path.join(out, "score_toy_missing.json"))
print(f"\nplot: {out}/score_toy_missing.png; report: {out}/score_toy_missing.json")
