import itertools
import math

import numpy as np
import pytest

from pft.errors import InputError, NotFittedError
from pft.numeric import PerturbativeBackground, edgeworth_polynomial, kurtosis_directions
from pft.numeric._cumulant_tensors import sample_cumulants


def _he3(y, i, j, k):
    d = np.eye(y.shape[1])
    return y[:, i] * y[:, j] * y[:, k] - d[i, j] * y[:, k] - d[i, k] * y[:, j] - d[j, k] * y[:, i]


def _he4(y, i, j, k, l):
    d = np.eye(y.shape[1])
    yy = lambda a, b: y[:, a] * y[:, b]  # noqa: E731
    return (
        y[:, i] * y[:, j] * y[:, k] * y[:, l]
        - d[i, j] * yy(k, l) - d[i, k] * yy(j, l) - d[i, l] * yy(j, k)
        - d[j, k] * yy(i, l) - d[j, l] * yy(i, k) - d[k, l] * yy(i, j)
        + d[i, j] * d[k, l] + d[i, k] * d[j, l] + d[i, l] * d[j, k]
    )


def _sym(t):
    r = t.ndim
    return sum(np.transpose(t, p) for p in itertools.permutations(range(r))) / math.factorial(r)


def test_correction_polynomial_equals_naive_tensor_hermite():
    rng = np.random.default_rng(0)
    r = 3
    k3 = _sym(rng.standard_normal((r,) * 3))
    k4 = _sym(rng.standard_normal((r,) * 4))
    y = rng.standard_normal((50, r))
    naive = sum(k3[i, j, k] * _he3(y, i, j, k) for i, j, k in itertools.product(range(r), repeat=3)) / 6
    naive = naive + sum(
        k4[i, j, k, l] * _he4(y, i, j, k, l) for i, j, k, l in itertools.product(range(r), repeat=4)
    ) / 24
    np.testing.assert_allclose(edgeworth_polynomial(k3, k4, y), naive, rtol=1e-12, atol=1e-12)


def test_one_dimensional_hermite_matches_numpy():
    from numpy.polynomial.hermite_e import hermeval

    y = np.linspace(-3, 3, 13)
    expected = 0.7 * hermeval(y, [0, 0, 0, 1]) / 6 - 0.4 * hermeval(y, [0, 0, 0, 0, 1]) / 24
    got = edgeworth_polynomial(np.full((1, 1, 1), 0.7), np.full((1, 1, 1, 1), -0.4), y[:, None])
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-14)


def _gamma_data(n, shape, seed):
    rng = np.random.default_rng(seed)
    s = (rng.gamma(shape, size=n) - shape) / math.sqrt(shape)
    # the Gamma coordinate has the largest variance, so it is the top principal direction
    return np.c_[3.0 * s, rng.standard_normal((n, 2))]


def test_density_is_normalised_monte_carlo():
    # E_φ[f/φ] = 1 under the fitted Gaussian, for a strongly non-Gaussian fit.
    pb = PerturbativeBackground(n_directions=2, basis="principal").fit(_gamma_data(4000, 1.0, 1))
    assert pb.normalizer_ > 1.05
    s = pb.gaussian_.sample(400_000, seed=2)
    ratio = np.exp(pb.gain(s))
    se = ratio.std() / math.sqrt(len(ratio))
    assert abs(ratio.mean() - 1.0) < 4 * se


