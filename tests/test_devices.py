"""Every public ``device=`` path, run on each device of ``PFT_TEST_DEVICES`` (issue 7).

CI runs these on the CPU (the torch code path); on a GPU machine
``PFT_TEST_DEVICES=cpu,cuda python -m pytest -m device`` runs the same assertions on CUDA.
Each result is checked against an independent truth — a closed form, an exact (sympy) series,
a numpy twin, or Monte Carlo with its own standard error — and, where the numbers must not
depend on the device, against the same call on the CPU. torch's CUDA generator draws other
numbers than its CPU one, so sampled results are compared statistically: ``|a − b| < 5 SE``
with the estimators' own standard errors. Outputs documented as numpy must come back as numpy
(float64 unless a dtype was asked for) whatever the device.
"""

import json
import math

import numpy as np
import pytest
import sympy
import torch

from pft.degrade import TemperedPosterior, degraded_models
from pft.models import TopKSAE, train_topk_sae
from pft.numeric import GaussianBackground, Moments, laplace
from pft.residual import patch_scores
from pft.residual._metrics import mardia
from pft.scaling import MLPConfig, Study, sample_ensemble
from pft.symbolic import laplace_expansion
from pft.toy import superposition

#: Monte-Carlo agreement in standard errors (two independent estimates: with their combined SE).
Z = 5.0


# many small torch calls (SGLD steps, SAE steps): one intra-op thread (see tests/conftest.py)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _kind(device) -> str:
    return torch.device(device).type


def _relmax(a, b) -> float:
    """max |a − b| relative to max |b| (entrywise relative errors of near-zero entries mean nothing)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), np.finfo(float).tiny))


# ----------------------------------------------------------------------------- pft.scaling
def test_exact_sampler_on_device_reproduces_the_exact_relu_law(device):
    # ReLU at C_W = 2, C_b = 0, one input x = 1: E z² = K⁽¹⁾ = 2 and E z⁴/(E z²)² = 3 (1 + 5/n)^(L−1)
    # exactly (tests/scaling/test_scaling_ensemble.py states the derivation).
    n, L, N = 8, 3, 20000
    cfg = MLPConfig("relu", n, L, C_W=2.0, C_b=0.0)
    res = sample_ensemble(cfg, N, [1.0], seed=11, device=device, progress=False)
    assert isinstance(res.outputs, np.ndarray) and res.outputs.dtype == np.float64 and res.outputs.shape == (N, 1, 1)
    assert isinstance(res.conditional_covariance, np.ndarray) and res.conditional_covariance.dtype == np.float64
    ek, ek_se = res.excess_kurtosis()
    assert abs(ek[0] - (3 * (1 + 5 / n) ** (L - 1) - 3)) < Z * ek_se[0]
    m2, m2_se = res.moment(2)
    assert abs(m2[0] - 2.0) < Z * m2_se[0]
    # Same seed and device: the same numbers (documented).
    again = sample_ensemble(cfg, N, [1.0], seed=11, device=device, progress=False)
    np.testing.assert_array_equal(res.outputs, again.outputs)
    if _kind(device) != "cpu":  # another generator, the same law as on the CPU
        cpu = sample_ensemble(cfg, N, [1.0], seed=11, device="cpu", progress=False)
        ek_c, ek_c_se = cpu.excess_kurtosis()
        assert abs(ek[0] - ek_c[0]) < Z * math.hypot(ek_se[0], ek_c_se[0])


@pytest.mark.parametrize("method", ["exact", "weights"])
def test_multi_input_samplers_on_device_agree_with_the_cpu_in_float32_and_float64(device, method):
    # Two inputs in R³, two output units, tanh off criticality: the (batched Cholesky / bmm) paths.
    # Truth: an independent float64 ensemble drawn on the CPU by the *other* method.
    X = np.array([[1.0, 0.0, 0.5], [0.3, 0.9, -0.4]])
    cfg = MLPConfig("tanh", 12, 3, C_W=1.8, C_b=0.1, input_dim=3, output_width=2)
    other = "weights" if method == "exact" else "exact"
    ref = sample_ensemble(cfg, 6000, X, method=other, seed=2, device="cpu", progress=False)
    for dtype, np_dtype in ((torch.float64, np.float64), (torch.float32, np.float32)):
        res = sample_ensemble(cfg, 6000, X, method=method, seed=1, device=device, dtype=dtype, progress=False)
        assert res.outputs.dtype == np_dtype and res.outputs.shape == (6000, 2, 2)
        assert res.conditional_covariance.shape == (6000, 2, 2)
        for p in (2, 4):
            a, sa = res.moment(p)
            b, sb = ref.moment(p)
            assert np.all(np.abs(a - b) < Z * np.hypot(sa, sb)), (dtype, p, a, b)
        # the cross-input covariance E z(x₁) z(x₂) = E G₁₂
        g12 = res.conditional_covariance[:, 0, 1].astype(np.float64)
        r12 = ref.conditional_covariance[:, 0, 1]
        se = math.hypot(g12.std() / math.sqrt(len(g12)), r12.std() / math.sqrt(len(r12)))
        assert abs(g12.mean() - r12.mean()) < Z * se


def test_study_on_device_matches_the_exact_relu_kurtosis(device):
    res = Study({"activation": "relu", "width": [8], "depth": [3]}, n_networks=20000, seed=3, device=device,
                progress=False).run()
    row = res.rows[0]["result"]
    assert row["exact"] == pytest.approx(3 * (1 + 5 / 8) ** 2 - 3, rel=1e-12)
    assert abs(row["excess_kurtosis"] - row["exact"]) < Z * row["excess_kurtosis_se"]
    assert abs(row["second_moment"] - 2.0) < Z * row["second_moment_se"]


def test_cli_scaling_on_device(device, capsys):
    from pft.cli import main

    rc = main(["scaling", "--widths", "8", "--depths", "2", "--networks", "8000", "--device", device,
               "--json", "--quiet"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    r = rows[0]["result"]
    # L = 2: E z⁴/(E z²)² = 3 (1 + 5/8) exactly
    assert abs(r["excess_kurtosis"] - (3 * (1 + 5 / 8) - 3)) < Z * r["excess_kurtosis_se"]


# ----------------------------------------------------------------------------- pft.degrade
def _regression(spectrum, *, n=1000, noise=1.0, seed=0):
    """The regular toy of tests/degrade/conftest.py: XᵀX/n = V diag(spectrum) Vᵀ exactly, a
    bias-free float64 Linear at the least-squares w*; H = 2XᵀX/n is the MSE's Hessian. numpy data."""
    rng = np.random.default_rng(seed)
    d = len(spectrum)
    q, _ = np.linalg.qr(rng.normal(size=(n, d)))
    v, _ = np.linalg.qr(rng.normal(size=(d, d)))
    x = math.sqrt(n) * q @ np.diag(np.sqrt(spectrum)) @ v.T
    y = x @ rng.normal(size=d) + noise * rng.normal(size=n)
    w_star = np.linalg.lstsq(x, y, rcond=None)[0]
    model = torch.nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.from_numpy(w_star)[None, :])
    return model, x, y[:, None], w_star, 2.0 * x.T @ x / n


