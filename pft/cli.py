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
    pdf = edgeworth_pdf(xs, cumulants, order=order)
    logpdf = edgeworth_logpdf(xs, cumulants, order=order)
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
    from pft.errors import InputError
    from pft.symbolic import parse_expression

    out = []
    for item in text.split(","):
        expr = parse_expression(item.strip())
        if expr.free_symbols or not expr.is_real:
            raise InputError(f"`--{name}` items must be real numbers; got {item.strip()!r}")
        out.append(float(expr))
    return out


_COMMANDS = ["demo", "diagrams", "laplace", "edgeworth"]


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
