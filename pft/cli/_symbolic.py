"""``pft diagrams``, ``pft laplace``, ``pft edgeworth``: the exact algebra from the command line."""

from __future__ import annotations

from pft.cli._args import choice, integer, numbers
from pft.errors import InputError

__all__ = ["add_diagrams", "run_diagrams", "add_laplace", "run_laplace", "add_edgeworth", "run_edgeworth"]


def add_diagrams(sub) -> None:
    p = sub.add_parser(
        "diagrams",
        help="enumerate Feynman diagrams with exact symmetry factors, or rebuild the catalog",
        description="pft diagrams --valences 3,4 (--loops L | --vertices 3:2,4:1) [--external N] "
        "[--one-pi] [--format table|json|tikz|svg];  pft diagrams catalog --out DIR",
    )
    p.add_argument("action", nargs="?", type=choice("action", ("catalog",)), metavar="catalog",
                   help="`catalog`: write the diagram catalog")
    p.add_argument("--out", help="catalog folder (with `catalog`)")
    p.add_argument("--valences", type=numbers("--valences", int), help="allowed vertex degrees, comma separated, e.g. 3,4")
    p.add_argument("--loops", type=integer("--loops"), help="loop number L")
    p.add_argument("--vertices", help="exact vertex content, e.g. 3:2,4:1")
    p.add_argument("--external", type=integer("--external"), default=0,
                   help="number of labelled external legs (default 0)")
    p.add_argument("--one-pi", action="store_true", help="only one-particle-irreducible diagrams")
    p.add_argument("--amputated", action="store_true", help="no corrections on external legs")
    p.add_argument("--disconnected", action="store_true", help="include disconnected diagrams")
    p.add_argument("--format", type=choice("--format", ("table", "json", "tikz", "svg")),
                   metavar="{table,json,tikz,svg}", default="table")


def _vertex_counts(text: str) -> dict[int, int]:
    """``--vertices 3:2,4:1`` as ``{3: 2, 4: 1}``."""
    out = {}
    for item in text.split(","):
        k, sep, m = item.partition(":")
        try:
            if not sep:
                raise ValueError
            out[int(k)] = int(m)
        except ValueError:
            raise InputError(f"`--vertices` must be valence:count items like 3:2,4:1; got {item!r}.") from None
    return out


def run_diagrams(args) -> int:
    import json

    from pft.symbolic import correlator_diagrams

    if args.action == "catalog":
        from pft._output import check_output
        from pft.symbolic.drawing import write_catalog

        if not args.out:
            raise InputError("`pft diagrams catalog` needs `--out DIR` (e.g. --out diagrams/).")
        check_output(args.out, name="--out", folder=True)
        paths = write_catalog(args.out)
        print(f"wrote {len(paths)} files under {args.out}")
        return 0
    if args.out:
        raise InputError("`--out` belongs to `pft diagrams catalog --out DIR`.")
    if not args.valences:
        raise InputError("`--valences` is required, e.g. --valences 3,4.")
    if (args.loops is None) == (args.vertices is None):
        raise InputError("give exactly one of `--loops L` and `--vertices 3:2,4:1`.")
    vertices = _vertex_counts(args.vertices) if args.vertices is not None else None
    diagrams = correlator_diagrams(
        args.external,
        tuple(args.valences),
        loops=args.loops,
        vertices=vertices,
        connected=not args.disconnected,
        one_pi=args.one_pi,
        amputated=args.amputated,
    )
    if args.format == "json":
        print("[" + ",\n ".join(json.dumps(d.to_dict()) for d in diagrams) + "]")
    elif args.format == "tikz":
        from pft.symbolic.drawing import tikz_document

        print(tikz_document([d.to_tikz() for d in diagrams], [f"$1/{d.automorphisms}$" for d in diagrams]), end="")
    elif args.format == "svg":
        from pft.symbolic.drawing import svg_sheet

        print(svg_sheet(diagrams), end="")
    else:
        from fractions import Fraction

        from pft._text import table

        rows = [("#", "vertices", "loops", "|Aut|", "1PI", "edges")]
        for i, d in enumerate(diagrams):
            counts = " ".join(f"{k}:{m}" for k, m in d.vertex_counts.items()) or "-"
            edges = " ".join(f"{u}-{v}" for u, v in d.edges)
            rows.append((str(i), counts, str(d.n_loops), str(d.automorphisms),
                         "yes" if d.is_one_particle_irreducible else "no", edges))
        print(table(rows[0], rows[1:], align=">>>>> ", rule=False))
        total = sum((d.symmetry_factor for d in diagrams), Fraction(0))
        print(f"{len(diagrams)} diagrams, sum of 1/|Aut| = {total}")
    return 0