def _mse(x, y, w):
    return float(np.mean((y[:, 0] - x @ w) ** 2))


def _batch_means_se(x, n_batches=20):
    c, n = x.shape
    b = n // n_batches
    means = x[:, : b * n_batches].reshape(c, n_batches, b).mean(axis=2).ravel()
    return means.std(ddof=1) / math.sqrt(means.size)


def test_tempered_posterior_on_device_samples_the_exact_gaussian(device):
    # L(w) = L* + ½ (w−w*)ᵀH(w−w*) exactly, so the unadjusted Langevin chain is linear and its
    # stationary law is exactly N(w*, (P − εP²/4)⁻¹), P = nβH + γI (tests/degrade/test_degrade_regular.py).
    # ε p_max = 0.2 keeps the chain fast-mixing; the exact discrete-time law absorbs the step bias.
    model, x, y, w_star, h = _regression([0.8, 1.0, 1.2], seed=1)
    before = [p.detach().clone() for p in model.parameters()]
    gamma = 1.0
    nbeta = 1000 / math.log(1000)
    prec = nbeta * h + gamma * np.eye(3)
    eps = 0.2 / np.linalg.eigvalsh(prec).max()
    post = TemperedPosterior(model, torch.nn.MSELoss(), (x, y), localization=gamma, step_size=eps, seed=5,
                             device=device)
    assert post._flat.flat.device.type == _kind(device) and post._data.inputs.device.type == _kind(device)
    assert post.init_loss_ == pytest.approx(_mse(x, y, w_star), rel=1e-12)
    # power iteration with Hessian-vector products on the device: ‖Hv‖ ≤ h_max for a unit v, and it
    # stops once an iteration changes it by < 1 % (eigenvalues 1.6, 2, 2.4: a slow ratio of 5/6)
    h_max = np.linalg.eigvalsh(h).max()
    assert 0.95 * h_max < post.max_curvature() <= h_max * (1 + 1e-10)
    res = post.sample(4000, n_chains=2, burn_in=200, progress=False)
    assert isinstance(res.losses, np.ndarray) and res.losses.dtype == np.float64 and res.losses.shape == (2, 4000)
    draws = res.draws.cpu().numpy()
    assert draws.shape == (2, 4000, 3) and draws.dtype == np.float64
    ula = np.linalg.inv(prec - eps * prec @ prec / 4)
    lam_, vec = np.linalg.eigh(ula)
    whiten = vec @ np.diag(lam_**-0.5) @ vec.T
    zs = (draws - w_star) @ whiten  # N(0, I) exactly in the stationary law
    for i in range(3):
        assert abs(zs[..., i].mean()) < Z * _batch_means_se(zs[..., i])
        for j in range(i, 3):
            prod = zs[..., i] * zs[..., j]
            assert abs(prod.mean() - (i == j)) < Z * _batch_means_se(prod), (i, j)
    # λ̂ = nβ(E L − L*) against ½ Σ nβh / (p (1 − εp/4)), the chain's exact value
    hv = np.linalg.eigvalsh(h)
    p = nbeta * hv + gamma
    lam, se = post.learning_coefficient()
    assert abs(lam - 0.5 * np.sum(nbeta * hv / (p * (1 - eps * p / 4)))) < Z * se
    # the recorded loss is L at the kept draw (recomputed in numpy)
    assert res.losses[1, 777] == pytest.approx(_mse(x, y, draws[1, 777]), rel=1e-10)
    assert post.loss_at(res.draws[1, 777]) == pytest.approx(_mse(x, y, draws[1, 777]), rel=1e-10)
    # the user's model is untouched and stays where it was
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert next(model.parameters()).device.type == "cpu"


