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
