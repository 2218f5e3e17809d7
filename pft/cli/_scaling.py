"""``pft scaling``: excess kurtosis of random MLPs against L/n, ensembles against theory."""

from __future__ import annotations

from pft.cli._args import choice, int_list, integer, number, require_torchrun, seed

__all__ = ["add_scaling", "run_scaling"]


def add_scaling(sub) -> None:
    p = sub.add_parser("scaling", help="excess kurtosis of random MLPs against L/n: ensembles vs finite-width theory")
    p.add_argument("--activation", default="relu", help="comma-separated activations (default: relu)")
    p.add_argument("--widths", type=int_list("--widths"), default="16,32,64,128",
                   help="hidden widths, e.g. 16,32,64 or 16:128:x2")
    p.add_argument("--depths", type=int_list("--depths"), default="2:16:x2",
                   help="depths, e.g. 2:32 (inclusive), 2:32:2, 2:64:x2")
    p.add_argument("--networks", type=integer("--networks"), default=20000, help="networks per cell (default 20000)")
    p.add_argument("--method", type=choice("--method", ("exact", "weights")), metavar="{exact,weights}", default="exact")
    p.add_argument("--C-W", dest="C_W", type=number("--C-W"), default=None, help="weight variance (default: critical)")
    p.add_argument("--C-b", dest="C_b", type=number("--C-b"), default=None, help="bias variance (default: critical)")
    p.add_argument("--seed", type=seed(), default=0)
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


def run_scaling(args) -> int:
    from pft._output import check_output, plot_formats
    from pft.scaling import Study

    if args.store:
        check_output(args.store, name="--store")
    if args.plot:
        check_output(args.plot, name="--plot", inputs=[args.store], formats=plot_formats())
    if args.distributed:
        require_torchrun()

    grid = {
        "activation": [a for a in args.activation.split(",") if a.strip()],
        "width": args.widths,
        "depth": args.depths,
    }
    if args.C_W is not None:
        grid["C_W"] = args.C_W
    if args.C_b is not None:
        grid["C_b"] = args.C_b
    study = Study(grid, n_networks=args.networks, method=args.method, seed=args.seed, device=args.device,
                  progress=not args.quiet)  # bad input fails here, before any rank waits on another
    if args.distributed:
        from pft.distributed import process_group

        with process_group(args.device) as (rank, _, device):
            if device != args.device:  # "cuda" became this rank's cuda:LOCAL_RANK
                study.device = device
            result = study.run(store=args.store, distributed=True)
    else:
        rank, result = 0, study.run(store=args.store, distributed=False)
    if rank != 0:
        return 0
    print(result.to_json() if args.json else result.table())
    if args.plot:
        result.plot(args.plot)
        if not args.json:
            print(f"figure: {args.plot}")
    return 0
