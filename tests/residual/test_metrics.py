import math

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from pft.residual._metrics import anchor_metrics, mardia, participation_ratio, ridge_r2


def test_anchor_metrics_against_loops():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 4)) + 2.0
    xh = x + 0.3 * rng.standard_normal((50, 4))
    m = anchor_metrics(x, xh)
    r2 = [sum((x[t, i] - xh[t, i]) ** 2 for i in range(4)) for t in range(50)]
    xbar = [sum(x[t, i] for t in range(50)) / 50 for i in range(4)]
    total = sum(sum(x[t, i] ** 2 for i in range(4)) for t in range(50)) / 50 - sum(v * v for v in xbar)
    assert m["mse"] == pytest.approx(sum(r2) / 50, rel=1e-12)
    assert m["fvu"] == pytest.approx(sum(r2) / 50 / total, rel=1e-12)
    assert m["explained_variance"] == pytest.approx(1 - m["fvu"], rel=1e-12)
    dev = [sum((x[t, i] - xbar[i]) ** 2 for i in range(4)) for t in range(50)]
    assert m["explained_variance_legacy"] == pytest.approx(sum(1 - a / b for a, b in zip(r2, dev)) / 50, rel=1e-12)
    cos = [x[t] @ xh[t] / np.linalg.norm(x[t]) / np.linalg.norm(xh[t]) for t in range(50)]
    assert m["cosine"] == pytest.approx(np.mean(cos), rel=1e-12)


def test_mean_prediction_explains_nothing_and_identity_everything():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((200, 3)) * 5 + 10  # far from zero: the pitfall of variance about 0
    assert anchor_metrics(x, np.tile(x.mean(axis=0), (200, 1)))["explained_variance"] == pytest.approx(0.0, abs=1e-12)
    assert anchor_metrics(x, x)["explained_variance"] == 1.0


def _mardia_brute(x):
    """Mardia (1970) straight from the definitions: O(N²) double loop, explicit inverse."""
    n, d = x.shape
    z = x - x.mean(axis=0)
    Sinv = np.linalg.inv(z.T @ z / n)
    b1 = sum((z[s] @ Sinv @ z[t]) ** 3 for s in range(n) for t in range(n)) / n**2
    b2 = sum((z[t] @ Sinv @ z[t]) ** 2 for t in range(n)) / n
    return b1, b2


def test_mardia_equals_brute_force():
    rng = np.random.default_rng(2)
    x = rng.exponential(size=(60, 3)) @ rng.standard_normal((3, 3))
    m = mardia(x, chunk=7)
    b1, b2 = _mardia_brute(x)
    assert m["mardia_skewness"] == pytest.approx(b1, rel=1e-10)
    assert m["mardia_kurtosis"] == pytest.approx(b2, rel=1e-10)
    n, p = 60, 3
    assert m["mardia_kurtosis_null"] == pytest.approx(p * (p + 2) * (n - 1) / (n + 1))
    f = p * (p + 1) * (p + 2) / 6
    assert m["mardia_skewness_z"] == pytest.approx((n * b1 / 6 - f) / math.sqrt(2 * f), rel=1e-10)


def test_mardia_torch_path_equals_numpy():
    x = np.random.default_rng(3).standard_normal((300, 5))
    a = mardia(x)
    b = mardia(x, device="cpu", chunk=64)
    assert b["mardia_skewness"] == pytest.approx(a["mardia_skewness"], rel=1e-12)


def test_mardia_null_calibration_monte_carlo():
    # Under a Gaussian the z-scores are ~N(0,1): over 40 replicates their mean is within
    # 4 SE (1/√40) of 0 and their spread near 1.
    rng = np.random.default_rng(4)
    zk, zs = [], []
    for _ in range(40):
        m = mardia(rng.standard_normal((1000, 4)))
        zk.append(m["mardia_kurtosis_z"])
        zs.append(m["mardia_skewness_z"])
    for z in (np.array(zk), np.array(zs)):
        assert abs(z.mean()) < 4 / math.sqrt(40) + 0.15  # +0.15: O(1/√N) bias of the asymptotics
        assert 0.5 < z.std() < 1.6


def test_participation_ratio():
    assert participation_ratio(np.ones(7)) == pytest.approx(7)
    assert participation_ratio(np.array([1.0, 0, 0])) == pytest.approx(1)


