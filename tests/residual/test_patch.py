"""patch_scores against closed forms, the toy ground truth, and bad input."""

import json
import math

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.numeric import GaussianBackground
from pft.residual import PatchError, PatchReport, patch_scores
from pft.toy import superposition

torch.set_default_dtype(torch.float32)


class Readout(torch.nn.Module):
    """u -> h = A u (the hooked layer) -> w·h + b."""

    def __init__(self, A, w, b, tuple_output=False):
        super().__init__()
        self.layer = torch.nn.Linear(A.shape[1], A.shape[0], bias=False, dtype=torch.float64)
        self.head = torch.nn.Linear(A.shape[0], 1, dtype=torch.float64)
        self.tuple_output = tuple_output
        with torch.no_grad():
            self.layer.weight.copy_(torch.as_tensor(A))
            self.head.weight.copy_(torch.as_tensor(w)[None])
            self.head.bias.fill_(b)
        if tuple_output:
            inner = self.layer
            self.layer = TupleWrap(inner)

    def forward(self, u):
        h = self.layer(u)
        if isinstance(h, tuple):
            h = h[0]
        return self.head(h)


class TupleWrap(torch.nn.Module):
    """Returns (hidden, extra) like a transformers 4.x layer."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, u):
        h = self.inner(u)
        return (h, h.sum())


def sq_loss(out, batch):
    return (out[:, 0] - batch[1]) ** 2


@pytest.fixture(scope="module")
def linear_setup():
    rng = np.random.default_rng(0)
    d, N = 6, 4000
    A = rng.normal(size=(d, d))
    w = rng.normal(size=d)
    b = 0.3
    U = rng.normal(size=(N, d)) + 0.5
    H = U @ A.T
    y = H @ w + b + rng.normal(size=N)
    # Interpretation: a fixed projection that drops two directions, plus an offset.
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    P = Q[:, :4] @ Q[:, :4].T
    c = rng.normal(size=d) * 0.1
    Xhat = H @ P + c
    batches = [(torch.as_tensor(U[i : i + 500]), torch.as_tensor(y[i : i + 500])) for i in range(0, N, 500)]
    return dict(A=A, w=w, b=b, H=H, y=y, P=P, c=c, Xhat=Xhat, batches=batches)


def _interp(P, c):
    Pt, ct = torch.as_tensor(P), torch.as_tensor(c)
    return lambda h: h @ Pt + ct


@pytest.mark.parametrize("tuple_output", [False, True])
def test_linear_readout_matches_closed_form(linear_setup, tuple_output, readout_rung_losses):
    s = linear_setup
    model = Readout(s["A"], s["w"], s["b"], tuple_output=tuple_output)
    rep = patch_scores(
        model, "layer", s["batches"], interpretation=_interp(s["P"], s["c"]), loss_fn=sq_loss,
        background=GaussianBackground(shrinkage=None, singular="project"), n_resamples=4, seed=1, progress=False,
    )
    # the unshrunk ML covariance the background fits: E_z of the loss is closed form
    L, truth = readout_rung_losses(s["H"], s["Xhat"], s["y"], s["w"], s["b"])
    for k, v in L.items():
        assert rep.loss_of(k) == pytest.approx(v, rel=1e-10), k
    i = rep.rungs.index("recon+gaussian")
    assert abs(rep.loss[i] - truth) < 4 * rep.loss_se[i]
    assert rep.loss_se[i] < 0.05 * truth  # the bound is informative, not vacuous
    # The scores are the stated ratios of those means.
    assert rep.ce_loss_recovered == pytest.approx(
        (L["zero_ablation"] - L["recon"]) / (L["zero_ablation"] - L["clean"]), rel=1e-10
    )
    assert rep.mean_ablation_recovered == pytest.approx(
        (L["mean_ablation"] - L["recon"]) / (L["mean_ablation"] - L["clean"]), rel=1e-10
    )
    g_truth = (L["recon"] - truth) / (L["recon"] - L["clean"])
    assert abs(rep.gaussian_recovered - g_truth) < 4 * rep.gaussian_recovered_se
    assert rep.n_rows == 4000 and rep.n_tokens == 4000 and rep.d == 6
    assert math.isnan(rep.perturbative_recovered) and "recon+perturbative" not in rep.rungs
    assert not model.layer._forward_hooks


def test_same_seed_same_numbers_and_report_round_trip(linear_setup, tmp_path):
    s = linear_setup
    model = Readout(s["A"], s["w"], s["b"])
    kw = dict(interpretation=_interp(s["P"], s["c"]), loss_fn=sq_loss, progress=False, n_resamples=2)
    a = patch_scores(model, "layer", s["batches"][:2], seed=3, **kw)
    b = patch_scores(model, model.layer, s["batches"][:2], seed=3, **kw)
    c = patch_scores(model, "layer", s["batches"][:2], seed=4, **kw)
    assert a == b and a != c
    back = PatchReport.from_json(a.to_json())
    assert back == a
    assert json.loads(a.to_json())["rungs"][0] == "clean"
    text = str(a)
    for key in ("zero_ablation", "recon+gaussian", "ce_loss_recovered", "gaussian_recovered", "sanity"):
        assert key in text
    a.plot(str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_kl_columns_match_closed_form(logits_model):
    # The hooked output *is* the logits; zero ablation gives the uniform distribution, so
    # KL(p‖u) = Σ p log p + log V exactly.
    rng = np.random.default_rng(0)
    Z = torch.as_tensor(rng.normal(size=(64, 5)) * 2)
    batches = [(Z[i : i + 16], None) for i in range(0, 64, 16)]
    rep = patch_scores(
        logits_model, "layer", batches, interpretation=lambda x: 0.5 * x,
        loss_fn=lambda out, b: torch.logsumexp(out.logits, -1), progress=False,
    )
    p = torch.softmax(Z, -1).numpy()
    kl_uniform = np.mean(np.sum(p * np.log(p), 1) + np.log(5))
    assert rep.kl[rep.rungs.index("zero_ablation")] == pytest.approx(kl_uniform, rel=1e-10)
    assert rep.kl[0] == pytest.approx(0.0, abs=1e-12)
    assert rep.kl_score == pytest.approx(1 - rep.kl[rep.rungs.index("recon")] / kl_uniform, rel=1e-10)


def _toy_task(seed):
    """Two interpretations of the same activations, same FVU, residuals independent of x̂.

    X = signal + g1 + g2a + c·g2b (g's independent Gaussians). "oracle+noise": x̂ = signal + g1,
    r = g2a + c·g2b (pure noise). "missing": x̂ = signal − s_M + g1 + c·g2b, r = g2a + s_M
    (the features M are missing). c makes the FVUs equal exactly. The task reads the codes of
    M and of three more features from the activations (readout = their feature directions),
    loss = squared error against the toy's true codes.
    """
    data = superposition(8000, d=32, n_features=64, background_fraction=0.01, seed=seed)
    rng = np.random.default_rng([seed, 7])
    N, d = data.activations.shape
    var = data.codes.var(axis=0)
    M = list(np.argsort(-var)[:3])
    S = M + list(np.argsort(-var)[3:6])
    sig = data.signal
    sM = data.codes[:, M] @ data.features[M]
    scale = math.sqrt(np.mean(np.sum(sM**2, 1)) / d)
    g1 = rng.normal(size=(N, d)) * scale
    g2a = rng.normal(size=(N, d)) * scale
    g2b = rng.normal(size=(N, d)) * scale
    target = np.mean(np.sum((g2a + sM) ** 2, 1))
    A_, B_, C_ = np.mean(np.sum(g2b**2, 1)), np.mean(np.sum(g2a * g2b, 1)), np.mean(np.sum(g2a**2, 1)) - target
    c = (-B_ + math.sqrt(B_ * B_ - A_ * C_)) / A_
    X = sig + g1 + g2a + c * g2b
    recon = {"oracle+noise": sig + g1, "missing": sig - sM + g1 + c * g2b}
    T = data.codes[:, S]
    W = data.features[S]
    return X, recon, T, W


@pytest.mark.parametrize("seed", [0, 1])
def test_toy_gaussian_recovered_separates_noise_from_missing_features(seed):
    X, recon, T, W = _toy_task(seed)
    tv = np.mean(np.sum(X**2, 1)) - np.sum(X.mean(0) ** 2)
    fvu = {k: np.mean(np.sum((X - v) ** 2, 1)) / tv for k, v in recon.items()}
    assert fvu["oracle+noise"] == pytest.approx(fvu["missing"], rel=1e-9)

    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(X.shape[1], len(W), bias=False, dtype=torch.float64))
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(W))
    Xt, Tt = torch.as_tensor(X), torch.as_tensor(T)
    batches = [(Xt[i : i + 1000], Tt[i : i + 1000]) for i in range(0, len(X), 1000)]
    reps = {
        k: patch_scores(
            model, "0", batches, interpretation=v, loss_fn=lambda out, b: ((out - b[1]) ** 2).sum(-1),
            n_resamples=2, seed=seed, progress=False,
        )
        for k, v in recon.items()
    }
    good, bad = reps["oracle+noise"], reps["missing"]
    assert abs(good.gaussian_recovered - 1) < 4 * good.gaussian_recovered_se
    assert good.gaussian_recovered_se < 0.1
    assert bad.gaussian_recovered < 0.3
    assert bad.gaussian_recovered + 4 * bad.gaussian_recovered_se < good.gaussian_recovered


# ---------------------------------------------------------------------- bad input
class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a = torch.nn.Linear(3, 3)
        self.unused = torch.nn.Linear(3, 3)
        self.b = torch.nn.Linear(3, 1)
        self.drop = torch.nn.Dropout(0.5)

    def forward(self, x):
        return self.b(self.drop(self.a(x)))


def _tiny_batches():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, generator=g)
    return [(x[i : i + 16], torch.zeros(16)) for i in range(0, 64, 16)]


def _hooks(m):
    return sum(len(mod._forward_hooks) for mod in m.modules())


def _run(model, module="a", interp=lambda h: h * 0.9, loss=lambda out, b: (out[:, 0] - b[1]) ** 2, **kw):
    return patch_scores(model, module, _tiny_batches(), interpretation=interp, loss_fn=loss, progress=False, **kw)


def test_unknown_module_path_names_it_and_suggests():
    m = Tiny().eval()
    with pytest.raises(InputError, match=r"`module` 'aa' is not a submodule.*Did you mean 'a'"):
        _run(m, module="aa")
    with pytest.raises(InputError, match="not a submodule of `model`"):
        _run(m, module=torch.nn.Linear(3, 3))
    assert _hooks(m) == 0


def test_module_not_called_raises_and_removes_hook():
    m = Tiny().eval()
    with pytest.raises(InputError, match="'unused' was not called"):
        _run(m, module="unused")
    assert _hooks(m) == 0


def test_bad_interpretation_shape_raises_and_removes_hook():
    m = Tiny().eval()
    with pytest.raises(InputError, match=r"returned shape \(16, 2\) for activations of shape \(16, 3\)"):
        _run(m, interp=lambda h: h[:, :2])
    assert _hooks(m) == 0
    with pytest.raises(InputError, match=r"expects d_in = 5 but the activations have d = 3"):
        _run(m, interp=np.zeros((64, 5)))
    with pytest.raises(InputError, match="has 10 rows but"):
        _run(m, interp=np.zeros((10, 3)))
    assert _hooks(m) == 0


def test_non_finite_values_raise_and_remove_hook():
    m = Tiny().eval()
    with pytest.raises(InputError, match="`interpretation` must return finite values; got 48 NaN/inf"):
        _run(m, interp=lambda h: h / 0.0)
    assert _hooks(m) == 0
    with pytest.raises(PatchError, match="non-finite on 16 rows in the clean run"):
        _run(m, loss=lambda out, b: out[:, 0] * float("nan"))
    assert _hooks(m) == 0

    class LogHead(torch.nn.Module):  # log of the hooked output: zero ablation gives -inf
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Identity()

        def forward(self, x):
            return torch.log(self.a(x).abs())

    lm = LogHead()
    with pytest.raises(PatchError, match="zero_ablation run"):
        patch_scores(lm, "a", _tiny_batches(), interpretation=lambda h: 0.9 * h, loss_fn=lambda o, b: o.sum(-1), progress=False)
    assert _hooks(lm) == 0


def test_nondeterministic_model_fails_the_sanity_check():
    m = Tiny().train()  # dropout on
    with pytest.raises(PatchError, match="sanity check failed.*model.eval"):
        _run(m)
    assert _hooks(m) == 0


def test_bad_arguments():
    m = Tiny().eval()
    with pytest.raises(InputError, match="residual x − x̂ is constant"):
        _run(m, interp=lambda h: h)
    with pytest.raises(InputError, match="`n_resamples`"):
        _run(m, n_resamples=0)
    with pytest.raises(InputError, match="`background`"):
        _run(m, background="laplace")
    with pytest.raises(InputError, match="`batches` is empty"):
        patch_scores(m, "a", [], interpretation=lambda h: h, loss_fn=lambda o, b: o, progress=False)
    with pytest.raises(InputError, match="single Tensor"):
        patch_scores(m, "a", torch.zeros(4, 3), interpretation=lambda h: h, loss_fn=lambda o, b: o, progress=False)
    with pytest.raises(InputError, match="`model` must be a torch.nn.Module"):
        patch_scores(lambda x: x, "a", _tiny_batches(), interpretation=lambda h: h, loss_fn=lambda o, b: o, progress=False)
    with pytest.raises(InputError, match="`interpretation` must be"):
        _run(m, interp=object())


def test_perturbative_rung_on_a_gaussian_residual_matches_the_gaussian_rung():
    # The oracle's residual is exactly Gaussian: the perturbative background's correction is
    # (near) zero, so its rung must agree with the Gaussian rung within their errors.
    X, recon, T, W = _toy_task(2)
    model = torch.nn.Sequential(torch.nn.Identity(), torch.nn.Linear(X.shape[1], len(W), bias=False, dtype=torch.float64))
    with torch.no_grad():
        model[1].weight.copy_(torch.as_tensor(W))
    Xt, Tt = torch.as_tensor(X), torch.as_tensor(T)
    batches = [(Xt[i : i + 2000], Tt[i : i + 2000]) for i in range(0, len(X), 2000)]
    rep = patch_scores(
        model, "0", batches, interpretation=recon["oracle+noise"], loss_fn=lambda out, b: ((out - b[1]) ** 2).sum(-1),
        background="perturbative", n_resamples=2, seed=2, progress=False,
    )
    assert "recon+perturbative" in rep.rungs and "perturbative" in rep.background
    ig, ip = rep.rungs.index("recon+gaussian"), rep.rungs.index("recon+perturbative")
    assert abs(rep.loss[ig] - rep.loss[ip]) < 4 * math.hypot(rep.loss_se[ig], rep.loss_se[ip])
    assert abs(rep.perturbative_recovered - 1) < 4 * rep.perturbative_recovered_se
