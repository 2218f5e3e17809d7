"""Pictures of diagrams: one deterministic layout, drawn as TikZ-Feynman code or as SVG.

The layout is computed here (no LuaLaTeX graph drawing), in pure Python so that the same
diagram gives the same digits everywhere:

1. internal vertices of each connected component are placed by stress majorization
   (Gansner, Koren & North 2004) on graph distances, started from a circle in canonical order,
   then centred and turned so that their long axis is horizontal;
2. external legs and self-loops are *stubs*: each goes into the widest free angle around its
   vertex, one after the other;
3. a bundle of ``m`` parallel propagators becomes ``m`` arcs bent symmetrically
   (``bend left`` in TikZ, the same cubic Bézier in SVG); a self-loop is a TikZ ``loop`` with
   ``out``/``in`` angles and ``min distance`` (again the same Bézier in SVG).

Vertex kinds: valence 3 a filled disc, 4 a filled square, any other valence an open disc with
the valence written in it (``crossed dot`` in TikZ). Legs end in their label ``0..n-1``.
"""

from __future__ import annotations

import math

__all__ = ["layout", "to_tikz", "to_svg", "tikz_document", "svg_sheet"]

_LOOP_SIZE = 0.8  # control-point distance of a self-loop, in layout units
_LOOP_HALF_ANGLE = 32.0
_LEG_LENGTH = 0.8
_BEND_STEP = 28.0  # degrees between neighbouring arcs of a bundle
_LOOSENESS = 0.3915  # TikZ's default control distance for bent lines, as a fraction of length


# libm's cos/sin/atan2 may differ in the last bit between platforms; rounding them to 12 digits
# (everything else here is IEEE +,-,*,/,sqrt) keeps the catalog byte-identical everywhere.
def _cos(a: float) -> float:
    return round(math.cos(a), 12)


def _sin(a: float) -> float:
    return round(math.sin(a), 12)


def _atan2(y: float, x: float) -> float:
    return round(math.atan2(y, x), 12)


def _r(x: float, nd: int = 3) -> float:
    v = round(x, nd)
    return 0.0 if v == 0 else v  # no "-0.0"


def _stress_layout(nodes, adj):
    """Stress majorization of one component; ``adj`` maps node -> set of neighbours."""
    n = len(nodes)
    if n == 1:
        return {nodes[0]: (0.0, 0.0)}
    # graph distances
    dist = {}
    for s in nodes:
        d = {s: 0}
        frontier = [s]
        while frontier:
            nxt = []
            for u in frontier:
                for w in sorted(adj[u]):
                    if w not in d:
                        d[w] = d[u] + 1
                        nxt.append(w)
            frontier = nxt
        dist[s] = d
    pos = {
        v: (_cos(2 * math.pi * i / n + math.pi / 2), _sin(2 * math.pi * i / n + math.pi / 2))
        for i, v in enumerate(nodes)
    }
    for _ in range(120):
        for i in nodes:
            sx = sy = sw = 0.0
            xi, yi = pos[i]
            for j in nodes:
                if j == i:
                    continue
                dij = dist[i][j]
                w = 1.0 / (dij * dij)
                xj, yj = pos[j]
                dx, dy = xi - xj, yi - yj
                norm = math.hypot(dx, dy) or 1e-9
                sx += w * (xj + dij * dx / norm)
                sy += w * (yj + dij * dy / norm)
                sw += w
            pos[i] = (sx / sw, sy / sw)
    # centre and rotate the long axis onto x
    cx = sum(p[0] for p in pos.values()) / n
    cy = sum(p[1] for p in pos.values()) / n
    sxx = sum((p[0] - cx) ** 2 for p in pos.values())
    syy = sum((p[1] - cy) ** 2 for p in pos.values())
    sxy = sum((p[0] - cx) * (p[1] - cy) for p in pos.values())
    theta = 0.5 * _atan2(2 * sxy, sxx - syy)
    c, s = _cos(-theta), _sin(-theta)
    return {v: ((x - cx) * c - (y - cy) * s, (x - cx) * s + (y - cy) * c) for v, (x, y) in pos.items()}


