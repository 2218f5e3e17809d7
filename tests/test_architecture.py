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


def _referenced(module, names):
    """The modules an import statement reaches: ``X`` for ``import X``; ``X`` and each ``X.name``
    for ``from X import name`` (``from pft import residual`` reaches pft.residual)."""
    return [module] + [f"{module}.{n}" for n in names or () if n != "*"]


_FORBIDDEN = {
    "symbolic": ("pft.numeric", "pft.residual", "pft.scaling", "pft.degrade", "pft.cli", "torch"),
    "numeric": ("pft.residual", "pft.scaling", "pft.degrade", "pft.cli"),
    "residual": ("pft.cli",),
    "scaling": ("pft.cli", "pft.residual"),
    "degrade": ("pft.cli",),
    "models": ("pft.cli",),
}


def _flow_violations(path, root):
    owner = _owner(path, root)
    out = []
    for line, module, names, _ in _imports(path, root):
        for m in _referenced(module, names):
            out += [f"{path.relative_to(root.parent)}:{line} imports {m}" for bad in _FORBIDDEN.get(owner, ())
                    if m == bad or m.startswith(bad + ".")]
    return out


def test_imports_flow_one_way():
    # numeric must not import residual/scaling/degrade/cli; symbolic must not import numeric or torch.
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    bad = [v for path in sorted(root.rglob("*.py")) for v in _flow_violations(path, root)]
    assert not bad, "\n".join(bad)


def _private_attribute_uses(path, root):
    """``Name.a.b._x`` where ``Name`` is bound by an import to something in another subpackage
    (``GaussianBackground._logpdf``, ``numeric._helper``, ``pft.numeric._moments``)."""
    import ast

    owner = _owner(path, root)
    bound = {}
    for _, module, names, aliases in _imports(path, root):
        if names is None:  # import a.b.c binds a; import a.b.c as z binds z
            bound[aliases or module.split(".")[0]] = module if aliases else module.split(".")[0]
        else:
            bound.update({a: f"{module}.{n}" for n, a in zip(names, aliases)})
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")):
            continue
        chain, v = [], node.value
        while isinstance(v, ast.Attribute):
            chain.append(v.attr)
            v = v.value
        if not isinstance(v, ast.Name) or v.id not in bound:
            continue
        parts = (bound[v.id] + "".join("." + a for a in reversed(chain))).split(".")
        if len(parts) >= 2 and parts[0] == "pft" and parts[1] in _SUBPACKAGES and parts[1] != owner:
            out.append(f"{path.relative_to(root.parent)}:{node.lineno} uses {'.'.join(parts)}.{node.attr}")
    return out


def test_no_private_attributes_of_names_imported_from_another_subpackage():
    # The static part of "no private methods across subpackages" (instances cannot be traced here).
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "pft"
    bad = [u for path in sorted(root.rglob("*.py")) for u in _private_attribute_uses(path, root)]
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
    g = root / "numeric" / "mod.py"
    (root / "numeric").mkdir()
    g.write_text(
        "import pft.numeric\nimport pft.residual\nfrom pft import scaling\nfrom .. import cli\n"
        "from ..residual import score\nfrom pft.scaling import Study\n"
        "def h():\n    pft._validate.check_int\n    pft.numeric._own\n    scaling._helper\n"
        "    Study._cells\n    pft.residual._score.x\n"
    )
    flows = [v.split(" imports ")[1] for v in _flow_violations(g, root)]
    assert flows == ["pft.residual", "pft.scaling", "pft.cli", "pft.residual", "pft.residual.score",
                     "pft.scaling", "pft.scaling.Study"]
    uses = [u.split(" uses ")[1] for u in _private_attribute_uses(g, root)]
    assert sorted(uses) == ["pft.residual._score", "pft.scaling.Study._cells", "pft.scaling._helper"]


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