def test_degraded_models_on_device(device):
    model, x, y, w_star, h = _regression([1.0, 1.0], seed=2)
    out = list(degraded_models(model, torch.nn.MSELoss(), (x, y), temperatures=[0, 20.0], n_copies=2,
                               step_size=1e-3, burn_in=50, thin=10, seed=1, device=device, progress=False))
    assert [(m.temperature, m.draw) for m in out] == [(0.0, 0), (20.0, 0), (20.0, 1)]
    for m in out:
        w = next(m.model.parameters())
        assert w.device.type == _kind(device)
        wn = w.detach().cpu().numpy()[0]
        assert m.loss == pytest.approx(_mse(x, y, wn), rel=1e-10)
        assert m.loss_increase == pytest.approx(_mse(x, y, wn) - _mse(x, y, w_star), rel=1e-8, abs=1e-12)
    np.testing.assert_array_equal(next(out[0].model.parameters()).detach().cpu().numpy()[0], w_star)
    assert out[1].loss_increase > 0 and next(model.parameters()).device.type == "cpu"


# ----------------------------------------------------------------------------- pft.residual
class _Readout(torch.nn.Module):
    """u -> h = A u (the hooked layer) -> w·h + b, float64."""

    def __init__(self, A, w, b):
        super().__init__()
        self.layer = torch.nn.Linear(A.shape[1], A.shape[0], bias=False, dtype=torch.float64)
        self.head = torch.nn.Linear(A.shape[0], 1, dtype=torch.float64)
        with torch.no_grad():
            self.layer.weight.copy_(torch.as_tensor(A))
            self.head.weight.copy_(torch.as_tensor(w)[None])
            self.head.bias.fill_(b)

    def forward(self, u):
        return self.head(self.layer(u))


def _sq_loss(out, batch):
    return (out[:, 0] - batch[1]) ** 2


def _readout_setup(N=2000, d=6, seed=0):
    rng = np.random.default_rng(seed)
    A, w, b = rng.normal(size=(d, d)), rng.normal(size=d), 0.3
    U = rng.normal(size=(N, d)) + 0.5
    H = U @ A.T
    y = H @ w + b + rng.normal(size=N)
    Q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    P = Q[:, :4] @ Q[:, :4].T  # the interpretation drops two directions and adds an offset
    c = rng.normal(size=d) * 0.1
    batches = [(torch.as_tensor(U[i : i + 250]), torch.as_tensor(y[i : i + 250])) for i in range(0, N, 250)]
    return dict(A=A, w=w, b=b, H=H, y=y, P=P, c=c, batches=batches)