def _widest_gap(angles):
    """Middle of the widest free angle (degrees) between the given directions."""
    if not angles:
        return 90.0
    a = sorted(x % 360.0 for x in angles)
    best, where = -1.0, 0.0
    for i, x in enumerate(a):
        y = a[(i + 1) % len(a)] + (360.0 if i == len(a) - 1 else 0.0)
        if y - x > best + 1e-9:
            best, where = y - x, x + (y - x) / 2
    return where % 360.0


def layout(diagram):
    """Positions and drawing instructions for ``diagram``.

    Returns
    -------
    dict with keys
        ``pos`` (node -> (x, y), layout units, y up), ``arcs`` (list of ``(u, v, bend)``: a
        propagator from ``u`` to ``v`` bent ``bend`` degrees to the left, 0 for straight),
        ``loops`` (list of ``(v, out, in)`` angles in degrees).

    Examples
    --------
    >>> from pft.symbolic import Diagram
    >>> lay = layout(Diagram.from_edges([(0, 1)] * 3))   # theta: one straight line, two arcs
    >>> sorted(b for _, _, b in lay["arcs"])
    [-28.0, 0.0, 28.0]
    """
    cached = diagram.__dict__.get("_layout")
    if cached is not None:
        return cached
    lay = _layout(diagram)
    diagram.__dict__["_layout"] = lay  # diagrams are immutable: the layout never changes
    return lay


def _layout(diagram):
    V = diagram.n_vertices
    A = diagram._A
    n = len(A)
    adj = {v: {w for w in range(V) if w != v and A[v][w]} for v in range(V)}
    # components of the internal part, laid out side by side
    pos: dict[int, tuple[float, float]] = {}
    seen: set[int] = set()
    x_off = 0.0
    for s in range(V):
        if s in seen:
            continue
        comp, stack = [], [s]
        seen.add(s)
        while stack:
            u = stack.pop()
            comp.append(u)
            for w in adj[u]:
                if w not in seen:
                    seen.add(w)
                    stack.append(w)
        comp.sort()
        sub = _stress_layout(comp, adj)
        xs = [p[0] for p in sub.values()]
        shift = x_off - min(xs)
        for v, (x, y) in sub.items():
            pos[v] = (x + shift, y)
        x_off = max(x + shift for x, _ in sub.values()) + 2.2
    arcs = []
    loops = []
    directions = {v: [] for v in range(V)}
    for u in range(V):
        for w in range(u + 1, V):
            m = A[u][w]
            if not m:
                continue
            (x1, y1), (x2, y2) = pos[u], pos[w]
            base = math.degrees(_atan2(y2 - y1, x2 - x1))
            bends = [_BEND_STEP * (i - (m - 1) / 2) for i in range(m)]
            for b in bends:
                arcs.append((u, w, b))
                directions[u].append(base + b)
                directions[w].append(base + 180.0 - b)
    # stubs: legs (by label) then self-loops
    for lab in range(diagram.n_external):
        leg = V + lab
        others = [w for w in range(n) if w != leg and A[leg][w]]
        w = others[0]
        if w < V:
            ang = _widest_gap(directions[w])
            directions[w].append(ang)
            x, y = pos[w]
            pos[leg] = (x + _LEG_LENGTH * _cos(math.radians(ang)), y + _LEG_LENGTH * _sin(math.radians(ang)))
            arcs.append((w, leg, 0.0))
    for v in range(V):
        for _ in range(A[v][v]):
            ang = _widest_gap(directions[v])
            directions[v].extend([ang - _LOOP_HALF_ANGLE, ang, ang + _LOOP_HALF_ANGLE])
            loops.append((v, ang + _LOOP_HALF_ANGLE, ang - _LOOP_HALF_ANGLE))
    # legs joined directly to legs: a row of bare propagators under the picture
    bottom = min((p[1] for p in pos.values()), default=0.0) - 1.2
    x = 0.0
    for a in range(V, n):
        for b in range(a + 1, n):
            if A[a][b]:
                pos[a] = (x, bottom)
                pos[b] = (x + 1.2, bottom)
                arcs.append((a, b, 0.0))
                x += 2.0
    pos = {v: (_r(x), _r(y)) for v, (x, y) in pos.items()}
    return {"pos": pos, "arcs": arcs, "loops": loops}


