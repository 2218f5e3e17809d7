"""Counts are n_*: train_topk_sae(steps=) is n_steps=, and run_model_demo's settings steps= /
patch_windows= are n_steps= / n_patch_windows=; the old names are still accepted with a
deprecation warning."""

import numpy as np
import pytest
import torch

from pft.errors import InputError, PftDeprecationWarning
from pft.models import DEFAULTS, DemoResult, run_model_demo, train_topk_sae


def test_train_topk_sae_steps_is_n_steps():
    x = np.random.default_rng(0).standard_normal((64, 6))
    new = train_topk_sae(x, d_sae=8, k=2, n_steps=5, batch_size=16, progress=False)
    with pytest.warns(PftDeprecationWarning, match="`steps` is deprecated; use `n_steps`"):
        old = train_topk_sae(x, d_sae=8, k=2, steps=5, batch_size=16, progress=False)
    for a, b in zip(new.parameters(), old.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(InputError, match="`steps` and `n_steps` are the same argument"):
        train_topk_sae(x, d_sae=8, k=2, steps=5, n_steps=5, progress=False)
    for kw, msg in ((dict(n_steps=True), "`n_steps` must be an integer >= 0; got True."),
                    (dict(seed=-2), "`seed` must be a non-negative integer"),
                    (dict(lr=0.0), "`lr` must be a finite number > 0; got 0.0.")):
        with pytest.raises(InputError) as err:
            train_topk_sae(x, d_sae=8, k=2, progress=False, **kw)
        assert str(err.value).startswith(msg)


def test_run_model_demo_settings_are_n_steps_and_n_patch_windows():
    # (the whole demo under the old names runs in tests/models/test_minilm.py; here, no model is loaded)
    for name, settings in DEFAULTS.items():
        assert {"n_steps", "n_patch_windows"} <= set(settings) and not {"steps", "patch_windows"} & set(settings)
    # the old name is taken for the new one (so only the truly unknown setting is refused) and warns
    with pytest.warns(PftDeprecationWarning, match="`steps` is deprecated; use `n_steps`"):
        with pytest.raises(InputError, match=r"unknown setting\(s\) \['bogus'\]"):
            run_model_demo("minilm", steps=5, bogus=1)
    with pytest.warns(PftDeprecationWarning, match="`patch_windows` is deprecated; use `n_patch_windows`"):
        with pytest.raises(InputError, match=r"unknown setting\(s\) \['bogus'\]"):
            run_model_demo("minilm", patch_windows=5, bogus=1)
    with pytest.raises(InputError, match="`patch_windows` and `n_patch_windows` are the same argument"):
        run_model_demo("minilm", patch_windows=5, n_patch_windows=5)


def test_demo_result_files_with_the_old_setting_names_still_read():
    rep, patch = _tiny_reports()
    res = DemoResult.from_dict({
        "name": "minilm", "title": "t", "module": "0", "seconds": {},
        "settings": {"layer": 3, "steps": 400, "patch_windows": 32},
        "residual": rep.to_dict(), "patch": patch.to_dict(),
    })
    assert res.settings == {"layer": 3, "n_steps": 400, "n_patch_windows": 32}


def _tiny_reports():
    from pft.residual import patch_scores, score

    x = np.random.default_rng(0).standard_normal((200, 4))
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 1))
    t = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    patch = patch_scores(model, "0", [t[:32], t[32:]], interpretation=lambda h: 0.5 * h,
                         loss_fn=lambda out, b: out.pow(2).sum(-1), progress=False)
    return score(x, 0.5 * x, progress=False), patch