def _assert_rungs_match(rep, cpu):
    """Deterministic rungs equal the CPU run's; sampled ones agree within their error bars."""
    for k, rung in enumerate(rep.rungs):
        if rung in ("recon+gaussian", "recon+perturbative"):
            assert abs(rep.loss[k] - cpu.loss[k]) < Z * math.hypot(rep.loss_se[k], cpu.loss_se[k])
        else:
            assert rep.loss[k] == pytest.approx(cpu.loss[k], rel=1e-8), rung


def test_patch_scores_on_device_match_the_closed_form_and_the_cpu(device, readout_rung_losses):
    s = _readout_setup()
    A, w, b, H, y, P, c = (s[k] for k in ("A", "w", "b", "H", "y", "P", "c"))

    def run(dev):
        model = _Readout(A, w, b).to(dev)
        Pt, ct = torch.as_tensor(P, device=dev), torch.as_tensor(c, device=dev)
        # batches stay on the CPU: patch_scores moves them to the model's device (its default)
        return patch_scores(model, "layer", s["batches"], interpretation=lambda h: h @ Pt + ct, loss_fn=_sq_loss,
                            background=GaussianBackground(shrinkage=None, singular="project"), n_resamples=4,
                            seed=1, progress=False)

    rep = run(device)
    L, gauss = readout_rung_losses(H, H @ P + c, y, w, b)
    for k, v in L.items():
        assert rep.loss_of(k) == pytest.approx(v, rel=1e-10), k
    assert isinstance(rep.loss, np.ndarray) and rep.loss.dtype == np.float64
    i = rep.rungs.index("recon+gaussian")
    assert abs(rep.loss[i] - gauss) < Z * rep.loss_se[i]
    assert rep.ce_loss_recovered == pytest.approx(
        (L["zero_ablation"] - L["recon"]) / (L["zero_ablation"] - L["clean"]), rel=1e-10)
    if _kind(device) != "cpu":
        _assert_rungs_match(rep, run("cpu"))


def test_patch_scores_with_a_topk_sae_and_perturbative_background_on_device(device):
    # The SAE-shaped interpretation (cast to the decoder's dtype/device) and the perturbative rung.
    s = _readout_setup(N=1500, d=6, seed=4)
    A, w, b = s["A"], s["w"], s["b"]
    sae = train_topk_sae(s["H"], d_sae=12, k=3, n_steps=60, seed=0, progress=False).double()

    def run(dev):
        return patch_scores(_Readout(A, w, b).to(dev), "layer", s["batches"], interpretation=sae.to(dev),
                            loss_fn=_sq_loss, background="perturbative", n_resamples=2, seed=2, progress=False)

    rep = run(device)
    assert "recon+perturbative" in rep.rungs
    # truth for the deterministic rungs: the SAE's formula in numpy on the same weights
    W_enc, b_enc, W_dec, b_dec = (t.detach().cpu().numpy() for t in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec))
    scale = float(sae.scale)
    pre = (s["H"] / scale - b_dec) @ W_enc + b_enc
    codes = np.zeros_like(pre)
    top = np.argsort(-pre, axis=1)[:, :3]
    np.put_along_axis(codes, top, np.maximum(np.take_along_axis(pre, top, 1), 0.0), 1)
    Xhat = (codes @ W_dec + b_dec) * scale
    assert rep.loss_of("recon") == pytest.approx(np.mean((Xhat @ w + b - s["y"]) ** 2), rel=1e-10)
    assert rep.loss_of("recon+residual") == pytest.approx(rep.loss_of("clean"), rel=1e-10)
    if _kind(device) != "cpu":
        _assert_rungs_match(rep, run("cpu"))


def test_mardia_on_device_equals_the_numpy_twin(device):
    # Naive twin: whiten with the 1/N covariance, b₁ = N⁻² Σ_{s,t} (w_s·w_t)³, b₂ = mean ‖w‖⁴.
    rng = np.random.default_rng(0)
    x = np.c_[rng.exponential(size=(700, 2)), rng.normal(size=(700, 3))] @ rng.normal(size=(5, 5))
    got = mardia(x, device=device)
    host = mardia(x)
    z = x - x.mean(0)
    lam, V = np.linalg.eigh(z.T @ z / len(z))
    wt = z @ V / np.sqrt(lam)
    G = wt @ wt.T
    assert got["mardia_skewness"] == pytest.approx(np.mean(G**3), rel=1e-10)
    assert got["mardia_kurtosis"] == pytest.approx(np.mean(np.sum(wt**2, 1) ** 2), rel=1e-10)
    assert got["mardia_dim"] == host["mardia_dim"] == 5
    for k, v in host.items():
        assert type(got[k]) is type(v) and type(v) in (float, int), k  # plain Python numbers, never tensors
        assert got[k] == pytest.approx(v, rel=1e-10), k


