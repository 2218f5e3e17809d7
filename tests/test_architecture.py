"""The layer boundaries of docs/design.md, checked in fresh interpreters."""

import json
import subprocess
import sys

import pytest


def _modules_after(statement: str) -> set[str]:
    code = f"import sys, json; {statement}; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_symbolic_never_imports_torch():
    mods = _modules_after("import pft.symbolic")
    assert "torch" not in mods


def test_import_pft_is_light():
    mods = _modules_after("import pft")
    heavy = {"torch", "sympy", "matplotlib", "scipy", "networkx", "sklearn"}
    assert not (heavy & mods), heavy & mods


@pytest.mark.parametrize("sub", ["symbolic", "numeric", "residual", "scaling", "degrade", "toy", "models"])
def test_subpackages_export_only_public_names(sub):
    import importlib

    mod = importlib.import_module(f"pft.{sub}")
    for name in mod.__all__:
        assert not name.startswith("_"), name
        assert hasattr(mod, name), f"pft.{sub}.__all__ names {name!r} but it is missing"


def test_imports_flow_one_way():
    # numeric must not import residual/scaling/degrade/cli; symbolic must not import numeric.
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    forbidden = {
        "symbolic": ("pft.numeric", "pft.residual", "pft.scaling", "pft.degrade", "pft.cli", "torch"),
        "numeric": ("pft.residual", "pft.scaling", "pft.degrade", "pft.cli"),
        "residual": ("pft.cli",),
        "scaling": ("pft.cli", "pft.residual"),
        "degrade": ("pft.cli",),
        "models": ("pft.cli",),
    }
    for sub, bad in forbidden.items():
        for path in (root / sub).rglob("*.py"):
            text = path.read_text()
            for name in bad:
                pat = rf"^\s*(from|import)\s+{re.escape(name)}\b"
                assert not re.search(pat, text, re.M), f"{path} imports {name}"