def _vertex_style(k):
    return {3: "dot", 4: "square dot"}.get(k, "crossed dot")


def to_tikz(diagram, *, scale: float = 1.0) -> str:
    r"""TikZ-Feynman code for ``diagram`` with every coordinate fixed (pdflatex, no LuaLaTeX).

    Parameters
    ----------
    diagram : Diagram
    scale : float
        Centimetres per layout unit times 1.2.

    Returns
    -------
    str
        A ``tikzpicture`` environment; needs ``\usepackage{tikz-feynman}``
        (see :func:`tikz_document` for a complete file).

    Examples
    --------
    >>> from pft.symbolic import Diagram
    >>> print(to_tikz(Diagram.from_edges([(0, 0), (0, 0)])))   # figure eight
    \begin{tikzpicture}[scale=1.2]
    \begin{feynman}
    \vertex [square dot] (v0) at (0.0, 0.0) {};
    \draw (v0) to [out=122.0, in=58.0, loop, min distance=0.96cm] (v0);
    \draw (v0) to [out=302.0, in=238.0, loop, min distance=0.96cm] (v0);
    \end{feynman}
    \end{tikzpicture}
    """
    lay = layout(diagram)
    V = diagram.n_vertices
    s = 1.2 * scale
    lines = [f"\\begin{{tikzpicture}}[scale={_r(s)}]", "\\begin{feynman}"]
    for v, (x, y) in sorted(lay["pos"].items()):
        if v < V:
            lines.append(f"\\vertex [{_vertex_style(diagram._vals[v])}] (v{v}) at ({x}, {y}) {{}};")
        else:
            lines.append(f"\\vertex (v{v}) at ({x}, {y}) {{\\({v - V}\\)}};")
    if lay["arcs"]:
        lines.append("\\diagram* {")
    for u, w, bend in lay["arcs"]:
        if bend == 0:
            style = "plain"
        elif bend > 0:
            style = f"plain, bend left={_r(bend, 1)}"
        else:
            style = f"plain, bend right={_r(-bend, 1)}"
        lines.append(f"  (v{u}) -- [{style}] (v{w}),")
    if lay["arcs"]:
        lines.append("};")
    # TikZ's graph syntax drops edges from a node to itself, so self-loops are plain \draw paths
    for v, out, inn in lay["loops"]:
        lines.append(
            f"\\draw (v{v}) to [out={_r(out % 360, 1)}, in={_r(inn % 360, 1)}, loop, "
            f"min distance={_r(_LOOP_SIZE * s, 2)}cm] (v{v});"
        )
    lines += ["\\end{feynman}", "\\end{tikzpicture}"]
    return "\n".join(lines)


def tikz_document(pictures, captions=None) -> str:
    r"""A complete LaTeX file (article class, ``tikz-feynman``) showing the given pictures.

    Examples
    --------
    >>> doc = tikz_document(["\\begin{tikzpicture}\\end{tikzpicture}"], ["empty"])
    >>> doc.splitlines()[1]
    '\\usepackage[compat=1.1.0]{tikz-feynman}'
    """
    captions = list(captions) if captions is not None else [""] * len(pictures)
    out = [
        "\\documentclass{article}",
        "\\usepackage[compat=1.1.0]{tikz-feynman}",
        "\\usepackage[margin=1.5cm]{geometry}",
        "\\pagestyle{empty}",
        "\\begin{document}",
        "\\noindent",
    ]
    for pic, cap in zip(pictures, captions):
        out.append("\\begin{minipage}[b]{0.3\\textwidth}\\centering")
        out.append(pic)
        out.append(f"\\par\\small {cap}\\vspace{{4mm}}")
        out.append("\\end{minipage}\\hfill")
    out.append("\\end{document}")
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------- SVG
def _bezier_arc(p, q, bend):
    """Control points of TikZ's ``bend left=bend`` from p to q (y up)."""
    (x1, y1), (x2, y2) = p, q
    L = math.hypot(x2 - x1, y2 - y1)
    base = _atan2(y2 - y1, x2 - x1)
    a1 = base + math.radians(bend)
    a2 = base + math.pi - math.radians(bend)
    d = _LOOSENESS * L
    return (x1 + d * _cos(a1), y1 + d * _sin(a1)), (x2 + d * _cos(a2), y2 + d * _sin(a2))