# ----------------------------------------------------------------------------- pft.numeric
def _naive_moments(x):
    z = x - x.mean(0)
    sq = np.sum(z * z, 1)
    return x.mean(0), z.T @ z, z.T @ sq, float(sq @ sq)


@pytest.mark.parametrize("precision,tol", [("float64", 1e-10), ("float32", 1e-5), ("tf32", 1e-2)])
def test_moments_of_a_device_tensor_match_numpy(device, precision, tol):
    # float32 sums: ~1e-6 relative; TF32 tensor cores (CUDA only; float32 elsewhere): ~1e-3.
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4000, 8)) @ rng.normal(size=(8, 8)) + 3.0  # a mean to remove
    truth = _naive_moments(x)
    for t in (torch.as_tensor(x, device=device), torch.as_tensor(x, dtype=torch.float32, device=device)):
        m = Moments.from_array(t, precision=precision)
        assert m.count == 4000 and m.d == 8
        for got, want in zip((m.mean, m.comoment, m.norm2_z), truth[:3]):
            assert isinstance(got, np.ndarray) and got.dtype == np.float64
        inexact = 1e-6 if t.dtype == torch.float32 else 0.0  # the input itself was rounded to float32
        assert _relmax(m.mean, truth[0]) < max(tol, inexact)
        assert _relmax(m.comoment, truth[1]) < max(tol, 10 * inexact)
        assert _relmax(m.norm2_z, truth[2]) < max(tol, 10 * inexact)
        assert isinstance(m.norm4, float) and m.norm4 == pytest.approx(truth[3], rel=max(tol, 10 * inexact))
    assert torch.get_float32_matmul_precision() == "highest"  # restored


def test_gaussian_background_fit_on_device_chunks_equals_numpy(device):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3000, 10)) @ rng.normal(size=(10, 10))
    T = torch.as_tensor(x, device=device)
    host = GaussianBackground().fit(x)
    dev = GaussianBackground().fit(T[a : a + 700] for a in range(0, 3000, 700))
    assert _relmax(dev.covariance_, host.covariance_) < 1e-10
    assert dev.shrinkage_ == pytest.approx(host.shrinkage_, rel=1e-9)
    assert isinstance(dev.covariance_, np.ndarray) and dev.covariance_.dtype == np.float64
    # and the unshrunk covariance is numpy's
    raw = GaussianBackground(shrinkage=None).fit(T)
    assert _relmax(raw.covariance_, np.cov(x.T, bias=True)) < 1e-10


def _float(m):
    return np.array(np.array(m.tolist(), dtype=object), dtype=float)


def test_laplace_on_device_equals_the_exact_series(device):
    # Exact truth: pft.symbolic.laplace_expansion of the same action (sympy, rational arithmetic).
    x, y = sympy.symbols("x y", real=True)
    action = (x**2 + x * y / 2 + 3 * y**2 / 4 + x**3 / 5 - x * y**2 / 4 + y**3 / 7 + x**4 / 10
              + x**2 * y**2 / 6 + y**4 / 8 + sympy.exp(x / 3) - 1 - x / 3)
    third = torch.tensor(1 / 3, dtype=torch.float64, device=device)  # a constant living on the device

    def fn(v):
        return (v[0] ** 2 + v[0] * v[1] / 2 + 0.75 * v[1] ** 2 + v[0] ** 3 / 5 - v[0] * v[1] ** 2 / 4
                + v[1] ** 3 / 7 + v[0] ** 4 / 10 + v[0] ** 2 * v[1] ** 2 / 6 + v[1] ** 4 / 8
                + torch.exp(v[0] * third) - 1 - v[0] * third)

    exact = laplace_expansion(action, (x, y), order=2, point=(0, 0))
    num = laplace(fn, [0.05, -0.02], order=2, device=device)
    assert isinstance(num.point, np.ndarray) and num.point.dtype == np.float64
    np.testing.assert_allclose(num.point, 0.0, atol=1e-14)
    np.testing.assert_allclose(num.hessian, _float(exact.hessian), rtol=1e-12)
    assert num.log_det_hessian == pytest.approx(float(exact.log_det_hessian), abs=1e-12)
    for c_num, c_exact in zip(num.coefficients, exact.coefficients):
        assert type(c_num) is float and c_num == pytest.approx(float(c_exact), rel=1e-10, abs=1e-12)
    for a, b in zip(num.mean(2).corrections, exact.mean(2).corrections):
        np.testing.assert_allclose(a, _float(b).ravel(), rtol=1e-10, atol=1e-12)
    for a, b in zip(num.covariance(2).corrections, exact.covariance(2).corrections):
        np.testing.assert_allclose(a, _float(b), rtol=1e-10, atol=1e-12)
    assert num.log_partition(50.0) == pytest.approx(float(exact.log_partition(50)), rel=1e-12)


