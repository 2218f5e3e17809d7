"""The documentation runs and cannot go stale.

- Every ```python block of README.md and docs/*.md is executed (the rule is written in
  docs/design.md, "Documentation"): blocks of one file run in order in one namespace, in a
  fresh working directory; a block whose first line starts with ``>>>`` is a doctest and its
  printed output is compared; any other block is run as a script. A block preceded by
  ``<!-- skip: reason -->`` is not run, and SKIPPED below lists every such block, so a new one
  cannot pass unnoticed.
- docs/design.md's formula map names files and tests that exist (file and test function).
- docs/cli.md lists exactly the parser's subcommands, each with every one of its options.
- README.md stays under 10 KiB, its set-up and test commands are the ones .ci/run runs, relative
  links in the docs resolve, and nothing in the repository refers to notes that are not in it.

Regenerate docs/cli.md after changing the command line: ``python tests/test_docs.py --write-cli``.
"""

from __future__ import annotations

import argparse
import doctest
import io
import linecache
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README_LIMIT = 10_240

# (file, first words of the reason) for every block that is deliberately not run.
SKIPPED = {
    ("docs/real_models.md", "needs the models extra"),
    ("docs/scaling.md", "writes a store of"),
}

_OPEN = re.compile(r"^```\s*([A-Za-z0-9_+-]*)\s*$")
_SKIP = re.compile(r"^<!--\s*skip:\s*(.*?)\s*-->\s*$")
_PYTHON_SPELLINGS = {"py", "python3", "pycon", "pytb", "ipython"}
_FLAGS = doctest.NORMALIZE_WHITESPACE | doctest.ELLIPSIS  # NUMBER is pytest's own: write exact outputs


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    code: str
    skip: str | None  # the reason, when marked <!-- skip: reason -->

    @property
    def where(self) -> str:
        name = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path.name
        return f"{name}:{self.line}"

    @property
    def is_doctest(self) -> bool:
        return self.code.lstrip().startswith(">>>")


def fenced_blocks(path: Path) -> list[tuple[str, int, str, str | None]]:
    """Every fenced block of a Markdown file: (language, line, text, skip reason)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = _OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1).lower(), i
        j = i + 1
        while j < len(lines) and lines[j].strip() != "```":
            j += 1
        if j == len(lines):
            raise AssertionError(f"{path.name}:{start + 1}: fence never closed")
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        s = _SKIP.match(lines[k]) if k >= 0 else None
        out.append((lang, start + 1, "\n".join(lines[start + 1 : j]) + "\n", s.group(1) if s else None))
        i = j + 1
    return out


def python_blocks(path: Path) -> list[Block]:
    return [Block(path, line, text, skip) for lang, line, text, skip in fenced_blocks(path) if lang == "python"]


def run_block(block: Block, namespace: dict) -> None:
    """Run one block in ``namespace``; a doctest block's output is compared."""
    if block.is_doctest:
        test = doctest.DocTestParser().get_doctest(block.code, namespace, block.where, str(block.path), block.line)
        out = io.StringIO()
        runner = doctest.DocTestRunner(optionflags=_FLAGS)
        runner.run(test, out=out.write, clear_globs=False)
        assert runner.failures == 0, f"{block.where}: doctest failed\n{out.getvalue()}"
    else:
        linecache.cache[block.where] = (len(block.code), None, block.code.splitlines(True), block.where)
        exec(compile(block.code, block.where, "exec"), namespace)


_WITH_BLOCKS = [p for p in DOC_FILES if python_blocks(p)]


