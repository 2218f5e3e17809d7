"""The ``pft`` command line. The only module in pft that parses argv or prints.

Each subcommand is a pair ``_add_<name>(subparsers)`` / ``_run_<name>(args) -> int``.
Bad input (any :class:`pft.errors.InputError`, a missing file) exits 2 with one line on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys

from pft.errors import PftError

__all__ = ["main"]


def _seed(text: str) -> int:
    """argparse type of ``--seed``: a non-negative integer."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer; got {text!r}") from None
    if value < 0 or value >= 2**63:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer below 2**63; got {text!r}")
    return value


def _require_torchrun() -> None:
    """``--distributed`` needs the environment torchrun sets up; refuse before any work."""
    from pft.errors import InputError

    missing = [v for v in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return
        raise InputError(
            f"`--distributed` runs under torchrun (e.g. torchrun --nproc-per-node 2 -m pft ...), "
            f"which sets {', '.join(missing)}; none of that is set here. Drop --distributed to run in one process."
        )


def _save_plot(report, path: str) -> None:
    """``report.plot`` into a temporary file renamed over ``path`` (checked beforehand)."""
    from pft._output import atomic_path

    with atomic_path(path) as tmp:
        report.plot(tmp)


def _add_demo(sub) -> None:
    p = sub.add_parser("demo", help="run the toy main job end to end and print what pft finds")
    p.add_argument("--out", default="pft-demo", help="folder for the plot and JSON (default: pft-demo)")
    p.add_argument("--seed", type=_seed, default=0)
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
    p.add_argument("--device", default=None, help="real models: torch device for the model, SAE and score, e.g. cuda")
    p.add_argument(
        "--exclude-positions",
        default=None,
        help="real models: window positions left out of the SAE, the score and every splice and average, "
        "comma-separated (default: 0 for smollm2, its attention sink; none for minilm); 'none' keeps them all",
    )


def _run_demo(args) -> int:
    if args.model != "toy":
        return _run_model_demo(args)
    import time

    import numpy as np

    from pft.residual import compare, score
    from pft.toy import interpretations, superposition

    from pft._output import check_output

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
    _save_plot(rep, plot)
    for name, r in reports.items():
        r.to_json(os.path.join(args.out, f"{name.replace('+', '_')}.json"))
    print()
    print("MSE and FVU tie; pft's scores separate the Gaussian residual from the ones with structure.")
    print(f"plot: {plot}")
    print(f"reports: {args.out}/*.json  ({time.perf_counter() - t0:.1f} s)")
    return 0


def _run_model_demo(args) -> int:
    """``pft demo --model minilm|smollm2``: the main job on a real model (see pft.models)."""

    from pft._output import check_output
    from pft.models import run_model_demo

    check_output(args.out, name="--out", folder=True)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    names = {"layer": "layer", "steps": "steps", "sae_size": "d_sae", "k": "k", "windows": "n_windows", "patch_windows": "patch_windows"}
    overrides = {v: getattr(args, k) for k, v in names.items() if getattr(args, k) is not None}
    if args.exclude_positions is not None:
        from pft.errors import InputError

        text = args.exclude_positions.strip().lower()
        try:
            overrides["exclude_positions"] = () if text in ("", "none") else tuple(int(v) for v in text.split(","))
        except ValueError:
            raise InputError(
                f"`--exclude-positions` takes comma-separated integers or 'none'; got {args.exclude_positions!r}."
            ) from None
    res = run_model_demo(args.model, seed=args.seed, progress=not args.quiet, device=args.device, **overrides)
    c = res.settings
    print(f"{res.title}")
    print(
        f"hooked {res.module}; TopK SAE d_sae={c['d_sae']}, k={c['k']}, {c['steps']} steps on "
        f"{c['n_windows']} windows x {c['length']} tokens of pydoc text; patched on {c['patch_windows']} other windows"
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
        _save_plot(rep, paths[what])
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
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument(
        "--precision",
        choices=["float64", "float32", "tf32"],
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


def _run_score(args) -> int:
    from pft._output import check_output, plot_formats
    from pft.errors import InputError
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
        _require_torchrun()

    def open_rows(path, name):
        # .npy / .safetensors are read a chunk at a time, so files larger than memory work
        head = str(path).lower().split(":")[0] if ".safetensors:" in str(path).lower() else str(path).lower()
        if head.endswith((".npy", ".safetensors")) and not args.distributed:
            return RowReader(path, name=name)
        return load_array(path, name=name)

    acts = open_rows(args.acts, "ACTS")
    recon = open_rows(args.recon, "RECON")
    codes = load_array(args.codes, name="--codes") if args.codes else None
    rank = 0
    if args.distributed:
        import torch.distributed as dist

        if not dist.is_initialized():
            cuda = bool(args.device) and str(args.device).startswith("cuda")
            dist.init_process_group("nccl" if cuda else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if str(args.device) == "cuda":  # one GPU per rank: torchrun's LOCAL_RANK picks it
            import torch

            args.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(torch.device(args.device))
        n = acts.shape[0]
        lo, hi = n * rank // world, n * (rank + 1) // world  # contiguous shares, in rank order
        acts, recon = acts[lo:hi], recon[lo:hi]
        codes = codes[lo:hi] if codes is not None else None
    try:
        rep = score(
            acts,
            recon,
            codes=codes,
            holdout=args.holdout,
            seed=args.seed,
            device=args.device,
            n_directions=args.directions,
            progress=not args.quiet and rank == 0,
            distributed=args.distributed,
            precision=args.precision,
        )
    finally:
        if args.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    if rank != 0:
        return 0
    print(rep)
    if args.json_out:
        rep.to_json(args.json_out)
        print(f"json: {args.json_out}")
    if args.plot:
        _save_plot(rep, args.plot)
        print(f"plot: {args.plot}")
    return 0


# --- pft diagrams (issue 3) -------------------------------------------------------------
def _add_diagrams(sub) -> None:
    p = sub.add_parser(
        "diagrams",
        help="enumerate Feynman diagrams with exact symmetry factors, or rebuild the catalog",
        description="pft diagrams --valences 3,4 (--loops L | --vertices 3:2,4:1) [--external N] "
        "[--one-pi] [--format table|json|tikz|svg];  pft diagrams catalog --out DIR",
    )
    p.add_argument("action", nargs="?", choices=["catalog"], help="`catalog`: write the diagram catalog")
    p.add_argument("--out", help="catalog folder (with `catalog`)")
    p.add_argument("--valences", help="allowed vertex degrees, comma separated, e.g. 3,4")
    p.add_argument("--loops", help="loop number L")
    p.add_argument("--vertices", help="exact vertex content, e.g. 3:2,4:1")
    p.add_argument("--external", default="0", help="number of labelled external legs (default 0)")
    p.add_argument("--one-pi", action="store_true", help="only one-particle-irreducible diagrams")
    p.add_argument("--amputated", action="store_true", help="no corrections on external legs")
    p.add_argument("--disconnected", action="store_true", help="include disconnected diagrams")
    p.add_argument("--format", default="table", choices=["table", "json", "tikz", "svg"])


def _int_arg(name, text):
    from pft.errors import InputError

    try:
        return int(text)
    except (TypeError, ValueError):
        raise InputError(f"`--{name}` must be an integer; got {text!r}.") from None


def _run_diagrams(args) -> int:
    import json

    from pft.errors import InputError
    from pft.symbolic import correlator_diagrams

    if args.action == "catalog":
        from pft.symbolic._catalog import write_catalog

        if not args.out:
            raise InputError("`pft diagrams catalog` needs `--out DIR` (e.g. --out diagrams/).")
        from pft._output import check_output

        check_output(args.out, name="--out", folder=True)
        paths = write_catalog(args.out)
        print(f"wrote {len(paths)} files under {args.out}")
        return 0
    if args.out:
        raise InputError("`--out` belongs to `pft diagrams catalog --out DIR`.")
    if not args.valences:
        raise InputError("`--valences` is required, e.g. --valences 3,4.")
    valences = tuple(_int_arg("valences", v) for v in args.valences.split(","))
    if (args.loops is None) == (args.vertices is None):
        raise InputError("give exactly one of `--loops L` and `--vertices 3:2,4:1`.")
    loops = vertices = None
    if args.loops is not None:
        loops = _int_arg("loops", args.loops)
    else:
        vertices = {}
        for item in args.vertices.split(","):
            k, sep, m = item.partition(":")
            if not sep:
                raise InputError(f"`--vertices` items look like valence:count (3:2); got {item!r}.")
            vertices[_int_arg("vertices", k)] = _int_arg("vertices", m)
    diagrams = correlator_diagrams(
        _int_arg("external", args.external),
        valences,
        loops=loops,
        vertices=vertices,
        connected=not args.disconnected,
        one_pi=args.one_pi,
        amputated=args.amputated,
    )
    if args.format == "json":
        print("[" + ",\n ".join(json.dumps(d.to_dict()) for d in diagrams) + "]")
    elif args.format == "tikz":
        from pft.symbolic._draw import tikz_document

        print(tikz_document([d.to_tikz() for d in diagrams], [f"$1/{d.automorphisms}$" for d in diagrams]), end="")
    elif args.format == "svg":
        from pft.symbolic._draw import svg_sheet

        print(svg_sheet(diagrams), end="")
    else:
        from fractions import Fraction

        rows = [("#", "vertices", "loops", "|Aut|", "1PI", "edges")]
        for i, d in enumerate(diagrams):
            counts = " ".join(f"{k}:{m}" for k, m in d.vertex_counts.items()) or "-"
            edges = " ".join(f"{u}-{v}" for u, v in d.edges)
            rows.append((str(i), counts, str(d.n_loops), str(d.automorphisms),
                         "yes" if d.is_one_particle_irreducible else "no", edges))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        for r in rows:
            print("  ".join(x.rjust(w) for x, w in zip(r[:5], widths)) + "  " + r[5])
        total = sum((d.symmetry_factor for d in diagrams), Fraction(0))
        print(f"{len(diagrams)} diagrams, sum of 1/|Aut| = {total}")
    return 0


_COMMANDS = ["demo", "score", "diagrams"]


def _add_degrade(sub) -> None:
    p = sub.add_parser(
        "degrade",
        help="toy of superposition: local learning coefficient and residual scores on tempered copies",
    )
    p.add_argument("--temperatures", default="0,1,4,16",
                   help="temperatures 1/β as multiples of log n, comma-separated (default 0,1,4,16; 0 = trained)")
    p.add_argument("--draws", type=int, default=3, help="model copies per non-zero temperature (default 3)")
    p.add_argument("--tokens", type=int, default=2000, help="toy tokens, the n of nβ (default 2000)")
    p.add_argument("--burn-in", type=int, default=2000, help="SGLD steps before the first draw (default 2000)")
    p.add_argument("--out", default="pft-degrade", help="folder for the plot and JSON (default: pft-degrade)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_degrade(args) -> int:
    import math
    import warnings

    import numpy as np
    import torch

    import pft.toy
    from pft.degrade import MixingWarning, TemperedPosterior, degraded_models
    from pft.degrade._toymodel import train_toy_model
    from pft.errors import InputError
    from pft.residual._across import score_across

    from pft._output import atomic_write, check_output

    check_output(args.out, name="--out", folder=True)
    try:
        multiples = [float(t) for t in args.temperatures.split(",")]
    except ValueError:
        raise InputError(
            f"`--temperatures` must be comma-separated numbers (multiples of log n); got {args.temperatures!r}."
        ) from None
    for name in ("draws", "tokens", "burn_in"):
        if getattr(args, name) < (0 if name == "burn_in" else 1):
            raise InputError(f"`--{name.replace('_', '-')}` must be a positive integer; got {getattr(args, name)}.")
    if args.tokens < 50:
        raise InputError(f"`--tokens` must be at least 50 for the residual scores; got {args.tokens}.")
    n_features, d, gamma = 24, 8, 10.0
    data = pft.toy.superposition(args.tokens, d=d, n_features=n_features, density=0.05, seed=args.seed)
    codes = data.codes * 0.93 ** np.arange(n_features)
    model, c = train_toy_model(codes, d=d, steps=1500, seed=args.seed)
    loss_fn = torch.nn.MSELoss()
    probe = TemperedPosterior(model, loss_fn, (c, c), localization=gamma, step_size=1e-6, seed=args.seed)
    eps = 0.04 / (probe.nbeta_ * probe.max_curvature() + gamma)
    post = TemperedPosterior(model, loss_fn, (c, c), localization=gamma, step_size=eps, seed=args.seed)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", MixingWarning)
        samples = post.sample(1000, n_chains=4, burn_in=args.burn_in, progress=not args.quiet)
    lc = post.learning_coefficient()
    print(f"toy of superposition: {n_features} features in {d} dimensions, {post.d_} parameters, "
          f"n = {args.tokens}, step size {eps:.2g}")
    print(lc)
    for w in caught:
        print(f"note: {w.message}")
    verdict = "singular: pft's Laplace expansion does not apply" if lc.value + 4 * lc.se < lc.regular_value else "consistent with regular"
    print(f"=> λ̂ = {lc.value:.3g} ± {lc.se:.2g} against d/2 = {lc.regular_value:g}: {verdict}\n")

    w_star = model.W.detach().numpy().T.copy()
    order = np.argsort(codes.var(axis=0) * (w_star**2).sum(axis=1))

    def without(drop):
        keep = np.setdiff1d(np.arange(n_features), drop)
        return codes[:, keep] @ w_star[keep]

    interps = {
        "dictionary": codes @ w_star,
        "minus 4 least important": without(order[:4]),
        "minus 3 most important": without(order[-3:]),
    }

    def activations(m):
        with torch.no_grad():
            return m.hidden(c).numpy() + data.background

    log_n = math.log(args.tokens)
    copies = degraded_models(
        model, loss_fn, (c, c), temperatures=[m * log_n for m in multiples], draws_per_temperature=args.draws,
        localization=gamma, step_size=eps, burn_in=args.burn_in, thin=200, seed=args.seed, progress=not args.quiet,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MixingWarning)
        report = score_across(copies, activations, interps, seed=args.seed, progress=not args.quiet)
    print(report)
    print("\nadvantage of 'dictionary' in non-Gaussian bits (paired over the same copies; holds if > 2 se):")
    for other in list(interps)[1:]:
        cells = [f"1/β={t:.3g}: {m:+.3f}±{s:.3f}" for t, m, s, _ in report.advantage("nongaussian_bits", "dictionary", other)]
        print(f"  vs {other}: " + ", ".join(cells))
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "learning_coefficient.json"), lc.to_json())
    atomic_write(os.path.join(args.out, "samples.json"), samples.to_json())
    atomic_write(os.path.join(args.out, "across.json"), report.to_json())
    _save_plot(samples, os.path.join(args.out, "chains.png"))
    _save_plot(report, os.path.join(args.out, "across.png"))
    print(f"\nfiles: {args.out}/learning_coefficient.json, samples.json, across.json, chains.png, across.png")
    return 0


_COMMANDS.append("degrade")


# --- pft power (issue 12) -----------------------------------------------------------------
def _add_power(sub) -> None:
    p = sub.add_parser("power", help="detection power: knock out your own SAE latents and see what pft finds")
    p.add_argument("acts", help="activations (N, d): .npy, .safetensors or .pt (FILE:NAME picks one tensor)")
    p.add_argument("codes", help="the SAE's codes (N, m), same formats")
    p.add_argument("decoder", help="the SAE's decoder rows (m, d) as applied: x̂ = codes·decoder + bias")
    p.add_argument("--bias", help="decoder bias (d,) (default: zero)")
    p.add_argument("--rates", default="0.3,0.1,0.03,0.01,0.003,0.001", help="target firing rates, comma-separated")
    p.add_argument("--per-rate", type=int, default=4, help="latents knocked out together per rate (default 4)")
    p.add_argument("--tokens", default=None, help="token counts to score, comma-separated (default: all)")
    p.add_argument("--directions", type=int, default=None, help="directions reported per score (default min(8, d))")
    p.add_argument("--twin", choices=("covariance", "isotropic"), default="covariance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the result as JSON")
    p.add_argument("--plot", metavar="OUT.png", help="save the recall plot")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_power(args) -> int:
    import numpy as np

    from pft.errors import InputError
    from pft.io import load_array
    from pft.residual import detection_power

    def numbers(text, name, kind):
        try:
            return [kind(v) for v in str(text).split(",") if v.strip()]
        except ValueError as exc:
            raise InputError(f"`{name}` must be comma-separated numbers; got {text!r}.") from exc

    acts = np.asarray(load_array(args.acts, name="ACTS"), dtype=np.float64)
    codes = np.asarray(load_array(args.codes, name="CODES"))
    dec = np.asarray(load_array(args.decoder, name="DECODER"), dtype=np.float64)
    interp = (codes, dec) if not args.bias else (codes, dec, np.asarray(load_array(args.bias, name="--bias"), dtype=np.float64))
    res = detection_power(
        acts, interp, firing_rates=numbers(args.rates, "--rates", float), latents_per_rate=args.per_rate,
        n_tokens=numbers(args.tokens, "--tokens", int) if args.tokens else None, n_directions=args.directions,
        twin=args.twin, seed=args.seed, progress=not args.quiet,
    )
    print(res)
    if args.json_out:
        res.to_json(args.json_out)
        print(f"json: {args.json_out}")
    if args.plot:
        res.plot(args.plot)
        print(f"plot: {args.plot}")
    return 0


_COMMANDS.append("power")
# --- pft laplace / pft edgeworth (issue 4) ------------------------------------------------
def _add_laplace(sub) -> None:
    p = sub.add_parser(
        "laplace",
        help="exact Laplace expansion of log ∫ exp(-n S(x)) dx in 1/n, diagram by diagram",
        description='pft laplace "x**2/2 + a*x**3/6 + b*x**4/24" --var x --order 2. The formula is '
        "parsed by a whitelist (numbers, names, + - * / **, exp log sqrt sin cos tan sinh cosh tanh "
        "asinh atan erf abs); nothing is evaluated as Python.",
    )
    p.add_argument("action", help="the action S, e.g. \"x**2/2 + a*x**3/6\"")
    p.add_argument("--var", action="append", required=True,
                   help="an integration variable; repeat (--var x --var y) or separate by commas")
    p.add_argument("--order", default="2", help="number of 1/n corrections (default 2)")
    p.add_argument("--point", help="the minimum, comma separated (default: solve ∇S = 0)")
    p.add_argument("--moments", action="store_true", help="also print the corrections to <x> and Cov(x)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")


def _run_laplace(args) -> int:
    from pft.symbolic import laplace_expansion, parse_expression

    order = _nonnegative_int("order", args.order)
    action = parse_expression(args.action)
    symbols = {s.name: s for s in action.free_symbols}
    names = [v.strip() for item in args.var for v in item.split(",") if v.strip()]
    point = None
    if args.point is not None:
        point = [parse_expression(v, symbols=symbols) for v in args.point.split(",")]
    result = laplace_expansion(action, names, order=order, point=point)
    if args.json:
        print(result.to_json())
        return 0
    print(result)
    if args.moments and order:
        print()
        print(result.mean(order))
        print()
        print(result.covariance(order))
    return 0


def _add_edgeworth(sub) -> None:
    p = sub.add_parser(
        "edgeworth",
        help="Edgeworth series of a nearly Gaussian density (symbolic, or numbers from cumulants)",
        description="pft edgeworth --order 2 prints the series and the Cornish-Fisher quantile; with "
        "--cumulants k1,k2,k3,... it evaluates the density at --x points and quantiles at --q.",
    )
    p.add_argument("--order", default="2", help="keep terms up to n^(-order/2) (default 2)")
    p.add_argument("--dim", default="1", help="dimension of the symbolic series (default 1)")
    p.add_argument("--cumulants", help="κ1,κ2,κ3,... of a scalar variable (formulas allowed, e.g. 2/sqrt(10))")
    p.add_argument("--x", help="points for the density, comma separated")
    p.add_argument("--q", help="probabilities for Cornish-Fisher quantiles, comma separated")


def _run_edgeworth(args) -> int:
    order = _nonnegative_int("order", args.order)
    dim = _nonnegative_int("dim", args.dim)
    if args.cumulants is None:
        from pft.errors import InputError
        from pft.symbolic import edgeworth

        if args.x or args.q:
            raise InputError("`--x` and `--q` need `--cumulants k1,k2,k3,...`")
        result = edgeworth(order, dim=dim)
        print(result)
        if result.quantile is not None:
            print(f"Cornish-Fisher: w(z) = {result.quantile}")
        return 0
    from pft.numeric import cornish_fisher, edgeworth_logpdf, edgeworth_pdf

    cumulants = _numbers("cumulants", args.cumulants)
    xs = _numbers("x", args.x) if args.x else [-2.0, -1.0, 0.0, 1.0, 2.0]
    import numpy as np

    from pft.errors import InputError

    try:
        with np.errstate(over="raise", invalid="raise"):
            pdf = edgeworth_pdf(xs, cumulants, order=order)
            logpdf = edgeworth_logpdf(xs, cumulants, order=order)
    except FloatingPointError:
        far = max(xs, key=abs)
        raise InputError(
            f"`--x` {far:g} is too far out: the order-{order} Edgeworth polynomial overflows float64 there. "
            "Use points within a few hundred standard deviations (the density is 0 to double precision "
            "beyond about 40)."
        ) from None
    print(f"Edgeworth density, order {order}, cumulants {cumulants}")
    print(f"{'x':>12}  {'pdf':>14}  {'logpdf':>14}")
    for x, f, lf in zip(xs, pdf, logpdf):
        print(f"{x:>12.6g}  {f:>14.8g}  {lf:>14.8g}")
    if args.q:
        qs = _numbers("q", args.q)
        print(f"\n{'q':>12}  {'Cornish-Fisher quantile':>24}")
        for q, w in zip(qs, cornish_fisher(qs, cumulants, order=order)):
            print(f"{q:>12.6g}  {w:>24.10g}")
    return 0


def _nonnegative_int(name, text) -> int:
    from pft.errors import InputError

    try:
        value = int(text)
    except (TypeError, ValueError):
        raise InputError(f"`--{name}` must be a non-negative integer; got {text!r}") from None
    if value < 0:
        raise InputError(f"`--{name}` must be a non-negative integer; got {value}")
    return value


def _numbers(name, text) -> list[float]:
    """Comma-separated numbers or constant formulas, through the whitelist parser."""
    import math

    from pft.errors import InputError
    from pft.symbolic import parse_expression

    out = []
    for item in text.split(","):
        expr = parse_expression(item.strip())
        if expr.free_symbols or not expr.is_real:
            raise InputError(f"`--{name}` items must be real numbers; got {item.strip()!r}")
        value = float(expr)
        if not math.isfinite(value):
            raise InputError(f"`--{name}` items must be finite numbers; got {item.strip()!r}")
        out.append(value)
    return out


_COMMANDS += ["laplace", "edgeworth"]


# --- scaling (issue 6) -------------------------------------------------------------------------


def _parse_int_list(text: str, name: str) -> list[int]:
    """``"16,32,64"`` or ranges ``"2:32"`` (inclusive), ``"2:32:2"`` (step), ``"2:64:x2"`` (doubling)."""
    from pft.errors import InputError

    out: list[int] = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ":" in part:
                bits = part.split(":")
                if len(bits) not in (2, 3):
                    raise ValueError
                lo, hi = int(bits[0]), int(bits[1])
                step = bits[2] if len(bits) == 3 else "1"
                if step.startswith("x"):
                    factor = int(step[1:])
                    if factor < 2 or lo < 1:
                        raise ValueError
                    v = lo
                    while v <= hi:
                        out.append(v)
                        v *= factor
                else:
                    if int(step) < 1:
                        raise ValueError
                    out.extend(range(lo, hi + 1, int(step)))
            else:
                out.append(int(part))
        except ValueError:
            raise InputError(
                f"`--{name}` expects integers like 16,32 or ranges 2:32, 2:32:2, 2:64:x2; got {text!r}."
            ) from None
    if not out or min(out) < 1:
        raise InputError(f"`--{name}` must list positive integers; got {text!r}.")
    return out


def _add_scaling(sub) -> None:
    p = sub.add_parser("scaling", help="excess kurtosis of random MLPs against L/n: ensembles vs finite-width theory")
    p.add_argument("--activation", default="relu", help="comma-separated activations (default: relu)")
    p.add_argument("--widths", default="16,32,64,128", help="hidden widths, e.g. 16,32,64 or 16:128:x2")
    p.add_argument("--depths", default="2:16:x2", help="depths, e.g. 2:32 (inclusive), 2:32:2, 2:64:x2")
    p.add_argument("--networks", type=int, default=20000, help="networks per cell (default 20000)")
    p.add_argument("--method", choices=["exact", "weights"], default="exact")
    p.add_argument("--C-W", dest="C_W", type=float, default=None, help="weight variance (default: critical)")
    p.add_argument("--C-b", dest="C_b", type=float, default=None, help="bias variance (default: critical)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--store", default=None, help="JSON-lines store; finished cells are kept and a rerun resumes")
    p.add_argument("--plot", default=None, help="write the figure here (png, pdf, svg)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="under torchrun: each cell's networks are split over the ranks; rank 0 writes the store and prints",
    )


def _run_scaling(args) -> int:
    from pft._output import check_output, plot_formats
    from pft.scaling import Study

    if args.store:
        check_output(args.store, name="--store")
    if args.plot:
        check_output(args.plot, name="--plot", inputs=[args.store], formats=plot_formats())
    if args.distributed:
        _require_torchrun()

    grid = {
        "activation": [a for a in args.activation.split(",") if a.strip()],
        "width": _parse_int_list(args.widths, "widths"),
        "depth": _parse_int_list(args.depths, "depths"),
    }
    if args.C_W is not None:
        grid["C_W"] = args.C_W
    if args.C_b is not None:
        grid["C_b"] = args.C_b
    study = Study(grid, networks=args.networks, method=args.method, seed=args.seed, device=args.device,
                  progress=not args.quiet)  # bad input fails here, before any rank waits on another
    rank = 0
    if args.distributed:

        import torch
        import torch.distributed as dist

        cuda = str(args.device).startswith("cuda")
        if str(args.device) == "cuda":  # one GPU per rank: torchrun's LOCAL_RANK picks it
            study.device = f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
            torch.cuda.set_device(torch.device(study.device))
        if not dist.is_initialized():
            dist.init_process_group("nccl" if cuda else "gloo")
        rank = dist.get_rank()
    try:
        result = study.run(store=args.store, distributed=args.distributed)
    finally:
        if args.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()
    if rank != 0:
        return 0
    print(result.to_json() if args.json else result.table())
    if args.plot:
        _save_plot(result, args.plot)
        if not args.json:
            print(f"figure: {args.plot}")
    return 0


_COMMANDS.append("scaling")


# --- pft eval (issue 14) ----------------------------------------------------------------
def _add_eval(sub) -> None:
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
    p.add_argument("--context", type=int, default=128, help="window length (default 128)")
    p.add_argument("--n-seqs", type=int, default=64, help="windows to evaluate (default 64; 0: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--exclude-tokens", default="special",
                   help="'special' (BOS/EOS/PAD, SAELens' default), 'none', or comma-separated token ids")
    p.add_argument("--rungs", default=None, help="comma-separated rungs (default all; SAELens': clean,zero_ablation,recon)")
    p.add_argument("--resamples", type=int, default=4)
    p.add_argument("--convention", choices=["pft", "saelens"], default="pft",
                   help="saelens: the ablation rungs replace masked tokens too, as run_evals does")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None)
    p.add_argument("--json", dest="json_out", metavar="OUT", help="write the report as JSON")
    p.add_argument("--plot-dir", metavar="DIR", help="save score.png and patch.png there")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_eval(args) -> int:
    from pft.errors import InputError
    from pft.interop import evaluate

    ex = args.exclude_tokens
    if ex == "none":
        ex = None
    elif ex != "special":
        try:
            ex = [int(t) for t in ex.split(",") if t.strip()]
        except ValueError:
            raise InputError(f"--exclude-tokens must be 'special', 'none' or comma-separated integers; got {ex!r}.") from None
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
        for path in res.plot(args.plot_dir):
            print(f"plot: {path}")
    return 0


_COMMANDS.append("eval")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pft",
        description="Perturbative field-theory analysis of neural-network residuals.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in _COMMANDS:
        globals()[f"_add_{name}"](sub)
    return parser


def _one_line(text: str) -> str:
    return " ".join(text.split())


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pft`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    runner = globals()[f"_run_{args.command.replace('-', '_')}"]
    try:
        return int(runner(args) or 0)
    except PftError as exc:
        print(f"pft {args.command}: error: {_one_line(str(exc))}", file=sys.stderr)
        return 2
    except OSError as exc:  # missing file, permission, disk full, path under a file, ...
        what = exc.strerror or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        print(f"pft {args.command}: error: {_one_line(what + where)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pft {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
