"""Counts are n_*: train_topk_sae(steps=) is n_steps=, still accepted with a deprecation warning."""

import numpy as np
import pytest
import torch

from pft.errors import InputError, PftDeprecationWarning
from pft.models import train_topk_sae


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
