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
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_demo(args) -> int:
    raise NotImplementedError("pft demo is not built yet")


_COMMANDS = ["demo"]


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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--store", default=None, help="JSON-lines store; finished cells are kept and a rerun resumes")
    p.add_argument("--plot", default=None, help="write the figure here (png, pdf, svg)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _run_scaling(args) -> int:
    from pft.scaling import Study

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
                  progress=not args.quiet)
    result = study.run(store=args.store)
    print(result.to_json() if args.json else result.table())
    if args.plot:
        path = result.plot(args.plot)
        if not args.json:
            print(f"figure: {path}")
    return 0


_COMMANDS.append("scaling")


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
