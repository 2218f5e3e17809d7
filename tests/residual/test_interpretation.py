"""as_interpretation on small fakes with the shapes of SAELens and sparsify objects."""

from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import pytest
import torch

from pft.errors import InputError
from pft.residual import Interpretation, as_interpretation


class FakeSAELensSAE(torch.nn.Module):
    """The SAELens SAE shape: W_enc (d, m), W_dec (m, d), b_dec, cfg.d_in; float64 parameters."""

    def __init__(self, d=4, m=6, seed=0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.nn.Parameter(torch.randn(d, m, generator=g, dtype=torch.float64))
        self.W_dec = torch.nn.Parameter(torch.randn(m, d, generator=g, dtype=torch.float64))
        self.b_dec = torch.nn.Parameter(torch.randn(d, generator=g, dtype=torch.float64))
        self.cfg = SimpleNamespace(d_in=d)
        self.seen_dtype = None

    def encode(self, x):
        self.seen_dtype = x.dtype
        return torch.relu((x - self.b_dec) @ self.W_enc)

    def decode(self, f):
        return f @ self.W_dec + self.b_dec


class EncoderOutput(NamedTuple):
    top_acts: torch.Tensor
    top_indices: torch.Tensor
    pre_acts: torch.Tensor


class FakeSparsifySAE:
    """sparsify's shape: encode -> (top_acts, top_indices, pre_acts); decode(top_acts, top_indices)."""

    def __init__(self, d=4, m=6, k=2, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.W_enc = torch.randn(d, m, generator=g)
        self.W_dec = torch.randn(m, d, generator=g)
        self.b_dec = torch.zeros(d)
        self.k = k

    def encode(self, x):
        pre = x @ self.W_enc
        acts, idx = torch.topk(torch.relu(pre), self.k, dim=-1)
        return EncoderOutput(acts, idx, pre)

    def decode(self, top_acts, top_indices):
        return torch.einsum("nk,nkd->nd", top_acts, self.W_dec[top_indices]) + self.b_dec


def test_saelens_shape_casts_to_decoder_dtype_and_back():
    sae = FakeSAELensSAE()
    interp = as_interpretation(sae)
    assert interp.kind == "encode-decode" and interp.d_in == 4
    x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
    out = interp(x)
    assert out.dtype == torch.float32 and sae.seen_dtype == torch.float64
    # Independent truth: the same formula written out in numpy.
    W_enc, W_dec, b = (t.detach().numpy() for t in (sae.W_enc, sae.W_dec, sae.b_dec))
    xn = x.double().numpy()
    expected = np.maximum((xn - b) @ W_enc, 0) @ W_dec + b
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(InputError, match="expects d_in = 4 but the activations have d = 3"):
        interp(torch.zeros(2, 3))


def test_sparsify_shape_decodes_topk():
    sae = FakeSparsifySAE()
    interp = as_interpretation(sae)
    x = torch.randn(7, 4, generator=torch.Generator().manual_seed(2))
    out = interp(x)
    assert interp.kind == "topk-encode-decode"
    # Truth: keep the k largest ReLU'd pre-activations per row, decode densely.
    pre = np.maximum(x.numpy() @ sae.W_enc.numpy(), 0)
    dense = np.zeros_like(pre)
    for i, row in enumerate(pre):
        top = np.argsort(-row)[:2]
        dense[i, top] = row[top]
    np.testing.assert_allclose(out.numpy(), dense @ sae.W_dec.numpy(), rtol=1e-5, atol=1e-5)


def test_callable_and_precomputed_array():
    f = as_interpretation(lambda x: 2 * x)
    assert f.kind == "callable"
    x = torch.arange(6.0).reshape(3, 2)
    assert torch.equal(f(x), 2 * x)
    table = np.arange(20.0).reshape(10, 2)
    a = as_interpretation(table)
    assert a.kind == "array" and a.n_tokens == 10
    np.testing.assert_array_equal(a(x, start=4).numpy(), table[4:7])
    assert a(x.double(), start=7).dtype == torch.float64
    with pytest.raises(InputError, match="has 10 rows but the model produced at least 11"):
        a(x, start=8)
    assert as_interpretation(a) is a and isinstance(a, Interpretation)


def test_rejects_what_it_cannot_use():
    with pytest.raises(InputError, match=r"\(N, d\) array"):
        as_interpretation(np.zeros((2, 3, 4)))
    with pytest.raises(InputError, match="must be a callable"):
        as_interpretation("sae.pt")
    with pytest.raises(InputError, match="returned a tuple of length 1"):
        as_interpretation(SimpleNamespace(encode=lambda x: (x,), decode=lambda *a: a[0]))(torch.zeros(2, 2))
    with pytest.raises(InputError, match="returned list"):
        as_interpretation(lambda x: [1, 2])(torch.zeros(2, 2))


def test_real_sae_lens_if_installed():
    sae_lens = pytest.importorskip("sae_lens", reason="sae-lens is not installed (optional)")
    cfg = sae_lens.StandardSAEConfig(d_in=8, d_sae=16, dtype="float32", device="cpu")
    sae = sae_lens.StandardSAE(cfg)
    x = torch.randn(5, 8)
    out = as_interpretation(sae)(x)
    torch.testing.assert_close(out, sae.decode(sae.encode(x)))
