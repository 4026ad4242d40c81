"""Every code block of README.md and docs/*.md runs, so that none goes stale.

How it works (for whoever adds a section):

- A fenced block whose language is ``python`` runs in a fresh namespace, in an empty
  temporary working folder (files it writes go there), with matplotlib's Agg backend.
- A ``bash`` (or ``sh``, ``shell``) block runs in bash in such a folder when every command in
  it starts with ``ridgelens`` (run as ``python -m ridgelens`` of this checkout); lines may end
  with ``\\`` and carry ``# comments``. Any other shell block must be tagged (below).
- Blocks in any other language, or none (program output, a formula, a file tree), are text.
- One HTML comment on the line just above the opening fence changes that:

  - ``<!-- docs-test: continue -->`` runs the block in the working folder of the previous
    block of the same file, and a python block in its namespace too (a reader continues where
    the last block stopped);
  - ``<!-- docs-test: slow -->`` runs it only with ``-m slow`` (``make test-all``);
    ``<!-- docs-test: continue slow -->`` is both;
  - ``<!-- docs-test: skip REASON -->`` is illustrative only (a usage synopsis, an interface
    sketch, a command that rebuilds the environment); the reason is required. Keep these few;
  - ``<!-- docs-test: output-of COMMAND -->`` above a text block (program output): every
    line of the block must appear, as a line, in what ``COMMAND`` (a ridgelens command) prints.

A new block needs nothing: it is found and run. A block that fails is a failing test named
after its file and first line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELLS = ("bash", "sh", "shell")
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
MARK = re.compile(r"^\s*<!--\s*docs-test:\s*(continue|slow|skip|output-of)\b\s*(.*?)\s*-->\s*$")


def blocks(path: Path) -> list[dict]:
    """The fenced blocks of a Markdown file: language, code, first line number, marker."""
    lines = path.read_text(encoding="utf-8").splitlines()
    out, i = [], 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not FENCE.match(lines[j]):
            j += 1
        code = textwrap.dedent("\n".join(ln[len(indent):] if ln.startswith(indent) else ln
                                         for ln in lines[i + 1:j]))
        mark = MARK.match(lines[start - 1]) if start > 0 else None
        out.append({"lang": lang, "code": code, "line": start + 1, "file": path,
                    "mark": mark.group(1) if mark else None, "reason": mark.group(2) if mark else ""})
        i = j + 1
    return out


def _cases():
    cases = []
    for path in FILES:
        for b in blocks(path):
            if b["lang"] not in ("python", *SHELLS) and b["mark"] != "output-of":
                continue
            slow = b["mark"] == "slow" or (b["mark"] == "continue" and b["reason"] == "slow")
            marks = [pytest.mark.slow] if slow else []
            first = next((ln.strip() for ln in b["code"].splitlines() if ln.strip()), "")[:40]
            cases.append(pytest.param(b, id=f"{path.name}:{b['line']}:{first}", marks=marks))
    return cases


def _commands(code: str) -> list[str]:
    """The shell commands of a block, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", code)
    return [ln.split(" #")[0].strip() for ln in joined.splitlines() if ln.strip() and not ln.strip().startswith("#")]


@pytest.fixture
def ridgelens_on_path(tmp_path):
    """A PATH whose ``ridgelens`` is this checkout's ``python -m ridgelens``."""
    shim = tmp_path / "_bin"
    shim.mkdir()
    exe = shim / "ridgelens"
    exe.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m ridgelens "$@"\n')
    exe.chmod(0o755)
    env = dict(os.environ, PATH=f"{shim}{os.pathsep}{os.environ.get('PATH', '')}",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
               MPLBACKEND="Agg")
    return env


_namespaces: dict = {}
_workdirs: dict = {}
_last_run: dict = {}  # file → first line of the last of its blocks run in this session


def _runnable(b: dict) -> bool:
    return (b["lang"] in ("python", *SHELLS) or b["mark"] == "output-of") and b["mark"] != "skip"


