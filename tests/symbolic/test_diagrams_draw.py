"""Pictures: SVG is well-formed and shows what the diagram holds; TikZ compiles under pdflatex."""

import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from pft.symbolic import Diagram, correlator_diagrams, vacuum_diagrams
from pft.symbolic._draw import layout, tikz_document

NS = "{http://www.w3.org/2000/svg}"

SAMPLES = (
    vacuum_diagrams((3, 4), loops=3)
    + correlator_diagrams(4, (4,), loops=1)
    + correlator_diagrams(2, (3, 5), vertices={3: 1, 5: 1})
    + [Diagram.from_edges([("a", "b"), ("c", "d")], external=["a", "b", "c", "d"])]
    + vacuum_diagrams((4,), vertices={4: 2}, connected=False)
)


@pytest.mark.parametrize("d", SAMPLES, ids=lambda d: str(d.canonical_key))
def test_svg_shows_every_propagator_vertex_and_leg(d):
    root = ET.fromstring(d.to_svg())
    assert root.tag == NS + "svg"
    paths = root.findall(f".//{NS}path")
    assert len(paths) == d.n_propagators
    discs = [c for c in root.iter(NS + "circle") if c.get("fill") == "black"]
    squares = [r for r in root.iter(NS + "rect") if r.get("fill") not in ("white",)]
    assert len(discs) == d.valences.count(3)
    assert len(squares) == d.valences.count(4)
    texts = sorted(t.text for t in root.iter(NS + "text"))
    others = [str(k) for k in d.valences if k not in (3, 4)]
    assert texts == sorted([str(i) for i in range(d.n_external)] + others)


@pytest.mark.parametrize("d", SAMPLES, ids=lambda d: str(d.canonical_key))
def test_tikz_has_fixed_coordinates_arcs_and_loops(d):
    tikz = d.to_tikz()
    assert tikz.count("\\vertex") == d.n_vertices + d.n_external
    loops = sum(1 for u, v in d.edges if u == v)
    assert tikz.count(", loop,") == loops
    bent = sum(1 for _, _, b in layout(d)["arcs"] if b)
    assert tikz.count("bend left") + tikz.count("bend right") == bent
    # every parallel bundle of m > 1 lines is drawn as m distinct curves
    bundles = {}
    for u, v in d.edges:
        if u != v:
            bundles[(u, v)] = bundles.get((u, v), 0) + 1
    assert bent == sum(m if m % 2 == 0 else m - 1 for m in bundles.values() if m > 1)


def test_layout_is_deterministic():
    d = vacuum_diagrams((3,), vertices={3: 8})[17]
    assert d.to_svg() == d.to_svg() and d.to_tikz() == Diagram.from_dict(d.to_dict()).to_tikz()


def test_tikz_compiles_with_pdflatex(tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-pictures)")
    probe = subprocess.run(["kpsewhich", "tikz-feynman.sty"], capture_output=True, text=True)
    if not probe.stdout.strip():
        pytest.skip("tikz-feynman.sty not found (apt-get install texlive-pictures)")
    doc = tikz_document([d.to_tikz() for d in SAMPLES], [str(d.symmetry_factor) for d in SAMPLES])
    (tmp_path / "d.tex").write_text(doc)
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "d.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout[-2000:]
    assert (tmp_path / "d.pdf").stat().st_size > 1000
