"""``pft demo``, ``pft score``, ``pft power``, ``pft eval``: residual scores from the command line."""

from __future__ import annotations

import os

from pft.cli._args import choice, integer, number, numbers, require_torchrun, seed, write_outputs
from pft.errors import InputError

__all__ = ["add_demo", "run_demo", "add_score", "run_score", "add_power", "run_power", "add_eval", "run_eval"]


def add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the toy main job end to end and print what pft finds")
    p.add_argument("--out", default="pft-demo", help="folder for the plot and JSON (default: pft-demo)")
    p.add_argument("--seed", type=seed(), default=0)
    p.add_argument("--tokens", type=integer("--tokens", minimum=2), default=20000,
                   help="number of toy tokens (default 20000)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--model",
        type=choice("--model", ("toy", "minilm", "smollm2")),
        metavar="{toy,minilm,smollm2}",
        default="toy",
        help="toy (default), or a real model from the `models` extra: capture a layer, train a TopK "
        "SAE, score its residual and patch it back into the model",
    )
    p.add_argument("--layer", type=integer("--layer"), default=None, help="real models: block whose output is hooked")
    p.add_argument("--steps", type=integer("--steps", minimum=0), default=None, help="real models: SAE training steps")
    p.add_argument("--sae-size", type=integer("--sae-size", minimum=1), default=None,
                   help="real models: SAE dictionary size")
    p.add_argument("--k", type=integer("--k", minimum=1), default=None, help="real models: active SAE latents per token")
    p.add_argument("--windows", type=integer("--windows", minimum=1), default=None,
                   help="real models: text windows to train and score on")
    p.add_argument("--patch-windows", type=integer("--patch-windows", minimum=1), default=None,
                   help="real models: text windows for the patched runs")
    p.add_argument("--threads", type=integer("--threads", minimum=1), default=None, help="real models: torch CPU threads")
    p.add_argument("--device", default=None, help="real models: torch device for the model, SAE and score, e.g. cuda")
    p.add_argument(
        "--exclude-positions",
        default=None,
        help="real models: window positions left out of the SAE, the score and every splice and average, "
        "comma-separated (default: 0 for smollm2, its attention sink; none for minilm); 'none' keeps them all",
    )


def run_demo(args) -> int:
    if args.model != "toy":
        return _run_model_demo(args)
    import time

    import numpy as np

    from pft._output import check_output
    from pft.residual import compare, score
    from pft.toy import interpretations, superposition

    check_output(args.out, name="--out", folder=True)
    t0 = time.perf_counter()
    data = superposition(args.tokens, d=64, n_features=256, seed=args.seed)
    interps = interpretations(data, fvu=0.15, n_missing=4, n_spurious=4, seed=args.seed)
    print(data)
    print("Four interpretations with the same FVU (0.15):")
    for it in interps.values():
        print(f"  {it.name:<14} {it.description}")
    print()
    reports = {}
    for name, it in interps.items():
        reports[name] = score(data.activations, it.reconstruction, seed=args.seed, progress=not args.quiet)
    truth = {"missing": data.features[list(interps["missing"].missing)], "spurious": interps["spurious"].spurious_directions}
    print(compare(reports, truth=truth))
    print()
    miss = interps["missing"]
    rep = reports["missing"]
    k = len(miss.missing)
    cos = np.abs(rep.nongaussian_directions[:k] @ data.features[list(miss.missing)].T)
    print(f"Missed features found in the 'missing' residual (top {k} directions vs the {k} true ones):")
    for j, f in enumerate(miss.missing):
        i = int(np.argmax(cos[:, j]))
        print(f"  feature {f:>4}: best |cos| = {cos[i, j]:.3f} (direction {i}, held-out kurtosis z = {rep.nongaussian_z[i]:.0f})")
    os.makedirs(args.out, exist_ok=True)
    plot = os.path.join(args.out, "missing.png")
    rep.plot(plot)
    for name, r in reports.items():
        r.to_json(os.path.join(args.out, f"{name.replace('+', '_')}.json"))
    print()
    print("MSE and FVU tie; pft's scores separate the Gaussian residual from the ones with structure.")
    print(f"plot: {plot}")
    print(f"reports: {args.out}/*.json  ({time.perf_counter() - t0:.1f} s)")
    return 0