def to_svg(diagram, *, size: int = 160) -> str:
    """A self-contained SVG of the picture drawn by :func:`to_tikz`.

    Parameters
    ----------
    diagram : Diagram
    size : int
        Pixels per ~2.5 layout units (the picture keeps its aspect ratio).

    Examples
    --------
    >>> from pft.symbolic import Diagram
    >>> svg = to_svg(Diagram.from_edges([(0, 1)] * 3))
    >>> svg.startswith("<svg") and svg.count("<path") == 3
    True
    """
    lay = layout(diagram)
    V = diagram.n_vertices
    pos = lay["pos"]
    unit = size / 2.5
    # bounding box, including loop extents
    pts = list(pos.values())
    for v, out, inn in lay["loops"]:
        x, y = pos[v]
        mid = math.radians((out + inn) / 2)
        pts.append((x + 0.7 * _LOOP_SIZE * _cos(mid), y + 0.7 * _LOOP_SIZE * _sin(mid)))
    for u, w, bend in lay["arcs"]:
        if bend:
            c1, c2 = _bezier_arc(pos[u], pos[w], bend)
            pts.append(((c1[0] + c2[0]) / 2, (c1[1] + c2[1]) / 2))
    if not pts:  # the empty diagram
        pts = [(0.0, 0.0)]
    pad = 0.35
    xmin = min(p[0] for p in pts) - pad
    xmax = max(p[0] for p in pts) + pad
    ymin = min(p[1] for p in pts) - pad
    ymax = max(p[1] for p in pts) + pad
    W = (xmax - xmin) * unit
    H = (ymax - ymin) * unit

    def P(x, y):
        return f"{_r((x - xmin) * unit, 1)},{_r((ymax - y) * unit, 1)}"

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_r(W, 1)}" height="{_r(H, 1)}" '
        f'viewBox="0 0 {_r(W, 1)} {_r(H, 1)}">',
        f"<title>{_title(diagram)}</title>",
        '<rect width="100%" height="100%" fill="white"/>',
        '<g fill="none" stroke="black" stroke-width="1.6">',
    ]
    for u, w, bend in lay["arcs"]:
        p, q = pos[u], pos[w]
        if bend == 0:
            parts.append(f'<path d="M{P(*p)} L{P(*q)}"/>')
        else:
            c1, c2 = _bezier_arc(p, q, bend)
            parts.append(f'<path d="M{P(*p)} C{P(*c1)} {P(*c2)} {P(*q)}"/>')
    for v, out, inn in lay["loops"]:
        x, y = pos[v]
        c1 = (x + _LOOP_SIZE * _cos(math.radians(out)), y + _LOOP_SIZE * _sin(math.radians(out)))
        c2 = (x + _LOOP_SIZE * _cos(math.radians(inn)), y + _LOOP_SIZE * _sin(math.radians(inn)))
        parts.append(f'<path d="M{P(x, y)} C{P(*c1)} {P(*c2)} {P(x, y)}"/>')
    parts.append("</g>")
    r = 0.09 * unit
    for v in range(V):
        x, y = pos[v]
        k = diagram._vals[v]
        cx, cy = P(x, y).split(",")
        if k == 3:
            parts.append(f'<circle cx="{cx}" cy="{cy}" r="{_r(r, 1)}" fill="black"/>')
        elif k == 4:
            parts.append(
                f'<rect x="{_r(float(cx) - r, 1)}" y="{_r(float(cy) - r, 1)}" width="{_r(2 * r, 1)}" '
                f'height="{_r(2 * r, 1)}" fill="#1f4e9c" stroke="black" stroke-width="1"/>'
            )
        else:
            parts.append(
                f'<circle cx="{cx}" cy="{cy}" r="{_r(1.6 * r, 1)}" fill="white" stroke="black" stroke-width="1.4"/>'
            )
            parts.append(
                f'<text x="{cx}" y="{_r(float(cy) + 0.55 * r * 1.6, 1)}" font-family="sans-serif" '
                f'font-size="{_r(1.6 * r * 1.3, 1)}" text-anchor="middle">{k}</text>'
            )
    for lab in range(diagram.n_external):
        x, y = pos[V + lab]
        cx, cy = P(x, y).split(",")
        parts.append(f'<circle cx="{cx}" cy="{cy}" r="{_r(1.9 * r, 1)}" fill="white" stroke="#b03020" stroke-width="1.4"/>')
        parts.append(
            f'<text x="{cx}" y="{_r(float(cy) + 0.7 * r * 1.9, 1)}" font-family="sans-serif" '
            f'font-size="{_r(1.9 * r * 1.2, 1)}" text-anchor="middle" fill="#b03020">{lab}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _title(diagram):
    parts = [f"valences {list(diagram.valences)}"]
    if diagram.n_external:
        parts.append(f"{diagram.n_external} legs")
    parts.append(f"{diagram.n_loops} loops")
    parts.append(f"|Aut| = {diagram.automorphisms}")
    return ", ".join(parts)


def svg_sheet(diagrams, *, columns: int = 6, size: int = 120) -> str:
    """One SVG holding the pictures of several diagrams in a grid, each captioned
    ``#i: 1/|Aut|``.

    Examples
    --------
    >>> from pft.symbolic import vacuum_diagrams
    >>> import xml.etree.ElementTree as ET
    >>> sheet = svg_sheet(vacuum_diagrams((3,), loops=2))
    >>> len(ET.fromstring(sheet).findall("{http://www.w3.org/2000/svg}svg"))
    2
    """
    cells = []
    for i, d in enumerate(diagrams):
        text = to_svg(d, size=size)
        head, _, body = text.partition("\n")
        w = float(head.split('width="')[1].split('"')[0])
        h = float(head.split('height="')[1].split('"')[0])
        cells.append((i, d, w, h, body))
    caption = 16.0
    parts = []
    x = y = 0.0
    row_h = 0.0
    width = 0.0
    for n, (i, d, w, h, body) in enumerate(cells):
        if n and n % columns == 0:
            y += row_h + caption + 8
            x, row_h = 0.0, 0.0
        parts.append(f'<svg x="{_r(x, 1)}" y="{_r(y, 1)}" width="{_r(w, 1)}" height="{_r(h, 1)}" viewBox="0 0 {_r(w, 1)} {_r(h, 1)}">')
        parts.append(body.rstrip("\n"))
        parts.append(
            f'<text x="{_r(x + w / 2, 1)}" y="{_r(y + h + 12, 1)}" font-family="sans-serif" '
            f'font-size="11" text-anchor="middle">#{i}: 1/{d.automorphisms}</text>'
        )
        x += w + 12
        width = max(width, x)
        row_h = max(row_h, h)
    height = y + row_h + caption + 4 if cells else 10.0
    width = width or 10.0
    head = (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_r(width, 1)}" height="{_r(height, 1)}" '
        f'viewBox="0 0 {_r(width, 1)} {_r(height, 1)}">'
    )
    return "\n".join([head, '<rect width="100%" height="100%" fill="white"/>'] + parts + ["</svg>"]) + "\n"
