"""DemoResult is a JsonResult: ``from_json(to_json())`` gives the same reports and settings (the
SAE is not written: it comes back as None)."""

import json

import numpy as np
import torch

from pft._results import JsonResult
from pft.models import DemoResult, TopKSAE
from pft.residual import patch_scores, score


def test_demo_result_round_trips_through_json():
    x = np.random.default_rng(0).standard_normal((400, 4))
    rep = score(x, 0.5 * x, progress=False)
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 1))
    t = torch.randn(96, 4, generator=torch.Generator().manual_seed(0))
    prep = patch_scores(model, "0", [t[:48], t[48:]], interpretation=lambda h: 0.5 * h,
                        loss_fn=lambda out, b: out.pow(2).sum(-1), progress=False)
    res = DemoResult(name="minilm", title="t", module="0", settings={"layer": 3, "exclude_positions": (0,)},
                     residual=rep, patch=prep, sae=TopKSAE(4, 8, 2), seconds={"score": np.float64(1.5)})
    assert isinstance(res, JsonResult)
    again = DemoResult.from_json(res.to_json())
    assert json.dumps(again.to_dict()) == json.dumps(res.to_dict())
    assert again.sae is None and again.settings == {"layer": 3, "exclude_positions": [0]}
    assert again.residual == rep and again.patch == prep and again.seconds == {"score": 1.5}
    assert "PatchReport" in str(again)