@pytest.mark.parametrize("path", _WITH_BLOCKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_python_block_runs(path, tmp_path, monkeypatch, one_torch_thread):
    monkeypatch.chdir(tmp_path)  # blocks write report.json, plots, ... here
    namespace: dict = {"__name__": "__docs__"}
    ran = 0
    for block in python_blocks(path):
        if block.skip is None:
            run_block(block, namespace)
            ran += 1
    assert ran > 0 or all(b.skip for b in python_blocks(path))


def test_skipped_blocks_are_the_listed_ones_and_say_why():
    found = set()
    for path in DOC_FILES:
        for b in python_blocks(path):
            if b.skip is not None:
                assert len(b.skip.split()) >= 3, f"{b.where}: say why the block is skipped"
                key = next((k for k in SKIPPED if k[0] == str(path.relative_to(ROOT)) and b.skip.startswith(k[1])), None)
                assert key is not None, f"{b.where}: skipped ({b.skip!r}) but not listed in SKIPPED"
                found.add(key)
    assert found == SKIPPED, f"listed in SKIPPED but not marked: {SKIPPED - found}"


def test_python_blocks_are_spelled_python_and_markers_sit_on_blocks():
    for path in DOC_FILES:
        blocks = fenced_blocks(path)
        for lang, line, _, _ in blocks:
            assert lang not in _PYTHON_SPELLINGS, f"{path.name}:{line}: write ```python (the one rule)"
        for lang, line, _, skip in blocks:
            assert skip is None or lang == "python", f"{path.name}:{line}: a skip marker on a {lang!r} block"
        # every skip marker is directly above a block
        text = path.read_text(encoding="utf-8").splitlines()
        inside = {line + k for lang, line, body, _ in blocks if lang == "python" for k in range(1, body.count("\n") + 1)}
        loose = [i for i, t in enumerate(text, 1) if t.lstrip().startswith(">>>") and i not in inside]
        assert not loose, f"{path.name}: lines {loose} look like doctests outside a ```python block (never run)"
        n_markers = sum(bool(_SKIP.match(t)) for t in text)
        assert n_markers == sum(s is not None for *_, s in blocks), f"{path.name}: a skip marker is not above a block"


def test_block_parser_on_a_sample(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("a\n```python\nx = 1\n```\n<!-- skip: needs a GPU to run -->\n\n```python\n>>> 1 + 1\n2\n```\n"
                  "```bash\nls\n```\n", encoding="utf-8")
    blocks = [Block(md, line, text, skip) for lang, line, text, skip in fenced_blocks(md) if lang == "python"]
    assert [(b.line, b.code, b.skip, b.is_doctest) for b in blocks] == [
        (2, "x = 1\n", None, False), (7, ">>> 1 + 1\n2\n", "needs a GPU to run", True)]
    ns: dict = {}
    run_block(blocks[0], ns)
    assert ns["x"] == 1
    run_block(blocks[1], ns)
    bad = Block(md, 1, ">>> 1 + 1\n3\n", None)
    with pytest.raises(AssertionError, match="doctest failed"):
        run_block(bad, ns)


# ----------------------------------------------------------------------------- the formula map


def _map_rows() -> list[tuple[str, list[str], list[str]]]:
    """(formula, files, tests) for each row of docs/design.md's formula map."""
    text = (ROOT / "docs" / "design.md").read_text(encoding="utf-8")
    start = text.index("<!-- formula map -->")
    rows = []
    for line in text[start:].splitlines()[1:]:
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip()[1:-1])]
        if len(cells) != 3 or set(cells[0]) <= set("-: ") or cells[0] == "formula":
            continue
        files = re.findall(r"`(pft/[^`]+?\.py)`", cells[1])
        tests = re.findall(r"`(tests/[^`]+?\.py::test_\w+)`", cells[2])
        rows.append((cells[0], files, tests))
    return rows


def test_formula_map_is_not_empty_and_every_row_names_a_file_and_a_test():
    rows = _map_rows()
    assert len(rows) >= 20
    for formula, files, tests in rows:
        assert files, f"map row {formula!r} names no pft/ file"
        assert tests, f"map row {formula!r} names no tests/...py::test_ function"


def test_formula_map_names_files_and_tests_that_exist():
    missing = []
    for formula, files, tests in _map_rows():
        missing += [f"{formula}: {f}" for f in files if not (ROOT / f).is_file()]
        for t in tests:
            file, func = t.split("::")
            src = ROOT / file
            if not src.is_file() or not re.search(rf"^\s*def {func}\(", src.read_text(encoding="utf-8"), re.M):
                missing.append(f"{formula}: {t}")
    assert not missing, "docs/design.md's map is stale:\n" + "\n".join(missing)