# ----------------------------------------------------------------------------- pft.models
def test_topk_sae_trains_on_device(device):
    data = superposition(2000, d=16, n_features=32, seed=0)
    X = data.activations
    init_cpu = train_topk_sae(X, d_sae=48, k=4, n_steps=0, seed=3, progress=False)
    init_dev = train_topk_sae(X, d_sae=48, k=4, n_steps=0, seed=3, device=device, progress=False)
    for (name, a), b in zip(init_dev.named_parameters(), init_cpu.parameters()):
        assert a.device.type == _kind(device), name
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=0)  # the initialisation is drawn on the host
    sae = train_topk_sae(X, d_sae=48, k=4, n_steps=200, seed=3, device=device, progress=False)
    assert isinstance(sae, TopKSAE) and not sae.training
    assert all(p.device.type == _kind(device) and p.dtype == torch.float32 and not p.requires_grad
               for p in sae.parameters())
    xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    with torch.no_grad():
        recon = sae(xt).cpu().numpy().astype(np.float64)
    # numpy twin of x̂ = (TopK((x/s − b_dec) W_enc + b_enc)⁺ W_dec + b_dec) s on the trained weights
    W_enc, b_enc, W_dec, b_dec = (t.detach().cpu().double().numpy() for t in (sae.W_enc, sae.b_enc, sae.W_dec,
                                                                               sae.b_dec))
    scale = float(sae.scale)
    pre = (X / scale - b_dec) @ W_enc + b_enc
    top = np.argsort(-pre, axis=1)[:, :4]
    codes = np.zeros_like(pre)
    np.put_along_axis(codes, top, np.maximum(np.take_along_axis(pre, top, 1), 0.0), 1)
    assert _relmax(recon, (codes @ W_dec + b_dec) * scale) < 1e-4
    np.testing.assert_allclose(np.linalg.norm(W_dec, axis=1), 1.0, rtol=1e-5)  # unit decoder rows
    fvu = np.sum((X - recon) ** 2) / np.sum((X - X.mean(0)) ** 2)
    assert fvu < 0.5
    if _kind(device) != "cpu":  # the same budget on the CPU reaches the same quality
        cpu = train_topk_sae(X, d_sae=48, k=4, n_steps=200, seed=3, progress=False)
        with torch.no_grad():
            r_cpu = cpu(torch.as_tensor(X, dtype=torch.float32)).numpy().astype(np.float64)
        fvu_cpu = np.sum((X - r_cpu) ** 2) / np.sum((X - X.mean(0)) ** 2)
        assert abs(fvu - fvu_cpu) < 0.05


def test_the_one_device_rule_for_torch_code():
    # pft._device.torch_device: a given device is validated once; None is the model's own device
    # (its first parameter, else buffer), else the CPU; to_device moves every tensor of a batch.
    from pft._device import module_device, to_device, torch_device
    from pft.errors import InputError

    lin = torch.nn.Linear(2, 2).to(torch.float64)
    assert torch_device(None, default=lin) == lin.weight.device == module_device(lin)
    assert torch_device(None) == torch.device("cpu") == module_device(torch.nn.Identity())
    norm = torch.nn.BatchNorm1d(2, affine=False)  # buffers only
    assert module_device(norm) == norm.running_mean.device
    assert torch_device("cpu", default=lin) == torch.device("cpu")
    with pytest.raises(InputError, match="`device` is 'meta'"):
        torch_device("meta")
    with pytest.raises(InputError, match="`device` must be a torch device"):
        torch_device("gpu0")
    t = torch.ones(2)
    moved = to_device(({"ids": t, "n": 3}, [t], "label"), "cpu")
    assert isinstance(moved, tuple) and isinstance(moved[0], dict) and isinstance(moved[1], list)
    assert moved[0]["ids"].device == t.device and moved[0]["n"] == 3 and moved[2] == "label"
