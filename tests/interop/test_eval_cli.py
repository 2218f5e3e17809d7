"""`pft eval` on local files without sae-lens: a transformers GPT-2 saved from a config, pft's
own TopK SAE format, token ids in a .npy; and the errors that say how to point it at files."""

import json
import math

import numpy as np
import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (the models extra)")

from pft.cli import main  # noqa: E402
from pft.interop import evaluate, load_sae  # noqa: E402
from pft.models import TopKSAE  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    root = tmp_path_factory.mktemp("eval")
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=40, n_positions=12, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0)
    GPT2LMHeadModel(cfg).save_pretrained(root / "model")
    sae = TopKSAE(16, 32, 4)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        W = torch.randn(32, 16, generator=g)
        sae.W_dec.copy_(W / W.norm(dim=1, keepdim=True))
        sae.W_enc.copy_(sae.W_dec.T)
    sae.save(root / "sae")
    ids = np.random.default_rng(0).integers(1, 40, (24, 12))
    ids[:, 0] = 0
    np.save(root / "ids.npy", ids)
    return root


def test_pft_eval_reads_a_hf_directory_and_pfts_sae_format(files, capsys, tmp_path):
    out = tmp_path / "r.json"
    rc = main(["eval", "--model", str(files / "model"), "--sae", str(files / "sae"), "--hook", "transformer.h.0",
               "--tokens", str(files / "ids.npy"), "--n-seqs", "0", "--batch-size", "8", "--exclude-tokens", "0",
               "--rungs", "clean,zero_ablation,recon", "--json", str(out), "--plot-dir", str(tmp_path), "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0 and "PatchReport: transformer.h.0" in text and "ce_loss_score" in text
    d = json.loads(out.read_text())
    assert d["patch"]["n_excluded"] == 24 and d["score"]["n_tokens"] == 24 * 11
    assert d["patch"]["nan_reasons"]["mean_ablation_recovered"].startswith("rung mean_ablation not run")
    assert (tmp_path / "score.png").exists() and (tmp_path / "patch.png").exists()
    # the Python twin gives the same report, and pft's l0 of a TopK SAE with k = 4 is 4
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(files / "model", local_files_only=True)
    res = evaluate(model, load_sae(files / "sae"), np.load(files / "ids.npy"), hook="transformer.h.0", n_seqs=None,
                   batch_size=8, exclude_tokens=[0], rungs=["clean", "zero_ablation", "recon"], progress=False)
    assert res.score.l0 == pytest.approx(4.0) and not math.isnan(res.patch.kl_score)
    assert res.patch.ce_loss_score == pytest.approx(d["saelens_metrics"]["ce_loss_score"], rel=1e-12)
    assert type(res).from_json(res.to_json()).to_json() == res.to_json()


def test_pft_eval_errors_say_how_to_point_it_at_local_files(files, capsys, tmp_path):
    assert main(["eval", "--model", "gpt2", "--sae", str(files / "sae")]) == 2
    assert "`model` must be a directory; got 'gpt2'. pft reads local files only" in capsys.readouterr().err
    assert main(["eval", "--model", str(files / "model"), "--sae", str(tmp_path)]) == 2
    assert "holds neither SAELens' format (cfg.json + sae_weights.safetensors)" in capsys.readouterr().err
    assert main(["eval", "--model", str(files / "model"), "--sae", str(files / "sae"), "--hook", "transformer.h.0"]) == 2
    assert "no tokenizer" in capsys.readouterr().err
    assert main(["eval", "--model", str(files / "model"), "--sae", str(files / "sae"), "--tokens",
                 str(files / "ids.npy"), "--exclude-tokens", "a,b"]) == 2
    assert "`--exclude-tokens` must be" in capsys.readouterr().err