# ----------------------------------------------------------------------------- the CLI reference


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    from pft.cli import build_parser

    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert len(actions) == 1
    return dict(actions[0].choices)


def _cli_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    parts = re.split(r"^## `pft (\S+)`\s*$", text, flags=re.M)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts), 2)}


def test_cli_reference_lists_exactly_the_parsers_subcommands():
    assert set(_cli_sections()) == set(_subcommands()), "regenerate: python tests/test_docs.py --write-cli"


def test_cli_reference_lists_every_option_of_every_subcommand():
    sections = _cli_sections()
    for name, sub in _subcommands().items():
        for action in sub._actions:
            for flag in action.option_strings:
                assert re.search(rf"(?<![\w-]){re.escape(flag)}(?![\w-])", sections.get(name, "")), (
                    f"docs/cli.md: `pft {name}` does not mention {flag}; "
                    "regenerate: python tests/test_docs.py --write-cli")


def write_cli_reference() -> str:
    """docs/cli.md from the parser (100 columns, so the text does not depend on the terminal)."""
    import os

    os.environ["COLUMNS"] = "100"
    from pft.cli import build_parser

    parser = build_parser()
    parts = [
        "# The `pft` command\n",
        "Generated from the parser by `python tests/test_docs.py --write-cli`; `tests/test_docs.py`",
        "checks that every subcommand and option is here. Each command also runs as",
        "`python -m pft <command>`. Bad arguments and inputs exit with status 2 and one line on",
        "stderr ([bad-inputs.md](bad-inputs.md)).\n",
        "```text",
        parser.format_help().rstrip(),
        "```\n",
    ]
    for name, sub in _subcommands().items():
        parts += [f"## `pft {name}`\n", "```text", sub.format_help().rstrip(), "```\n"]
    text = "\n".join(parts)
    (ROOT / "docs" / "cli.md").write_text(text, encoding="utf-8")
    return text


# ----------------------------------------------------------------------------- size and references


def test_readme_is_at_most_10_kib():
    size = (ROOT / "README.md").stat().st_size
    assert size <= README_LIMIT, f"README.md is {size} bytes; move material to docs/"


def test_readme_set_up_and_test_command_are_what_ci_runs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    ci_commands = {" ".join(line.replace(" -q", "").split()) for line in ci.splitlines() if line.startswith("python -m")}
    set_up = readme.split("## Set up", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    commands = [" ".join(line.split()) for line in set_up.splitlines() if line.strip()]
    assert len(commands) == 2 and set(commands) <= ci_commands, (commands, ci_commands)
    assert "python -m pytest -q" in ci and "python -m pytest -q" in readme


def _tracked_text_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    files = []
    for name in out.decode().split("\0"):
        p = ROOT / name
        if name and p.is_file() and p.suffix not in {".png", ".pdf", ".npy", ".safetensors"}:
            files.append(p)
    return files


def test_nothing_refers_to_notes_outside_the_repository():
    notes = re.compile(r"\b(MATH|DESIGN|STYLE)\.md\b")
    hits = []
    for p in _tracked_text_files():
        if p == Path(__file__).resolve():
            continue
        try:
            text = p.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        hits += [f"{p.relative_to(ROOT)}:{i}" for i, line in enumerate(text.splitlines(), 1) if notes.search(line)]
    assert not hits, "cite docs/math.md or docs/design.md instead:\n" + "\n".join(hits)


def test_relative_links_in_docs_resolve():
    link = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
    broken = []
    for p in DOC_FILES:
        prose = re.sub(r"^```.*?^```", "", p.read_text(encoding="utf-8"), flags=re.S | re.M)
        for target in link.findall(re.sub(r"`[^`\n]*`", "", prose)):
            if "://" in target or target.startswith("mailto:"):
                continue
            if not (p.parent / target).exists():
                broken.append(f"{p.relative_to(ROOT)} -> {target}")
    assert not broken, broken


if __name__ == "__main__":
    if sys.argv[1:] == ["--write-cli"]:
        sys.path.insert(0, str(ROOT))
        write_cli_reference()
        print("wrote docs/cli.md")
    else:
        print(__doc__)