def _continued(block: dict) -> list[dict]:
    """The blocks a ``continue`` block continues: back to the nearest one that is not ``continue``."""
    chain = []
    for b in reversed([b for b in blocks(block["file"]) if _runnable(b) and b["line"] < block["line"]]):
        chain.insert(0, b)
        if b["mark"] != "continue":
            break
    return chain


@pytest.mark.parametrize("block", _cases())
def test_doc_block_runs(block, tmp_path, monkeypatch, ridgelens_on_path):
    if block["mark"] == "skip":
        assert block["reason"], f"{block['file'].name}:{block['line']}: a skipped block must say why"
        pytest.skip(f"illustrative only: {block['reason']}")
    if block["mark"] == "continue":
        chain = _continued(block)
        assert chain, f"{block['file'].name}:{block['line']}: 'continue' needs a block before it"
        if _last_run.get(block["file"]) != chain[-1]["line"]:  # not run just before (-m slow, -k): run it first
            for b in chain:
                _run(b, tmp_path, monkeypatch, ridgelens_on_path)
    _run(block, tmp_path, monkeypatch, ridgelens_on_path)


def _run(block, tmp_path, monkeypatch, ridgelens_on_path):
    key = block["file"]
    if block["mark"] == "continue":
        work = _workdirs[key]
    else:
        work = tmp_path / f"work-{block['line']}"
        work.mkdir()
    _workdirs[key], _last_run[key] = work, block["line"]
    monkeypatch.chdir(work)
    if block["mark"] == "output-of":
        command = block["reason"]
        assert command.startswith("ridgelens "), f"{key.name}:{block['line']}: output-of needs a ridgelens command"
        done = subprocess.run(["bash", "-e", "-c", command], cwd=work, env=ridgelens_on_path,
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        printed = {ln.strip() for ln in done.stdout.splitlines()}
        missing = [ln for ln in block["code"].splitlines() if ln.strip() and ln.strip() not in printed]
        assert not missing, f"{key.name}:{block['line']}: `{command}` does not print {missing[0]!r}"
        return
    if block["lang"] == "python":
        import matplotlib

        matplotlib.use("Agg")
        if block["mark"] == "continue":
            assert key in _namespaces, f"{key.name}:{block['line']}: 'continue' needs a python block before it"
            ns = _namespaces[key]
        else:
            ns = {"__name__": "__docs__"}
        _namespaces[key] = ns
        exec(compile(block["code"], f"{key.name}:{block['line']}", "exec"), ns)
        return
    commands = _commands(block["code"])
    strangers = [c for c in commands if not c.startswith("ridgelens ")]
    assert not strangers, (f"{block['file'].name}:{block['line']}: shell commands other than ridgelens "
                           f"({strangers[0]!r}); tag the block <!-- docs-test: skip REASON --> if it cannot run")
    done = subprocess.run(["bash", "-e", "-c", block["code"]], cwd=work, env=ridgelens_on_path,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{block['file'].name}:{block['line']} exited {done.returncode}:\n{done.stderr}"


def test_the_extractor_finds_markers_and_blocks(tmp_path):
    md = tmp_path / "x.md"
    md.write_text("text\n\n<!-- docs-test: skip a synopsis -->\n```bash\nridgelens demo [--out DIR]\n```\n"
                  "```python\nx = 1\n```\n<!-- docs-test: continue -->\n```python\nassert x == 1\n```\n"
                  "```\noutput\n```\n")
    found = blocks(md)
    assert [(b["lang"], b["mark"], b["line"]) for b in found] == [
        ("bash", "skip", 4), ("python", None, 7), ("python", "continue", 11), ("", None, 14)]
    assert found[0]["reason"] == "a synopsis" and found[2]["code"] == "assert x == 1"
    assert _commands("ridgelens a \\\n  --b 1  # note\n# c\nridgelens d") == ["ridgelens a    --b 1", "ridgelens d"]
