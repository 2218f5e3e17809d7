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


_SUBPACKAGES = ("symbolic", "numeric", "residual", "scaling", "degrade", "toy", "models", "interop")


def _owner(path, root):
    """The subpackage a file belongs to (``None`` for top-level modules such as pft/cli.py)."""
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 and rel[0] in _SUBPACKAGES else None


def test_no_cross_subpackage_private_imports():
    # A subpackage is reached from outside only through its __all__ or a non-underscore module
    # (docs/design.md, "What may import what"); its underscore modules are its own business.
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    sub = "|".join(_SUBPACKAGES)
    private_module = re.compile(rf"^\s*(?:from|import)\s+pft\.({sub})\.(_\w+)", re.M)
    private_name = re.compile(rf"^\s*from\s+pft\.({sub})(?:\.[a-z]\w*)?\s+import\s+\(?\s*([^\n)]*)", re.M)
    bad = []
    for path in sorted(root.rglob("*.py")):
        owner = _owner(path, root)
        text = path.read_text()
        for m in private_module.finditer(text):
            if m.group(1) != owner:
                bad.append(f"{path.relative_to(root.parent)} imports pft.{m.group(1)}.{m.group(2)}")
        for m in private_name.finditer(text):
            if m.group(1) == owner:
                continue
            names = [n.strip().split(" as ")[0] for n in m.group(2).split(",")]
            bad += [f"{path.relative_to(root.parent)} imports {n} from pft.{m.group(1)}" for n in names
                    if n.startswith("_")]
    assert not bad, "\n".join(bad)


def test_long_files_say_why_they_are_one_file():
    # A module over 500 lines is split along its seams, or says at its top why it is one file.
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    long_files = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        if text.count("\n") > 500:
            doc = ast.get_docstring(ast.parse(text)) or ""
            if "Why one file:" not in doc:
                long_files.append(f"{path.relative_to(root.parent)} ({text.count(chr(10))} lines)")
    assert not long_files, "over 500 lines without 'Why one file:' in the module docstring: " + ", ".join(long_files)


def test_deprecated_error_name_still_resolves_and_warns_at_the_callers_line():
    import pft
    import pft.errors
    from pft.errors import PftDeprecationWarning, PftError

    for get in (lambda: pft.DivergentExpansionError, lambda: pft.errors.DivergentExpansionError):
        with pytest.warns(PftDeprecationWarning, match="`DivergentExpansionError` is deprecated") as rec:
            cls = get()
        assert issubclass(cls, PftError) and issubclass(cls, ArithmeticError)
        assert rec[0].filename == __file__  # the user's line, so Python's default filter shows it
    with pytest.raises(AttributeError):
        pft.errors.NoSuchError  # noqa: B018
