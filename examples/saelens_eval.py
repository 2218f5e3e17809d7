"""What a SAELens user does, offline: save a TransformerLens model and a SAELens SAE to disk,
run `pft eval` on them, and put pft's numbers beside SAELens' own `run_evals`.

Run:  python examples/saelens_eval.py            (a few minutes on a 2-core CPU)
      python examples/saelens_eval.py --small    (~1 min)
      PFT_EXAMPLE_SIZE=tiny python examples/saelens_eval.py     (the CI size, seconds)

Needs the interop extra: pip install 'pft[interop]' (sae-lens, transformer-lens).

The model is a small HookedTransformer built from a config and trained for a few steps on the
bytes of Python's own documentation (vocabulary 256, token 0 = BOS, so no tokenizer and nothing
from a hub). The SAE is a SAELens StandardSAE trained on its block-0 residual stream with an
L1 penalty. `pft eval` then reads both from disk; the command it runs is printed.
"""

import argparse
import json
import os
import sys
import tempfile
import warnings

import numpy as np
import torch

from pft.cli import main as pft_main
from pft.interop import save_hooked_transformer
from pft.models import corpus

ap = argparse.ArgumentParser()
ap.add_argument("--small", action="store_true", help="a small model and SAE (~1 min)")
ap.add_argument("--out", default=None, help="directory for the saved model, SAE, tokens and report")
args = ap.parse_args()
SIZE = os.environ.get("PFT_EXAMPLE_SIZE", "full")
if SIZE not in ("full", "tiny"):
    sys.exit(f"PFT_EXAMPLE_SIZE must be 'full' or 'tiny'; got {SIZE!r}.")
if SIZE == "tiny":
    n_seqs, ctx, d_model, steps = 16, 16, 16, 20
elif args.small:
    n_seqs, ctx, d_model, steps = 32, 32, 32, 60
else:
    n_seqs, ctx, d_model, steps = 256, 64, 64, 400
batch = 8
torch.manual_seed(0)
out = args.out or tempfile.mkdtemp(prefix="pft-saelens-")

with warnings.catch_warnings():  # HookedTransformer announces its successor; it still works
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.evals import ActivationScaler, EvalConfig, run_evals
    from transformer_lens import HookedTransformer, HookedTransformerConfig

    # 1. tokens: bytes of Python's docs, BOS (0) in front of each window
    stream = np.frombuffer(corpus().encode("utf-8"), dtype=np.uint8).astype(np.int64)
    n_train = 4 * n_seqs
    W = stream[: (n_train + n_seqs) * (ctx - 1)].reshape(-1, ctx - 1)
    W = np.c_[np.zeros(len(W), dtype=np.int64), W]
    train, evals = torch.as_tensor(W[:n_train]), W[n_train:]

    # 2. a HookedTransformer from a config, trained briefly
    cfg = HookedTransformerConfig(n_layers=2, d_model=d_model, n_heads=4, d_head=d_model // 4, d_mlp=4 * d_model,
                                  n_ctx=ctx, d_vocab=256, act_fn="gelu", normalization_type="LN", seed=0)
    model = HookedTransformer(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for s in range(steps):
        loss = model(train[(s * batch) % n_train:][:batch], return_type="loss")
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    print(f"model: final training loss {loss.item():.3f} nats/byte")

    # 3. a SAELens SAE on blocks.0.hook_resid_post (MSE + L1 on its codes)
    hook = "blocks.0.hook_resid_post"
    with torch.no_grad():
        _, cache = model.run_with_cache(train, names_filter=[hook])
    acts = cache[hook][:, 1:].reshape(-1, d_model)  # BOS rows left out, as evaluation will
    scfg = StandardSAEConfig(d_in=d_model, d_sae=4 * d_model)
    scfg.metadata.hook_name = hook
    sae = StandardSAE(scfg)
    with torch.no_grad():
        sae.b_dec.copy_(acts.mean(0))
    sopt = torch.optim.Adam(sae.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for s in range(3 * steps):
        xb = acts[torch.randint(0, len(acts), (256,), generator=g)]
        f = sae.encode(xb)
        loss = ((sae.decode(f) - xb) ** 2).sum(-1).mean() + 1e-3 * f.abs().sum(-1).mean()
        sopt.zero_grad()
        loss.backward()
        sopt.step()
    sae.eval()

    # 4. everything to disk, as a SAELens user has it
    model_dir, sae_dir, tok_path = (os.path.join(out, n) for n in ("model", "sae", "tokens.npy"))
    save_hooked_transformer(model, model_dir)
    sae.save_model(sae_dir)
    np.save(tok_path, evals)

# 5. pft eval on the files (the command line, run in this process)
report = os.path.join(out, "report.json")
argv = ["eval", "--model", model_dir, "--sae", sae_dir, "--tokens", tok_path, "--exclude-tokens", "0",
        "--n-seqs", "0", "--batch-size", str(batch), "--convention", "saelens", "--json", report, "--quiet"]
print("$ pft " + " ".join(argv))
if pft_main(argv) != 0:
    sys.exit("pft eval failed")

# 6. SAELens' own run_evals on the same windows, masking BOS as pft did


class Store:
    """The two things run_evals reads from an ActivationsStore: token batches and their size."""

    def __init__(self, tokens):
        self.tokens, self.i, self.context_size, self.store_batch_size_prompts = tokens, 0, tokens.shape[1], batch

    def get_batch_tokens(self, n):
        self.i += n
        return self.tokens[self.i - n:self.i]

    def reset_input_dataset(self):
        self.i = 0


ecfg = EvalConfig(batch_size_prompts=batch, n_eval_reconstruction_batches=len(evals) // batch,
                  n_eval_sparsity_variance_batches=len(evals) // batch, compute_kl=True, compute_ce_loss=True,
                  compute_sparsity_metrics=True, compute_variance_metrics=True)
theirs, _ = run_evals(sae, Store(torch.as_tensor(evals)), model, ActivationScaler(), ecfg, exclude_special_tokens=[0])
flat = {k: v for group in theirs.values() for k, v in group.items()}
with open(report) as fh:
    ours = json.load(fh)["saelens_metrics"]
print(f"\n{'metric (SAELens name)':<28}{'pft eval':>14}{'run_evals':>14}{'|diff|':>11}")
for k, v in ours.items():
    print(f"{k:<28}{v:>14.7g}{flat[k]:>14.7g}{abs(v - flat[k]):>11.2g}")
worst = max(abs(v - flat[k]) / max(abs(flat[k]), 1e-3) for k, v in ours.items())
print(f"\nlargest relative difference: {worst:.2g} (float32 rounding: SAELens computes in float32, pft in float64)")
sys.exit(0 if worst < 1e-4 else 1)
