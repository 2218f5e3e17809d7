"""The ``pft`` command line. The only package in pft that parses argv or prints.

Each command is a pair ``add_<name>(subparsers)`` / ``run_<name>(args) -> int`` in the module of
its group (:mod:`pft.cli._residual`, :mod:`pft.cli._symbolic`, :mod:`pft.cli._scaling`,
:mod:`pft.cli._degrade`), listed once in :data:`COMMANDS`. To add a command, write the pair and
add a row. Shared argument types and the error format live in :mod:`pft.cli._args`.

Every error exits 2 with one line on stderr, ``pft <command>: error: <message>``: a refused
argument (``` `--draws` must be an integer >= 1; got 0.```), any :class:`pft.errors.PftError`,
or a file that cannot be read or written.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable

from pft.cli import _degrade, _residual, _scaling, _symbolic
from pft.cli._args import Parser, one_line
from pft.errors import PftError

__all__ = ["main", "build_parser", "COMMANDS"]

#: command name -> (add its subparser, run it); the order of ``pft --help``
COMMANDS: dict[str, tuple[Callable, Callable]] = {
    "demo": (_residual.add_demo, _residual.run_demo),
    "score": (_residual.add_score, _residual.run_score),
    "diagrams": (_symbolic.add_diagrams, _symbolic.run_diagrams),
    "degrade": (_degrade.add_degrade, _degrade.run_degrade),
    "power": (_residual.add_power, _residual.run_power),
    "laplace": (_symbolic.add_laplace, _symbolic.run_laplace),
    "edgeworth": (_symbolic.add_edgeworth, _symbolic.run_edgeworth),
    "scaling": (_scaling.add_scaling, _scaling.run_scaling),
    "eval": (_residual.add_eval, _residual.run_eval),
}


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command (errors raise :class:`~pft.errors.InputError`, never exit)."""
    parser = Parser(prog="pft", description="Perturbative field-theory analysis of neural-network residuals.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def _fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pft`` console script and ``python -m pft``; returns the exit status.

    Examples
    --------
    >>> main(["laplace", "x**2/2", "--var", "x", "--order", "-1"])
    2
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except PftError as exc:  # refused by the parser (see pft.cli._args.Parser)
        prog = getattr(exc, "prog", "pft")
        if prog == "pft":  # e.g. an unknown option after the command: name the command
            prog = next((f"pft {a}" for a in (argv if argv is not None else sys.argv[1:]) if a in COMMANDS), prog)
            return _fail(prog, str(exc).replace("`pft --help`", f"`{prog} --help`"))
        return _fail(prog, str(exc))
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    prog = f"pft {args.command}"
    try:
        return int(COMMANDS[args.command][1](args) or 0)
    except PftError as exc:
        return _fail(prog, str(exc))
    except OSError as exc:  # missing file, permission, disk full, path under a file, ...
        what = exc.strerror or type(exc).__name__
        where = f": {exc.filename}" if exc.filename else ""
        return _fail(prog, what + where)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