def test_ridge_r2_equals_sklearn_at_fixed_penalty():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((400, 6))
    Y = X @ rng.standard_normal((6, 3)) + rng.standard_normal((400, 3))
    ours = ridge_r2(X[:300], Y[:300], X[300:], Y[300:], alphas=np.array([2.5]))
    pred = Ridge(alpha=2.5).fit(X[:300], Y[:300]).predict(X[300:])
    ref = 1 - np.sum((Y[300:] - pred) ** 2) / np.sum((Y[300:] - Y[:300].mean(axis=0)) ** 2)
    assert ours == pytest.approx(ref, rel=1e-10)


def test_ridge_r2_extremes():
    rng = np.random.default_rng(6)
    X = rng.standard_normal((1000, 5))
    assert ridge_r2(X[:800], X[:800] @ np.ones((5, 2)), X[800:], X[800:] @ np.ones((5, 2))) > 0.999
    Y = rng.standard_normal((1000, 2))
    assert abs(ridge_r2(X[:800], Y[:800], X[800:], Y[800:])) < 0.05


def test_ridge_validation_errors_from_sums_equal_a_direct_loop():
    # Each penalty's validation error is computed from the blocks' statistics, without a
    # pass over the rows; a naive twin fits on the fit block and predicts the validation rows.
    # The blocks' statistics come in two chunks each, merged (as score does).
    from pft.distributed import uniforms
    from pft.residual._metrics import Ridge, joint_moments

    rng = np.random.default_rng(7)
    X = rng.normal(size=(500, 6)) @ rng.normal(size=(6, 6)) + 3.0
    Y = X @ rng.normal(size=(6, 3)) + rng.normal(size=(500, 3)) - 1.0
    val = uniforms(0, 500, 0, 7) < 0.2
    blocks = []
    for m in (~val, val):
        a = joint_moments(X[:200][m[:200]], Y[:200][m[:200]], block=37)[0]
        b = joint_moments(X[200:][m[200:]], Y[200:][m[200:]], block=64)[0]
        blocks.append(a.merge(b))
    acc = Ridge(blocks[0], blocks[1], 6)
    Xf, Yf, Xv, Yv = X[~val], Y[~val], X[val], Y[val]
    mx, my = Xf.mean(axis=0), Yf.mean(axis=0)
    for a, got in zip(acc.alphas, acc.val_err):
        B = np.linalg.solve((Xf - mx).T @ (Xf - mx) + a * np.eye(6), (Xf - mx).T @ (Yf - my))
        want = np.sum((Yv - my - (Xv - mx) @ B) ** 2)
        assert got == pytest.approx(want, rel=1e-9)
    assert len(set(np.round(acc.val_err, 6))) > 3  # the penalties do differ


def test_joint_moments_and_the_reconstruction_map_equal_direct_statistics():
    # [x | r] statistics from blocks, and [x̂ | r] (x̂ = x − r) obtained from them by the linear
    # map, against numpy's own mean/covariance of the stacked rows; r's Ledoit–Wolf terms
    # against Moments of r alone.
    from pft.numeric import Moments
    from pft.residual._metrics import joint_moments, on_reconstruction

    rng = np.random.default_rng(8)
    x = rng.normal(size=(300, 4)) * [1, 2, 3, 4] + 5.0
    r = 0.3 * x[:, ::-1] + rng.standard_exponential(size=(300, 4))
    joint, rm = joint_moments(x, r, block=64)
    w = np.hstack([x, r])
    assert np.allclose(joint.mean, w.mean(axis=0), rtol=1e-12)
    assert np.allclose(joint.comoment, 300 * np.cov(w.T, bias=True), rtol=1e-10)
    ref = Moments.from_array(r)
    assert np.allclose(rm.comoment, ref.comoment, rtol=1e-10)
    assert np.allclose(rm.norm2_z, ref.norm2_z, rtol=1e-9)
    assert rm.norm4 == pytest.approx(ref.norm4, rel=1e-10)
    h = on_reconstruction(joint)
    wh = np.hstack([x - r, r])
    assert np.allclose(h.mean, wh.mean(axis=0), rtol=1e-12)
    assert np.allclose(h.comoment, 300 * np.cov(wh.T, bias=True), rtol=1e-9, atol=1e-9)
