"""The committed catalog under diagrams/ is current, well-formed and self-consistent."""

import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from fractions import Fraction
from pathlib import Path

import pytest

from pft.symbolic import Diagram
from pft.symbolic._catalog import catalog_files
from pft.symbolic._draw import tikz_document

ROOT = Path(__file__).resolve().parents[2] / "diagrams"


@pytest.fixture(scope="module")
def fresh():
    return catalog_files()


def test_catalog_is_not_stale(fresh):
    on_disk = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if p.is_file()}
    hint = "the catalog is stale: run `pft diagrams catalog --out diagrams/` and commit the result"
    assert on_disk == set(fresh), hint + f" (extra: {sorted(on_disk - set(fresh))[:5]}, missing: {sorted(set(fresh) - on_disk)[:5]})"
    changed = [rel for rel, text in fresh.items() if (ROOT / rel).read_text(encoding="utf-8") != text]
    assert not changed, hint + f" (changed: {changed[:5]})"


def test_catalog_is_modest():
    assert sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file()) < 4_000_000


def test_every_svg_parses(fresh):
    svgs = [rel for rel in fresh if rel.endswith(".svg")]
    assert len(svgs) > 400
    for rel in svgs:
        assert ET.fromstring(fresh[rel]).tag == "{http://www.w3.org/2000/svg}svg", rel


def test_json_entries_agree_with_a_fresh_canonical_search(fresh):
    # Rebuild each diagram from its edge list (Diagram() runs its own canonical search) and
    # compare |Aut|; counts and sums must add up; pure-theory vacuum counts are OEIS A005967 /
    # A085549 (cubic / quartic connected multigraphs with loops).
    oeis = {("phi3", 2): 2, ("phi3", 3): 5, ("phi3", 4): 17, ("phi3", 5): 71,
            ("phi4", 2): 1, ("phi4", 3): 2, ("phi4", 4): 4, ("phi4", 5): 10}
    for rel, text in fresh.items():
        if not rel.endswith(".json"):
            continue
        doc = json.loads(text)
        assert doc["count"] == len(doc["diagrams"])
        total = Fraction(0)
        for entry in doc["diagrams"]:
            d = Diagram.from_dict(entry)
            assert d.automorphisms == entry["automorphisms"]
            assert d.n_loops == entry["n_loops"] == doc["loops"]
            assert Fraction(entry["symmetry_factor"]) == Fraction(1, entry["automorphisms"])
            total += Fraction(entry["symmetry_factor"])
        assert str(total) == doc["sum_symmetry_factors"]
        if doc["kind"] == "vacuum" and (doc["theory"], doc["loops"]) in oeis:
            assert doc["count"] == oeis[doc["theory"], doc["loops"]]


def test_readme_lists_every_order(fresh):
    rows = re.findall(r"^\| (\S+) \| connected (\S+) \| (\d+) \| (\d+) \|", fresh["README.md"], re.M)
    assert len(rows) == sum(1 for rel in fresh if rel.endswith(".json"))


@pytest.mark.slow
def test_catalog_tikz_compiles(fresh, tmp_path):
    if shutil.which("pdflatex") is None:
        pytest.skip("pdflatex not installed (apt-get install texlive-latex-base texlive-pictures)")
    if not subprocess.run(["kpsewhich", "tikz-feynman.sty"], capture_output=True, text=True).stdout.strip():
        pytest.skip("tikz-feynman.sty not found (apt-get install texlive-pictures)")
    # Every .tex file is tikz_document of its pictures; compiling all ~560 pictures takes 25-100 s
    # on a shared CI core, so compile one picture per distinct feature signature (vertex styles,
    # bend angles, loop angles and count, leg count) -- every construct the catalog uses -- plus
    # the first picture of each file.
    pictures, seen = [], set()
    for rel, text in fresh.items():
        if not rel.endswith(".tex"):
            continue
        for i, pic in enumerate(re.findall(r"\\begin\{tikzpicture\}.*?\\end\{tikzpicture\}", text, re.S)):
            sig = (
                tuple(sorted(set(re.findall(r"\\vertex \[([a-z ]+)\]", pic)))),
                tuple(sorted(set(re.findall(r"bend (?:left|right)=[0-9.]+", pic)))),
                pic.count(", loop,"),
                len(re.findall(r"\\vertex \(", pic)),
            )
            if i == 0 or sig not in seen:
                seen.add(sig)
                pictures.append(pic)
    assert 60 < len(pictures) < 300, len(pictures)
    (tmp_path / "all.tex").write_text(tikz_document(pictures))
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "all.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stdout[-3000:]