def _positions(text: str) -> tuple[int, ...]:
    """``--exclude-positions``: comma-separated integers, or 'none' / '' for none."""
    low = text.strip().lower()
    try:
        return () if low in ("", "none") else tuple(int(v) for v in low.split(","))
    except ValueError:
        raise InputError(
            f"`--exclude-positions` must be comma-separated integers or 'none'; got {text!r}."
        ) from None


def _run_model_demo(args) -> int:
    """``pft demo --model minilm|smollm2``: the main job on a real model (see pft.models)."""
    from pft._output import check_output
    from pft.models import run_model_demo

    check_output(args.out, name="--out", folder=True)
    names = {"layer": "layer", "steps": "n_steps", "sae_size": "d_sae", "k": "k", "windows": "n_windows",
             "patch_windows": "n_patch_windows"}
    overrides = {v: getattr(args, k) for k, v in names.items() if getattr(args, k) is not None}
    if args.exclude_positions is not None:
        overrides["exclude_positions"] = _positions(args.exclude_positions)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    res = run_model_demo(args.model, seed=args.seed, progress=not args.quiet, device=args.device, **overrides)
    c = res.settings
    print(f"{res.title}")
    print(
        f"hooked {res.module}; TopK SAE d_sae={c['d_sae']}, k={c['k']}, {c['n_steps']} steps on "
        f"{c['n_windows']} windows x {c['length']} tokens of pydoc text; patched on {c['n_patch_windows']} other windows"
        + (f"; positions {c['exclude_positions']} of every window left out" if c["exclude_positions"] else "")
    )
    print()
    print(res.residual)
    print()
    print(res.patch)
    os.makedirs(args.out, exist_ok=True)
    paths = {}
    for what, rep in (("residual", res.residual), ("patch", res.patch)):
        paths[what] = os.path.join(args.out, f"{args.model}_{what}.png")
        rep.plot(paths[what])
        rep.to_json(os.path.join(args.out, f"{args.model}_{what}.json"))
    print()
    g = res.patch.gaussian_recovered
    print(
        f"CE-style recovery {res.patch.ce_loss_recovered:.3f} says how much of the zero-ablation damage the SAE "
        f"undoes; gaussian_recovered {g:.3f} says whether its residual is only noise to the model "
        "(1: yes; below: the model uses what the SAE missed)."
    )
    print(f"plots: {paths['residual']}, {paths['patch']}")
    times = ", ".join(f"{k} {v:.0f} s" for k, v in res.seconds.items())
    print(f"reports: {args.out}/{args.model}_*.json  ({times}; total {sum(res.seconds.values()):.0f} s)")
    return 0


