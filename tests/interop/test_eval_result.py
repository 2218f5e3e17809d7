"""EvalResult follows the house conventions: one figure from ``plot(path=None, *, ax=None)``,
the two files from ``save_plots(directory)`` (``plot(directory)`` still works, deprecated), and
``from_json(to_json())`` gives the same result."""

import json
import os
import pathlib

import numpy as np
import pytest
import torch

from pft.errors import PftDeprecationWarning
from pft.interop import EvalResult
from pft.residual import patch_scores, score


@pytest.fixture(scope="module")
def result():
    x = np.random.default_rng(0).standard_normal((400, 4))
    rep = score(x, 0.5 * x, progress=False)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 3))
    t = torch.randn(96, 4)
    batches = [(t[i:i + 32], torch.randint(0, 3, (32,))) for i in range(0, 96, 32)]
    prep = patch_scores(model, "0", batches, interpretation=lambda h: 0.5 * h, progress=False, logits=lambda o: o,
                        loss_fn=lambda out, b: torch.nn.functional.cross_entropy(out, b[1], reduction="none"))
    return EvalResult(model="m", sae="s", hook="0", n_seqs=3, context=32, excluded_token_ids=(0, 1), score=rep,
                      patch=prep)


def test_from_json_inverts_to_json(result):
    again = EvalResult.from_json(result.to_json())
    assert json.dumps(again.to_dict()) == json.dumps(result.to_dict())
    assert again.excluded_token_ids == (0, 1) and str(again) == str(result)


def test_plot_is_one_figure_of_both_reports(result, tmp_path):
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    before = plt.get_fignums()
    fig = result.plot()
    assert isinstance(fig, Figure) and len(fig.axes) == 4  # loss, KL, spectrum, kurtosis z
    assert fig.axes[0].get_xlabel() == "mean loss" and fig.axes[2].get_ylabel() == "eigenvalue of residual covariance"
    out = tmp_path / "eval.png"
    result.plot(out)
    assert out.read_bytes()[:4] == b"\x89PNG"
    own = Figure()
    ax = own.add_subplot()
    assert result.plot(ax=ax) is own and own.axes == [ax] and ax.has_data()
    assert plt.get_fignums() == before


def test_save_plots_writes_both_files_and_the_old_spelling_warns(result, tmp_path):
    paths = result.save_plots(tmp_path / "plots")
    assert [os.path.basename(p) for p in paths] == ["score.png", "patch.png"]
    assert all(pathlib.Path(p).read_bytes()[:4] == b"\x89PNG" for p in paths)
    with pytest.warns(PftDeprecationWarning, match="save_plots"):
        again = result.plot(str(tmp_path / "old"))
    assert [os.path.basename(p) for p in again] == ["score.png", "patch.png"] and all(map(os.path.exists, again))