def test_cumulant_sums_equal_a_naive_loop_over_index_tuples():
    # the tensors and their SEs come from Gram products of outer products; a loop over every
    # index tuple with the textbook formulas is the independent twin
    rng = np.random.default_rng(4)
    y = rng.standard_normal((3000, 3)) @ rng.standard_normal((3, 3)) + rng.exponential(1.0, (3000, 3))
    k3, se3, k4, se4 = sample_cumulants(y)
    z = y - y.mean(axis=0)
    C = z.T @ z / len(z)
    for i, j, k in itertools.product(range(3), repeat=3):
        p = z[:, i] * z[:, j] * z[:, k]
        assert k3[i, j, k] == pytest.approx(p.mean(), rel=1e-10, abs=1e-12)
        assert se3[i, j, k] == pytest.approx(p.std() / math.sqrt(len(p)), rel=1e-8)
        for l in range(3):
            q = p * z[:, l]
            gauss = C[i, j] * C[k, l] + C[i, k] * C[j, l] + C[i, l] * C[j, k]
            assert k4[i, j, k, l] == pytest.approx(q.mean() - gauss, rel=1e-10, abs=1e-12)
            assert se4[i, j, k, l] == pytest.approx(q.std() / math.sqrt(len(q)), rel=1e-8)


def test_cumulants_match_closed_form_gamma():
    # Standardised Gamma(k): κ3 = 2/√k, κ4 = 6/k (exact).
    shape = 20.0
    y = _gamma_data(200_000, shape, 3)[:, :1] / 3.0
    k3, se3, k4, se4 = sample_cumulants(y)
    assert abs(k3[0, 0, 0] - 2 / math.sqrt(shape)) < 4 * se3[0, 0, 0]
    # se4 is the SE of the raw fourth moment; the cumulant's SE is of the same order.
    assert abs(k4[0, 0, 0, 0] - 6 / shape) < 6 * se4[0, 0, 0, 0]


def test_gain_near_negentropy_in_perturbative_regime():
    # For weak non-Gaussianity the expected held-out gain is Comon's negentropy
    # κ3²/12 + κ4²/48 to leading order (here 0.2/12 + 0.09/48 = 0.0186 nats).
    x = _gamma_data(120_000, 20.0, 4)
    pb = PerturbativeBackground(n_directions=1, basis="principal", shrinkage=None).fit(x[:60_000])
    assert pb.amplitude_ > 0.8
    g = pb.gain(x[60_000:])
    se = g.std() / math.sqrt(len(g))
    negentropy = (4 / 20) / 12 + (6 / 20) ** 2 / 48
    assert g.mean() > 5 * se
    assert abs(g.mean() - negentropy) < 0.25 * negentropy + 4 * se


def test_gaussian_data_gets_no_correction():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((8000, 10)) @ rng.standard_normal((10, 10))
    pb = PerturbativeBackground(n_directions=4, seed=0).fit(x[:6000])
    g = pb.gain(x[6000:])
    se = g.std() / math.sqrt(len(g))
    assert abs(g.mean()) <= 3 * se + 1e-12
    assert pb.normalizer_ < 1.01


def test_given_directions_are_used():
    rng = np.random.default_rng(6)
    x = _gamma_data(20000, 2.0, 6) @ np.diag([1.0, 2.0, 3.0])  # Gamma along the first axis
    pb = PerturbativeBackground(directions=[[1.0, 0.0, 0.0]]).fit(x)
    assert abs(pb.directions_[0, 0]) == pytest.approx(1.0, abs=1e-2)
    assert pb.kappa3_[0, 0, 0] > 0.5


def test_kurtosis_directions_recover_sources():
    rng = np.random.default_rng(7)
    n = 20000
    S = np.c_[rng.laplace(size=n) / math.sqrt(2), rng.uniform(-math.sqrt(3), math.sqrt(3), n), rng.standard_normal((n, 3))]
    Q, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    W, kurt = kurtosis_directions(S @ Q.T, 2, seed=0)
    # Laplace (excess kurtosis 3) first, uniform (-1.2) second; directions are the rows of Q.
    assert kurt[0] == pytest.approx(3.0, abs=0.4) and kurt[1] == pytest.approx(-1.2, abs=0.1)
    assert abs(W[0] @ Q[:, 0]) > 0.99 and abs(W[1] @ Q[:, 1]) > 0.99


