"""``pft degrade``: :func:`pft.degrade.degrade_experiment` from the command line, with its files."""

from __future__ import annotations

import os

from pft.cli._args import integer, numbers, seed

__all__ = ["add_degrade", "run_degrade"]


def add_degrade(sub) -> None:
    p = sub.add_parser(
        "degrade",
        help="toy of superposition: local learning coefficient and residual scores on tempered copies",
    )
    p.add_argument("--temperatures", type=numbers("--temperatures", float), default="0,1,4,16",
                   help="temperatures 1/β as multiples of log n, comma-separated (default 0,1,4,16; 0 = trained)")
    p.add_argument("--draws", type=integer("--draws", minimum=1), default=3,
                   help="model copies per non-zero temperature (default 3)")
    p.add_argument("--tokens", type=integer("--tokens", minimum=50), default=2000,
                   help="toy tokens, the n of nβ, at least 50 for the residual scores (default 2000)")
    p.add_argument("--burn-in", type=integer("--burn-in", minimum=0), default=2000,
                   help="SGLD steps before the first draw (default 2000)")
    p.add_argument("--out", default="pft-degrade", help="folder for the plot and JSON (default: pft-degrade)")
    p.add_argument("--seed", type=seed(), default=0)
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run_degrade(args) -> int:
    from pft._output import atomic_write, check_output
    from pft.degrade import degrade_experiment

    check_output(args.out, name="--out", folder=True)
    res = degrade_experiment(
        args.tokens, temperatures=args.temperatures, n_copies=args.draws, burn_in=args.burn_in,
        seed=args.seed, progress=not args.quiet,
    )
    print(res)
    os.makedirs(args.out, exist_ok=True)
    atomic_write(os.path.join(args.out, "learning_coefficient.json"), res.learning_coefficient.to_json())
    atomic_write(os.path.join(args.out, "samples.json"), res.samples.to_json())
    atomic_write(os.path.join(args.out, "across.json"), res.across.to_json())
    atomic_write(os.path.join(args.out, "experiment.json"), res.to_json())
    res.samples.plot(os.path.join(args.out, "chains.png"))
    res.across.plot(os.path.join(args.out, "across.png"))
    print(f"\nfiles: {args.out}/learning_coefficient.json, samples.json, across.json, experiment.json, "
          "chains.png, across.png")
    return 0