def add_score(sub) -> None:
    p = sub.add_parser("score", help="score an interpretation's residual: ACTS minus RECON")
    p.add_argument("acts", help="activations: .npy, .safetensors or .pt (FILE:NAME picks one tensor)")
    p.add_argument("recon", help="reconstruction, same shape and formats")
    p.add_argument("--codes", help="the interpretation's codes (optional; for L0 and dead codes)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the report as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="save the plot")
    p.add_argument("--holdout", type=number("--holdout"), default=0.2)
    p.add_argument("--directions", type=integer("--directions"), default=None,
                   help="non-Gaussian directions to find (default min(8, d))")
    p.add_argument("--seed", type=seed(), default=0)
    p.add_argument(
        "--precision",
        type=choice("--precision", ("float64", "float32", "tf32")),
        metavar="{float64,float32,tf32}",
        default="float64",
        help="arithmetic of the one O(N d²) Gram product (float32: about twice as fast on a CPU, fields move < 1e-4)",
    )
    p.add_argument(
        "--device",
        default=None,
        help="torch device every pass runs on, e.g. cuda (under torchrun --distributed: cuda:LOCAL_RANK)",
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="under torchrun: each rank scores its contiguous share of the rows; rank 0 prints",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_score(args) -> int:
    import contextlib

    from pft._output import check_output, plot_formats
    from pft.io import RowReader, load_array
    from pft.residual import score

    inputs = [args.acts, args.recon, args.codes]
    if args.json_out:
        check_output(args.json_out, name="--json", inputs=inputs)
    if args.plot:
        check_output(args.plot, name="--plot", inputs=inputs, formats=plot_formats())
        if args.json_out and os.path.realpath(args.plot) == os.path.realpath(args.json_out):
            raise InputError(f"`--json` and `--plot` are the same file {args.plot!r}; give two names.")
    if args.distributed:
        require_torchrun()

    def open_rows(path, name):
        # .npy / .safetensors are read a chunk at a time, so files larger than memory work
        head = str(path).lower().split(":")[0] if ".safetensors:" in str(path).lower() else str(path).lower()
        if head.endswith((".npy", ".safetensors")) and not args.distributed:
            return RowReader(path, name=name)
        return load_array(path, name=name)

    acts = open_rows(args.acts, "ACTS")
    recon = open_rows(args.recon, "RECON")
    codes = load_array(args.codes, name="--codes") if args.codes else None
    rank, device = 0, args.device
    if args.distributed:
        from pft.distributed import process_group

        group = process_group(device)
    else:
        group = contextlib.nullcontext((0, 1, device))
    with group as (rank, world, device):
        if args.distributed:
            n = acts.shape[0]
            lo, hi = n * rank // world, n * (rank + 1) // world  # contiguous shares, in rank order
            acts, recon = acts[lo:hi], recon[lo:hi]
            codes = codes[lo:hi] if codes is not None else None
        rep = score(
            acts,
            recon,
            codes=codes,
            holdout=args.holdout,
            seed=args.seed,
            device=device,
            n_directions=args.directions,
            progress=not args.quiet and rank == 0,
            distributed=args.distributed,
            precision=args.precision,
        )
    if rank != 0:
        return 0
    print(rep)
    write_outputs(rep, json_out=args.json_out, plot=args.plot)
    return 0


def add_power(sub) -> None:
    p = sub.add_parser("power", help="detection power: knock out your own SAE latents and see what pft finds")
    p.add_argument("acts", help="activations (N, d): .npy, .safetensors or .pt (FILE:NAME picks one tensor)")
    p.add_argument("codes", help="the SAE's codes (N, m), same formats")
    p.add_argument("decoder", help="the SAE's decoder rows (m, d) as applied: x̂ = codes·decoder + bias")
    p.add_argument("--bias", help="decoder bias (d,) (default: zero)")
    p.add_argument("--rates", type=numbers("--rates", float), default="0.3,0.1,0.03,0.01,0.003,0.001",
                   help="target firing rates, comma-separated")
    p.add_argument("--per-rate", type=integer("--per-rate", minimum=1), default=4,
                   help="latents knocked out together per rate (default 4)")
    p.add_argument("--tokens", type=numbers("--tokens", int), default=None,
                   help="token counts to score, comma-separated (default: all)")
    p.add_argument("--directions", type=integer("--directions"), default=None,
                   help="directions reported per score (default min(8, d))")
    p.add_argument("--twin", type=choice("--twin", ("covariance", "isotropic")), metavar="{covariance,isotropic}",
                   default="covariance")
    p.add_argument("--seed", type=seed(), default=0)
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the result as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="save the recall plot")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_power(args) -> int:
    import numpy as np

    from pft.io import load_array
    from pft.residual import detection_power

    acts = np.asarray(load_array(args.acts, name="ACTS"), dtype=np.float64)
    codes = np.asarray(load_array(args.codes, name="CODES"))
    dec = np.asarray(load_array(args.decoder, name="DECODER"), dtype=np.float64)
    interp = (codes, dec) if not args.bias else (codes, dec, np.asarray(load_array(args.bias, name="--bias"), dtype=np.float64))
    res = detection_power(
        acts, interp, firing_rates=args.rates, n_latents_per_rate=args.per_rate,
        n_tokens=args.tokens or None, n_directions=args.directions,
        twin=args.twin, seed=args.seed, progress=not args.quiet,
    )
    print(res)
    write_outputs(res, json_out=args.json_out, plot=args.plot)
    return 0


def add_eval(sub) -> None:
    p = sub.add_parser(
        "eval",
        help="a saved model + a saved SAE + tokens: score and patch_scores in one report (offline)",
        description="Local files only: a Hugging Face model directory (or one written by "
        "pft.interop.save_hooked_transformer), an SAE directory in SAELens' format (cfg.json + "
        "sae_weights.safetensors) or pft's, and tokens (a text file, a .npy of token ids, or Python's docs).",
    )
    p.add_argument("--model", required=True, metavar="DIR", help="model directory")
    p.add_argument("--sae", required=True, metavar="DIR", help="SAE directory")
    p.add_argument("--hook", default=None, help="module path / hook name (default: the SAE's cfg.metadata.hook_name)")
    p.add_argument("--tokens", default=None, metavar="FILE", help="text file or .npy of token ids (default: Python's docs)")
    p.add_argument("--tl-name", default=None, help="load the HF directory into TransformerLens under this name")
    p.add_argument("--context", type=integer("--context", minimum=1), default=128, help="window length (default 128)")
    p.add_argument("--n-seqs", type=integer("--n-seqs", minimum=0), default=64,
                   help="windows to evaluate (default 64; 0: all)")
    p.add_argument("--batch-size", type=integer("--batch-size", minimum=1), default=8)
    p.add_argument("--exclude-tokens", default="special",
                   help="'special' (BOS/EOS/PAD, SAELens' default), 'none', or comma-separated token ids")
    p.add_argument("--rungs", default=None, help="comma-separated rungs (default all; SAELens': clean,zero_ablation,recon)")
    p.add_argument("--resamples", type=integer("--resamples"), default=4)
    p.add_argument("--convention", type=choice("--convention", ("pft", "saelens")), metavar="{pft,saelens}",
                   default="pft", help="saelens: the ablation rungs replace masked tokens too, as run_evals does")
    p.add_argument("--seed", type=seed(), default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the report as JSON")
    p.add_argument("--plot-dir", metavar="DIR", help="save score.png and patch.png there")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_eval(args) -> int:
    from pft.interop import evaluate

    ex = args.exclude_tokens
    if ex == "none":
        ex = None
    elif ex != "special":
        try:
            ex = [int(t) for t in ex.split(",") if t.strip()]
        except ValueError:
            raise InputError(
                f"`--exclude-tokens` must be 'special', 'none' or comma-separated integers; got {ex!r}."
            ) from None
    res = evaluate(
        args.model, args.sae, args.tokens, hook=args.hook, context=args.context,
        n_seqs=args.n_seqs or None, batch_size=args.batch_size, exclude_tokens=ex,
        rungs=[r.strip() for r in args.rungs.split(",")] if args.rungs else None, n_resamples=args.resamples,
        convention=args.convention, seed=args.seed, device=args.device, tl_name=args.tl_name,
        progress=not args.quiet,
    )
    print(res)
    if args.json_out:
        res.to_json(args.json_out)
        print(f"json: {args.json_out}")
    if args.plot_dir:
        for path in res.save_plots(args.plot_dir):
            print(f"plot: {path}")
    return 0