def test_bad_settings():
    x = np.random.default_rng(0).standard_normal((100, 3))
    with pytest.raises(InputError, match="`basis`"):
        PerturbativeBackground(basis="pca").fit(x)
    with pytest.raises(InputError, match="`n_directions`"):
        PerturbativeBackground(n_directions=5).fit(x)
    with pytest.raises(InputError, match="`order`"):
        PerturbativeBackground(order=3).fit(x)
    with pytest.raises(InputError, match="linearly dependent"):
        PerturbativeBackground(directions=[[1, 0, 0], [2, 0, 0]]).fit(x)
    with pytest.raises(NotFittedError):
        PerturbativeBackground().gain(x)


# ------------------------------------------------------------------ chunked fit
class _Reiterable:
    """Chunks that start again on every iteration (like a dataset object)."""

    def __init__(self, x, size):
        self.x, self.size = x, size
        self.reads = 0

    def __iter__(self):
        self.reads += 1
        return (self.x[a : a + self.size] for a in range(0, len(self.x), self.size))


def _fitted_attributes(pb):
    return {"kappa3_": pb.kappa3_, "kappa4_": pb.kappa4_, "basis_": pb.basis_, "selected_": pb.selected_,
            "amplitude_": pb.amplitude_, "normalizer_": pb.normalizer_, "mean": pb.gaussian_.mean_}


@pytest.mark.parametrize("basis", ["principal", "ica", "features"])
def test_a_fit_on_chunks_equals_the_fit_on_the_array(basis):
    # every form of chunked input (a list, a re-iterable, a function, a function that takes the
    # keep(n) pushdown) reads the same rows with the same global indices as the array fit: the
    # splits and the cumulants agree to summation-order rounding; the 'features' search takes
    # its products in float32, whose sums over other pieces of rows move it by about 1e-5 of the
    # largest entry (the bound feature_directions documents is 1e-4)
    rng = np.random.default_rng(11)
    x = np.c_[rng.exponential(size=(3000, 2)), rng.normal(size=(3000, 3))] @ rng.normal(size=(5, 5))
    make = lambda: PerturbativeBackground(n_directions=2, basis=basis, seed=4)  # noqa: E731
    ref = _fitted_attributes(make().fit(x))
    sizes = [0, 700, 0, 1, 999, 1300]  # uneven, with empty chunks
    cuts = np.cumsum([0] + sizes)
    chunks = [x[a:b] for a, b in zip(cuts[:-1], cuts[1:])]
    reads = []

    def with_keep(keep=None):
        for c in chunks:
            if keep is None:
                yield c
            else:
                m = keep(len(c))
                reads.append(int(m.sum()))
                yield c[m]

    re = _Reiterable(x, 640)
    for source in (chunks, tuple(chunks), re, lambda: iter(chunks), with_keep):
        got = _fitted_attributes(make().fit(source))
        for name, want in ref.items():
            tol = 1e-4 * float(np.max(np.abs(want))) if basis == "features" else 1e-9
            np.testing.assert_allclose(got[name], want, rtol=0, atol=tol, err_msg=f"{name} from {type(source)}")
    assert re.reads >= 4  # read in several passes
    assert 0 in reads and sum(reads) < 5 * len(x)  # the pushdown skipped rows: no pass read everything


def test_chunked_input_that_cannot_be_read_in_passes_is_refused():
    x = np.random.default_rng(0).standard_normal((400, 3))
    from pft.numeric import Moments

    with pytest.raises(InputError, match="one-shot iterator"):
        PerturbativeBackground(n_directions=1, basis="principal").fit(c for c in [x[:200], x[200:]])
    with pytest.raises(InputError, match="needs the rows"):
        PerturbativeBackground(n_directions=1, basis="principal").fit(Moments.from_array(x))
    with pytest.raises(InputError, match="empty iterable"):
        PerturbativeBackground(n_directions=1, basis="principal").fit([])
    with pytest.raises(InputError, match=r"`X\[1\]` has 2 features but earlier chunks had 3"):
        PerturbativeBackground(n_directions=1, basis="principal").fit([x, x[:, :2]])

    def ignores_keep(keep=None):  # yields without calling keep
        yield x

    with pytest.raises(InputError, match=r"call keep\(n\) exactly once"):
        PerturbativeBackground(n_directions=1, basis="principal").fit(ignores_keep)

    def miscounts(keep=None):
        if keep is not None:
            keep(len(x))
        yield x[:10]

    with pytest.raises(InputError, match=r"`X\[0\]` has 10 rows but keep\(n\) kept 0 of its 400"):
        PerturbativeBackground(n_directions=1, basis="principal").fit(miscounts)
    with pytest.raises(InputError, match="`progress` must be True or False"):
        PerturbativeBackground(n_directions=1).fit(x, progress=1)


