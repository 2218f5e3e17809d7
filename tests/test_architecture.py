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


_SUBPACKAGES = ("symbolic", "numeric", "residual", "scaling", "degrade", "toy", "models", "interop", "cli")


def _owner(path, root):
    """The subpackage a file belongs to (``None`` for top-level modules such as pft/io.py)."""
    rel = path.relative_to(root).parts
    return rel[0] if len(rel) > 1 and rel[0] in _SUBPACKAGES else None


def _imports(path, root):
    """(line, absolute module, imported names or None) for every import statement in a file,
    relative imports resolved, lazy imports inside functions included."""
    import ast

    package = ".".join(("pft",) + path.relative_to(root).parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, None, alias.asname
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([base] if base else []))
            yield node.lineno, base, [a.name for a in node.names], [a.asname or a.name for a in node.names]


def _foreign_private(module, names, owner):
    """What in ``from module import names`` is another subpackage's private business."""
    parts = module.split(".")
    if len(parts) < 2 or parts[0] != "pft" or parts[1] not in _SUBPACKAGES or parts[1] == owner:
        return []
    if any(p.startswith("_") for p in parts[2:]):
        return [module]
    return [f"{module}.{n}" for n in names or () if n.startswith("_")]


def test_no_cross_subpackage_private_imports():
    # A subpackage is reached from outside only through its __all__ or a non-underscore module
    # (docs/design.md, "What may import what"); its underscore modules are its own business.
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    bad = []
    for path in sorted(root.rglob("*.py")):
        owner = _owner(path, root)
        for line, module, names, _ in _imports(path, root):
            for what in _foreign_private(module, names, owner):
                bad.append(f"{path.relative_to(root.parent)}:{line} imports {what}")
    assert not bad, "\n".join(bad)


def test_no_private_attributes_of_names_imported_from_another_subpackage():
    # ``GaussianBackground._logpdf`` or ``numeric_module._helper`` from outside pft.numeric: the
    # static part of "no private methods across subpackages" (instances cannot be traced here).
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    bad = []
    for path in sorted(root.rglob("*.py")):
        owner = _owner(path, root)
        foreign = set()
        for _, module, names, bound in _imports(path, root):
            parts = module.split(".")
            if len(parts) >= 2 and parts[0] == "pft" and parts[1] in _SUBPACKAGES and parts[1] != owner:
                foreign |= set(bound) if names is not None else ({bound} if bound else {parts[0]})
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in foreign):
                bad.append(f"{path.relative_to(root.parent)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not bad, "\n".join(bad)


def test_the_import_checks_see_what_they_are_meant_to(tmp_path):
    # The checks above, on a file written to break them: multi-line, relative and lazy imports.
    root = tmp_path / "pft"
    (root / "residual").mkdir(parents=True)
    f = root / "residual" / "mod.py"
    f.write_text(
        "from pft.numeric import (\n    Moments,\n    _private_helper,\n)\n"
        "from ..numeric._moments import Moments as M\n"
        "from . import _own_private\n"
        "def g():\n    import pft.symbolic._draw\n"
    )
    found = [w for _, m, n, _ in _imports(f, root) for w in _foreign_private(m, n, "residual")]
    assert found == ["pft.numeric._private_helper", "pft.numeric._moments", "pft.symbolic._draw"]


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
