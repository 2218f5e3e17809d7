"""massive_tokens: planted attention sinks found exactly, Gaussian tokens never flagged."""

import numpy as np
import pytest

from pft.errors import InputError
from pft.residual import massive_tokens


def test_planted_sinks_are_found_exactly_in_sequences():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 32, 64))
    truth = np.zeros((8, 32), dtype=bool)
    truth[:, 0] = True
    truth[3, 7] = truth[5, 1] = True  # a sink later in a sequence, as after a first delimiter
    x[truth] = 0.0
    x[truth, 5] = 2000.0  # along one coordinate, as massive activations are
    np.testing.assert_array_equal(massive_tokens(x), truth)


def test_gaussian_tokens_are_never_massive():
    # ‖x‖ of a 64-d standard normal is about 8 ± 0.7: nothing comes near 10 × the median
    for seed in range(5):
        x = np.random.default_rng(seed).normal(size=(20000, 64))
        assert not massive_tokens(x).any()


def test_ratio_is_the_threshold_on_norm_over_median():
    norms = np.array([1.0, 1.0, 1.0, 1.0, 2.9, 3.1, 1.0])
    x = norms[:, None] * np.eye(1, 3)
    np.testing.assert_array_equal(massive_tokens(x, ratio=3.0), norms > 3.0)
    np.testing.assert_array_equal(massive_tokens(x, ratio=2.5), norms > 2.5)


def test_a_memmap_read_in_chunks_gives_the_same_answer(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1000, 16)).astype(np.float32)
    x[[0, 250, 999]] *= 100
    np.save(tmp_path / "a.npy", x)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    got = massive_tokens(mm, chunk_rows=7)
    np.testing.assert_array_equal(got, np.isin(np.arange(1000), [0, 250, 999]))
    np.testing.assert_array_equal(got, massive_tokens(x))


def test_torch_input():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 10, 8, generator=torch.Generator().manual_seed(0))
    x[:, 0] *= 1000
    out = massive_tokens(x)
    assert out.shape == (4, 10) and out[:, 0].all() and not out[:, 1:].any()


@pytest.mark.parametrize(
    "args, kwargs, match",
    [
        ((np.ones(5),), {}, "activations"),
        ((np.ones((0, 4)),), {}, "no tokens"),
        ((np.ones((5, 4)),), {"ratio": 1.0}, "ratio"),
        ((np.ones((5, 4)),), {"ratio": float("nan")}, "ratio"),
        ((np.ones((5, 4)),), {"ratio": True}, "ratio"),
        ((np.ones((5, 4)),), {"chunk_rows": 0}, "chunk_rows"),
        ((np.array([[1.0, np.nan], [1.0, 1.0]]),), {}, "activations"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(args, kwargs, match):
    with pytest.raises(InputError, match=match):
        massive_tokens(*args, **kwargs)