def test_progress_bar_runs_over_the_passes(capsys):
    x = _gamma_data(2000, 2.0, 1)
    pb = PerturbativeBackground(n_directions=1, basis="principal").fit(x, progress=True)
    assert "perturbative fit" in capsys.readouterr().err and pb.amplitude_ >= 0


# ------------------------------------------------------------------ using the fit
def test_gain_from_coordinates_and_score_samples_agree_with_gain_and_logpdf():
    x = _gamma_data(6000, 2.0, 2)
    pb = PerturbativeBackground(n_directions=2, basis="principal").fit(x)
    y = pb.coordinates(x[:300])
    # the coordinates are the whitened rows along the basis, written out here
    g = pb.gaussian_
    w = (x[:300] - g.mean_) @ (g.eigenvectors_ / np.sqrt(g.eigenvalues_))
    np.testing.assert_allclose(y, w @ pb.basis_.T, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(pb.gain_from_coordinates(y), pb.gain(x[:300]))
    np.testing.assert_array_equal(pb.score_samples(x[:300]), pb.logpdf(x[:300]))
    np.testing.assert_array_equal(g.score_samples(x[:300]), g.logpdf(x[:300]))
    with pytest.raises(InputError, match="`y` must have 2 columns"):
        pb.gain_from_coordinates(y[:, :1])


def _gaussian_moment(n):
    return 0.0 if n % 2 else float(np.prod(np.arange(n - 1, 0, -2))) if n else 1.0


def test_samples_have_the_closed_form_moments_of_the_fitted_density():
    # Truth, written from the density's definition alone: along the corrected direction
    # f(y) = φ(y) [(1 + g/2)² + ε] / [N + ε] with g(y) = κ₃(y³ − 3y)/6 + κ₄(y⁴ − 6y² + 3)/24, so
    # E_f[y^k] = (E_φ[y^k (1 + g/2)²] + ε E_φ[y^k]) / (N + ε), E_φ[y^n] = (n − 1)!! (n even).
    from numpy.polynomial import Polynomial as P

    x = _gamma_data(20000, 2.0, 3)
    pb = PerturbativeBackground(n_directions=1, basis="principal", seed=5).fit(x)
    k3, k4, eps = float(pb.kappa3_.ravel()[0]), float(pb.kappa4_.ravel()[0]), pb.floor
    assert pb.amplitude_ > 0.1 and abs(k3) > 0.3
    g = k3 * P([0, -3, 0, 1]) / 6 + k4 * P([3, 0, -6, 0, 1]) / 24
    h = (1 + g / 2) ** 2

    def e_phi(poly):
        return sum(c * _gaussian_moment(n) for n, c in enumerate(poly.coef))

    assert pb.normalizer_ == pytest.approx(e_phi(h), rel=1e-12)  # the normaliser is E_φ[(1 + g/2)²]
    n = 100_000
    s = pb.sample(n, seed=2)
    y = pb.coordinates(s)[:, 0]
    for k in (1, 2, 3, 4):
        yk = P([0] * k + [1])
        truth = (e_phi(yk * h) + eps * _gaussian_moment(k)) / (pb.normalizer_ + eps)
        se = np.std(y**k) / math.sqrt(n)
        assert abs(np.mean(y**k) - truth) < 4.5 * se, (k, np.mean(y**k), truth, se)
    # a Gaussian draw would miss the third moment by many standard errors: the test has power
    third = (e_phi(P([0, 0, 0, 1]) * h)) / (pb.normalizer_ + eps)
    assert abs(third) > 10 * np.std(y**3) / math.sqrt(n)
    # the complement of the corrected direction is standard normal and uncorrelated with it
    w = pb.gaussian_.whiten(s)
    perp = w - np.outer(y, pb.basis_[0])
    Q = np.linalg.svd(np.eye(w.shape[1]) - np.outer(pb.basis_[0], pb.basis_[0]))[0][:, :2]
    z = perp @ Q
    np.testing.assert_allclose(z.var(axis=0), 1.0, atol=4.5 * math.sqrt(2 / n))
    assert np.all(np.abs((z * (y - y.mean())[:, None]).mean(axis=0)) < 4.5 * np.std(y) / math.sqrt(n))


def test_sample_seeds():
    x = _gamma_data(4000, 2.0, 4)
    pb = PerturbativeBackground(n_directions=1, basis="principal", seed=7).fit(x)
    np.testing.assert_array_equal(pb.sample(50), pb.sample(50))  # None: the background's own seed
    np.testing.assert_array_equal(pb.sample(50), pb.sample(50, seed=7))
    assert not np.array_equal(pb.sample(50, seed=8), pb.sample(50, seed=7))
    a, b = np.random.default_rng(3), np.random.default_rng(3)
    first = pb.sample(20, seed=a)
    np.testing.assert_array_equal(first, pb.sample(20, seed=b))
    assert not np.array_equal(pb.sample(20, seed=a), first)  # a generator continues its stream
    assert pb.sample(0).shape == (0, 3)
    for bad, match in ((-1, "`seed`"), (1.5, "`seed`"), (True, "`seed`")):
        with pytest.raises(InputError, match=match):
            pb.sample(5, seed=bad)
    with pytest.raises(InputError, match="`n_samples` must be an integer >= 0"):
        pb.sample(-1)
    with pytest.raises(InputError, match="`n_proposals` must be an integer >= 1"):
        pb.sample(5, n_proposals=0)
    with pytest.raises(NotFittedError):
        PerturbativeBackground().sample(3)


def test_edgeworth_polynomial_refuses_mismatched_shapes():
    with pytest.raises(InputError, match="`y` must have shape"):
        edgeworth_polynomial(np.zeros((2, 2, 2)), np.zeros((2, 2, 2, 2)), np.zeros((4, 3)))
    with pytest.raises(InputError, match="`kappa3` and `kappa4`"):
        edgeworth_polynomial(np.zeros((2, 2, 2)), np.zeros((3, 3, 3, 3)), np.zeros((4, 2)))


def test_renamed_keywords_still_work_and_warn():
    from pft.errors import PftDeprecationWarning
    from pft.numeric import GaussianBackground, feature_directions

    rng = np.random.default_rng(0)
    x = rng.standard_normal((400, 3))
    g = GaussianBackground().fit(x)
    with pytest.warns(PftDeprecationWarning, match="`k` is deprecated; use `n_samples`"):
        old = g.sample(k=4, seed=1)
    np.testing.assert_array_equal(old, g.sample(4, seed=1))
    with pytest.warns(PftDeprecationWarning, match="`k` is deprecated; use `n_directions`"):
        W, _ = kurtosis_directions(g.whiten(x), k=1, seed=0)
    np.testing.assert_array_equal(W, kurtosis_directions(g.whiten(x), 1, seed=0)[0])
    with pytest.warns(PftDeprecationWarning, match="`k` is deprecated; use `n_directions`"):
        old = feature_directions(x, k=1, seed=0)
    assert old.to_dict() == feature_directions(x, 1, seed=0).to_dict()
