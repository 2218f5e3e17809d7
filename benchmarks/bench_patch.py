"""patch_scores against SAELens' run_evals on the same batches of the same model.

Run: ``python -m benchmarks.bench_patch`` (``--quick`` for a smoke run). Needs the interop
extra (sae-lens, transformer-lens); without it the benchmark says so and returns no rows.

Baseline: SAELens' ``run_evals`` with only its CE and KL metrics (``compute_ce_loss``,
``compute_kl``): three forwards per batch (clean, SAE spliced, zero-ablated). pft:
``patch_scores`` with SAELens' rungs only (``rungs=["clean", "zero_ablation", "recon"]``),
then with the Gaussian rung added at its default 4 resamples, then with every default rung. The
patched rungs of a ``HookedTransformer`` run from the hooked block on (``start_at_layer``, see
``pft.residual._patch_resume``); one more contender runs the Gaussian rungs through the whole
model with a hook, as for any other torch model, to show what that path costs.
Both use the same TransformerLens model, SAE, token batches and BOS mask. Timings alternate
between the contenders and report the median of ``repeats`` rounds (load hits all alike);
the result is each ratio to the baseline (targets: ≤ 1.5× and ≤ 3×), in wall and CPU time.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

__all__ = ["run", "main"]


class _Store:
    """What run_evals reads from an ActivationsStore: fixed token batches, in order."""

    def __init__(self, tokens, batch):
        self.tokens, self.i = tokens, 0
        self.context_size, self.store_batch_size_prompts = tokens.shape[1], batch

    def get_batch_tokens(self, n):
        self.i += n
        return self.tokens[self.i - n:self.i]

    def reset_input_dataset(self):
        self.i = 0


def run(
    *,
    quick: bool = False,
    d_model: int = 256,
    n_layers: int = 4,
    d_vocab: int = 4096,
    context: int = 128,
    batch: int = 8,
    n_batches: int = 6,
    repeats: int = 3,
    seed: int = 0,
    threads: int | None = 1,
) -> list[dict]:
    """Time patch_scores against run_evals; returns one row per contender (``[]`` without sae-lens).

    Rows: ``what``, ``rungs``, ``forwards`` (per batch), ``seconds`` (median wall time),
    ``tokens_per_s``, ``ratio`` (seconds over run_evals'), and ``cpu_seconds``/``cpu_ratio`` (the
    process's CPU time: steadier than wall time on a shared machine with one torch thread).
    ``threads``: torch threads for the run (1 by default: steadier on a shared machine; None
    leaves torch's setting).
    """
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            from sae_lens import StandardSAE, StandardSAEConfig
            from sae_lens.evals import ActivationScaler, EvalConfig, run_evals
            from transformer_lens import HookedTransformer, HookedTransformerConfig
    except ImportError as exc:
        print(f"bench_patch: skipped, sae-lens / transformer-lens not installed (pip install 'pft[interop]'): {exc}")
        return []
    from pft.interop import next_token_loss
    from pft.residual import _patch, patch_scores

    if threads is not None:
        torch.set_num_threads(int(threads))
    if quick:
        d_model, n_layers, d_vocab, context, n_batches, repeats = 64, 2, 512, 32, 2, 1
    torch.manual_seed(seed)
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, n_heads=max(1, d_model // 64), d_head=64,
                                  d_mlp=4 * d_model, n_ctx=context, d_vocab=d_vocab, act_fn="gelu",
                                  normalization_type="LN", seed=seed)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        model = HookedTransformer(cfg).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    hook = f"blocks.{n_layers // 2 - 1 if n_layers > 1 else 0}.hook_resid_post"
    scfg = StandardSAEConfig(d_in=d_model, d_sae=4 * d_model)
    scfg.metadata.hook_name = hook
    sae = StandardSAE(scfg).eval()
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, d_vocab, (n_batches * batch, context), generator=g)
    tokens[:, 0] = 0  # BOS, masked by both
    keep = tokens != 0
    ecfg = EvalConfig(batch_size_prompts=batch, n_eval_reconstruction_batches=n_batches, compute_kl=True,
                      compute_ce_loss=True)

    def t_saelens():
        t0, c0 = time.perf_counter(), time.process_time()
        run_evals(sae, _Store(tokens, batch), model, ActivationScaler(), ecfg, exclude_special_tokens=[0])
        return time.perf_counter() - t0, time.process_time() - c0

    def pft(rungs, whole=False):
        def f():
            saved = _patch.resume_layer
            if whole:  # as for a model that cannot be entered at the hooked block
                _patch.resume_layer = lambda model, name: None
            try:
                t0, c0 = time.perf_counter(), time.process_time()
                patch_scores(model, hook, tokens, batch_size=batch, interpretation=sae, loss_fn=next_token_loss,
                             mask=keep, rungs=rungs, progress=False, convention="saelens")
                return time.perf_counter() - t0, time.process_time() - c0
            finally:
                _patch.resume_layer = saved

        return f

    contenders = [
        ("SAELens run_evals (CE + KL)", "clean, zero, SAE", 3, t_saelens),
        ("pft patch_scores, SAELens rungs", "clean, zero_ablation, recon", 3, pft(["clean", "zero_ablation", "recon"])),
        ("pft patch_scores, + Gaussian (4 draws)", "the same + recon+gaussian", 4,
         pft(["clean", "zero_ablation", "recon", "recon+gaussian"])),
        ("pft patch_scores, default rungs", "all 7", 7, pft(None)),
        ("pft, + Gaussian, whole model per rung", "as + Gaussian, no start_at_layer", 4,
         pft(["clean", "zero_ablation", "recon", "recon+gaussian"], whole=True)),
    ]
    for _, _, _, f in contenders:  # warm-up
        f()
    times = {name: [] for name, *_ in contenders}
    for _ in range(repeats):
        for name, _, _, f in contenders:
            times[name].append(f())
    base = statistics.median(t for t, _ in times[contenders[0][0]])
    base_cpu = statistics.median(c for _, c in times[contenders[0][0]])
    n_tok = tokens.numel()
    rows = []
    for name, rungs, fwd, _ in contenders:
        s = statistics.median(t for t, _ in times[name])
        c = statistics.median(c for _, c in times[name])
        rows.append({"what": name, "rungs": rungs, "forwards": fwd, "seconds": s, "tokens_per_s": n_tok / s,
                     "ratio": s / base, "cpu_seconds": c, "cpu_ratio": c / base_cpu})
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    a = p.parse_args(argv)
    rows = run(quick=a.quick)
    for r in rows:
        print(f"{r['what']:<42}{r['seconds']:>9.3f} s {r['tokens_per_s']:>10.0f} tok/s  ratio {r['ratio']:.2f}"
              f"  (CPU time {r['cpu_seconds']:.3f} s, ratio {r['cpu_ratio']:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
