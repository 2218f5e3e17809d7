"""The ``pft`` command line. The only module in pft that parses argv or prints.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args) -> int``.
Bad input (any :class:`pft.errors.InputError`, a missing file) exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from pft.errors import PftError

__all__ = ["main"]


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the toy main job end to end and print what pft finds")
    p.add_argument("--out", default="pft-demo", help="folder for the plot and JSON (default: pft-demo)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tokens", type=int, default=20000, help="number of toy tokens (default 20000)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--model",
        choices=["toy", "minilm", "smollm2"],
        default="toy",
        help="toy (default), or a real model from the `models` extra: capture a layer, train a TopK "
        "SAE, score its residual and patch it back into the model",
    )
    p.add_argument("--layer", type=int, default=None, help="real models: block whose output is hooked")
    p.add_argument("--steps", type=int, default=None, help="real models: SAE training steps")
    p.add_argument("--sae-size", type=int, default=None, help="real models: SAE dictionary size")
    p.add_argument("--k", type=int, default=None, help="real models: active SAE latents per token")
    p.add_argument("--windows", type=int, default=None, help="real models: text windows to train and score on")
    p.add_argument("--patch-windows", type=int, default=None, help="real models: text windows for the patched runs")
    p.add_argument("--threads", type=int, default=None, help="real models: torch CPU threads")


def _run_demo(args) -> int:
    if args.model != "toy":
        return _run_model_demo(args)
    import os
    import time

    import numpy as np

    from pft.residual import compare, score
    from pft.toy import interpretations, superposition

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


def _run_model_demo(args) -> int:
    """``pft demo --model minilm|smollm2``: the main job on a real model (see pft.models)."""
    import os

    from pft.models import run_model_demo

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    names = {"layer": "layer", "steps": "steps", "sae_size": "d_sae", "k": "k", "windows": "n_windows", "patch_windows": "patch_windows"}
    overrides = {v: getattr(args, k) for k, v in names.items() if getattr(args, k) is not None}
    res = run_model_demo(args.model, seed=args.seed, progress=not args.quiet, **overrides)
    c = res.settings
    print(f"{res.title}")
    print(
        f"hooked {res.module}; TopK SAE d_sae={c['d_sae']}, k={c['k']}, {c['steps']} steps on "
        f"{c['n_windows']} windows x {c['length']} tokens of pydoc text; patched on {c['patch_windows']} other windows"
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


def _add_score(sub) -> None:
    p = sub.add_parser("score", help="score an interpretation's residual: ACTS minus RECON")
    p.add_argument("acts", help="activations: .npy, .safetensors or .pt (FILE:NAME picks one tensor)")
    p.add_argument("recon", help="reconstruction, same shape and formats")
    p.add_argument("--codes", help="the interpretation's codes (optional; for L0 and dead codes)")
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the report as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="save the plot")
    p.add_argument("--holdout", type=float, default=0.2)
    p.add_argument("--directions", type=int, default=None, help="non-Gaussian directions to find (default min(8, d))")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="torch device for the heavy blocks, e.g. cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_score(args) -> int:
    from pft.io import load_array
    from pft.residual import score

    acts = load_array(args.acts, name="ACTS")
    recon = load_array(args.recon, name="RECON")
    codes = load_array(args.codes, name="--codes") if args.codes else None
    rep = score(
        acts,
        recon,
        codes=codes,
        holdout=args.holdout,
        seed=args.seed,
        device=args.device,
        n_directions=args.directions,
        progress=not args.quiet,
    )
    print(rep)
    if args.json_out:
        rep.to_json(args.json_out)
        print(f"json: {args.json_out}")
    if args.plot:
        rep.plot(args.plot)
        print(f"plot: {args.plot}")
    return 0


_COMMANDS = ["demo", "score"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pft",
        description="Perturbative field-theory analysis of neural-network residuals.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        globals()[f"_add_{name}"](sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pft`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    runner = globals()[f"_run_{args.command.replace('-', '_')}"]
    try:
        return int(runner(args) or 0)
    except (PftError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        print(f"pft {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pft {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
