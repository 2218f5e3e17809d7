"""The residual results follow the house conventions: ``plot(path=None, *, ax=None) -> Figure``
without pyplot side effects, and ``from_json(to_json())`` gives the same result."""

import json
import warnings

import numpy as np
import pytest
import torch

from pft.residual import AcrossReport, PatchReport, PowerResult, ResidualReport, patch_scores, score


def _residual_report():
    x = np.random.default_rng(0).standard_normal((400, 4))
    return score(x, 0.5 * x, progress=False)


def _patch_report(logits=False):
    torch.manual_seed(0)
    if logits:  # a 3-way classifier: logits, so a KL panel
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 3))
        x = torch.randn(96, 4)
        batches = [(x[i:i + 32], torch.randint(0, 3, (32,))) for i in range(0, 96, 32)]
        return patch_scores(model, "0", batches, interpretation=lambda h: 0.5 * h, progress=False,
                            loss_fn=lambda out, b: torch.nn.functional.cross_entropy(out, b[1], reduction="none"),
                            logits=lambda out: out)
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(4, 1))
    x = torch.randn(96, 4)
    return patch_scores(model, "0", [x[:48], x[48:]], interpretation=lambda h: 0.5 * h,
                        loss_fn=lambda out, b: out.pow(2).sum(-1), progress=False)


def _power_result():
    a = np.array
    return PowerResult(latent_tokens=a([100, 100]), latent_group=a([0, 0]), latent=a([3, 5]),
                       latent_firing_rate=a([0.1, 0.05]), latent_energy_share=a([0.05, 0.02]),
                       latent_best_cos=a([0.95, 0.4]), latent_found=a([True, False]), group_tokens=a([100]),
                       group_target_rate=a([0.1]), group_bits=a([0.2]), group_bits_se=a([0.01]),
                       group_twin_bits=a([0.0]), group_twin_bits_se=a([0.01]), group_separation=a([14.1]),
                       group_recall=a([0.5]), threshold=0.9, n_directions=4)


def _across_report():
    rows = tuple({"interpretation": n, "temperature": t, "draw": k, "loss_increase": 0.1 * t,
                  "fvu": 0.2 + 0.01 * k, "nongaussian_bits": 0.1 * t + 0.01 * k, "nongaussian_bits_se": 0.01}
                 for n in ("a", "b") for t in (0.0, 1.0) for k in (0, 1))
    return AcrossReport(rows=rows, interpretations=("a", "b"), temperatures=(0.0, 1.0))


BUILDERS = {"ResidualReport": _residual_report, "PatchReport": _patch_report, "PatchReport+KL": lambda: _patch_report(True),
            "PowerResult": _power_result, "AcrossReport": _across_report}


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def result(request):
    return BUILDERS[request.param]()


def test_from_json_inverts_to_json(result):
    again = type(result).from_json(result.to_json())
    assert type(again) is type(result)
    # NaN != NaN, so the dicts are compared as JSON text
    assert json.dumps(again.to_dict()) == json.dumps(result.to_dict())
    assert str(again) == str(result)


def test_plot_returns_a_figure_without_pyplot_side_effects(result, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    backend, before = matplotlib.get_backend(), plt.get_fignums()
    fig = result.plot()
    assert isinstance(fig, Figure) and fig.axes and plt.get_fignums() == before
    out = tmp_path / "r.png"
    assert isinstance(result.plot(out), Figure) and out.read_bytes()[:4] == b"\x89PNG"
    # one caller's Axes gets the main panel; the figure is the caller's and nothing else is added
    own = Figure()
    ax = own.add_subplot()
    assert result.plot(ax=ax) is own and own.axes == [ax] and ax.has_data()
    # a sequence of Axes gets every panel
    n = len(fig.axes) - (1 if isinstance(result, PowerResult) else 0)  # the colour bar is an axes of its own
    own = Figure()
    axes = list(own.subplots(1, n, squeeze=False)[0])
    assert result.plot(ax=axes) is own and all(a.has_data() for a in axes)
    assert plt.get_fignums() == before and matplotlib.get_backend() == backend


def test_across_metric_stays_keyword_only():
    rep = _across_report()
    fig = rep.plot(metric="fvu")
    assert fig.axes[0].get_ylabel() == "fvu"
    with pytest.raises(TypeError):
        rep.plot(None, None, "fvu")


def test_a_bad_ax_is_refused_by_name():
    from pft.errors import InputError

    with pytest.raises(InputError, match="`ax`"):
        _power_result().plot(ax="left")
    with pytest.raises(InputError, match="`ax`"):
        _power_result().plot(ax=[])


def test_panels_pads_or_cuts_a_sequence_of_axes():
    from matplotlib.figure import Figure

    from pft._plotting import panels

    own = Figure()
    a, b, c = own.subplots(1, 3)
    fig, axes = panels([a, b, c], 2, figsize=(4, 2))
    assert fig is own and axes == [a, b]
    fig, axes = panels((a,), 3, figsize=(4, 2))
    assert fig is own and axes == [a, None, None]
    fig, axes = panels(None, 5, figsize=(4, 2), nrows=2)  # 2 rows of 3 axes, the sixth not handed out
    assert len(axes) == 5 and len({ax.figure for ax in axes}) == 1 and fig is not own
    assert fig.get_size_inches().tolist() == [4, 2]