def add_laplace(sub) -> None:
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
    p.add_argument("--order", type=integer("--order", minimum=0), default=2,
                   help="number of 1/n corrections (default 2)")
    p.add_argument("--point", help="the minimum, comma separated (default: solve ∇S = 0)")
    p.add_argument("--moments", action="store_true", help="also print the corrections to <x> and Cov(x)")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")


def run_laplace(args) -> int:
    from pft.symbolic import laplace_expansion, parse_expression

    order = args.order
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


def add_edgeworth(sub) -> None:
    p = sub.add_parser(
        "edgeworth",
        help="Edgeworth series of a nearly Gaussian density (symbolic, or numbers from cumulants)",
        description="pft edgeworth --order 2 prints the series and the Cornish-Fisher quantile; with "
        "--cumulants k1,k2,k3,... it evaluates the density at --x points and quantiles at --q.",
    )
    p.add_argument("--order", type=integer("--order", minimum=0), default=2,
                   help="keep terms up to n^(-order/2) (default 2)")
    p.add_argument("--dim", type=integer("--dim", minimum=1), default=1, help="dimension of the symbolic series (default 1)")
    p.add_argument("--cumulants", help="κ1,κ2,κ3,... of a scalar variable (formulas allowed, e.g. 2/sqrt(10))")
    p.add_argument("--x", help="points for the density, comma separated")
    p.add_argument("--q", help="probabilities for Cornish-Fisher quantiles, comma separated")


def _real_numbers(flag: str, text: str) -> list[float]:
    """Comma-separated numbers or constant formulas, through the whitelist parser."""
    import math

    from pft.symbolic import parse_expression

    out = []
    for item in text.split(","):
        expr = parse_expression(item.strip())
        value = float(expr) if not expr.free_symbols and expr.is_real else float("nan")
        if not math.isfinite(value):
            raise InputError(f"`{flag}` must be comma-separated finite real numbers (or constant formulas); "
                             f"got {item.strip()!r}.")
        out.append(value)
    return out


def run_edgeworth(args) -> int:
    order, dim = args.order, args.dim
    if args.cumulants is None:
        from pft.symbolic import edgeworth

        if args.x or args.q:
            raise InputError("`--x` and `--q` need `--cumulants k1,k2,k3,...`")
        result = edgeworth(order, dim=dim)
        print(result)
        if result.quantile is not None:
            print(f"Cornish-Fisher: w(z) = {result.quantile}")
        return 0
    import numpy as np

    from pft.numeric import cornish_fisher, edgeworth_logpdf, edgeworth_pdf

    cumulants = _real_numbers("--cumulants", args.cumulants)
    xs = _real_numbers("--x", args.x) if args.x else [-2.0, -1.0, 0.0, 1.0, 2.0]
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
        qs = _real_numbers("--q", args.q)
        print(f"\n{'q':>12}  {'Cornish-Fisher quantile':>24}")
        for q, w in zip(qs, cornish_fisher(qs, cumulants, order=order)):
            print(f"{q:>12.6g}  {w:>24.10g}")
    return 0
