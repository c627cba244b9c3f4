"""Every code block of README.md and docs/ runs: Python blocks as scripts, shell blocks with bash, each in a fresh
folder that sees the repository's `examples/`, on the default model. The blocks check their own outputs (asserts on
`result.best`, `re.fullmatch`, `jsonschema`, the rows SQLite returns); the `genlab` commands' outputs are checked
here for complete outputs. A block that cannot run in a test (the setup commands themselves, a Ray cluster) is
preceded by `<!-- not run: reason -->`, and there are few of them. A client of `genlab serve` is preceded by
`<!-- beside: COMMAND -->`: it runs while COMMAND (the server) runs in the background of the same folder.

README's blocks run by default; the pages' blocks are marked slow (`pytest -m slow` or `-m ''` runs them).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```\s*$", re.M | re.S)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
BESIDE = re.compile(r"<!-- beside: (.+?) -->\s*$")
SERVER_START = 300  # seconds a background server may take to answer /health (it loads the model)


def blocks(path: Path) -> list[tuple[str, int, str, str, str | None]]:
    """(page, line, language, code, reason it is not run or None) for each fenced block of a markdown file."""
    text = path.read_text(encoding="utf-8")
    out = []
    for m in FENCE.finditer(text):
        before = text[: m.start()].rstrip("\n").splitlines()
        reason = NOT_RUN.search(before[-1]) if before else None
        line = text.count("\n", 0, m.start()) + 1
        out.append((str(path.relative_to(ROOT)), line, m[1], m[2], reason[1] if reason else None))
    return out


PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
ALL = [b for page in PAGES for b in blocks(page)]
RUNNABLE = [b for b in ALL if b[4] is None and b[2] in ("python", "bash")]


def _param(block):
    page, line, language, _, _ = block
    marks = [] if page == "README.md" and language == "python" else [pytest.mark.slow]
    return pytest.param(block, id=f"{page}:{line}", marks=marks)


def test_blocks_are_found_and_few_are_not_run():
    assert len(RUNNABLE) >= 20, [(p, n) for p, n, *_ in RUNNABLE]
    languages = {lang for _, _, lang, _, _ in ALL}
    assert languages <= {"python", "bash", "text"}, languages  # a block in another language would not run
    skipped = [(page, line, reason) for page, line, _, _, reason in ALL if reason is not None]
    assert len(skipped) <= 6, skipped
    assert all(len(reason) > 20 for _, _, reason in skipped), skipped
    for page in ("README.md", "docs/guide/sql.md", "docs/transformers.md", "docs/cli.md"):
        assert any(p == page for p, *_ in RUNNABLE), page


def beside(block) -> str | None:
    """The command a block runs beside (`<!-- beside: COMMAND -->` on the line before it), if any."""
    page, line, *_ = block
    before = (ROOT / page).read_text(encoding="utf-8").splitlines()[: line - 1]
    match = BESIDE.search(before[-1]) if before else None
    return match[1] if match else None


def _run(block, folder: Path) -> subprocess.CompletedProcess:
    _, _, language, code, _ = block
    (folder / "examples").symlink_to(ROOT / "examples")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-c", code] if language == "python" else ["bash", "-euo", "pipefail", "-c", code]
    server = beside(block)
    if server is None:
        return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
    with open(folder / "server.log", "w+") as log:
        background = subprocess.Popen(
            ["bash", "-c", server], cwd=folder, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            _wait_for(server, background, log)
            return subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=900)
        finally:
            os.killpg(background.pid, signal.SIGTERM)  # the shell and the server it started
            background.wait(timeout=60)


def _wait_for(server: str, process: subprocess.Popen, log) -> None:
    """Until the server's /health answers (its --port, else 8000); fail with its log if it exits or never does."""
    import time
    import urllib.request

    port = re.search(r"--port (\d+)", server)
    url = f"http://127.0.0.1:{port[1] if port else 8000}/health"
    deadline = time.monotonic() + SERVER_START
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            pytest.fail(f"{server!r} exited with {process.returncode}:\n{log.read()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    log.seek(0)
    pytest.fail(f"{server!r} did not answer {url} in {SERVER_START} s:\n{log.read()[-3000:]}")


@pytest.mark.parametrize("block", [_param(b) for b in RUNNABLE])
def test_block_runs(block, tmp_path):
    page, line, language, code, _ = block
    run = _run(block, tmp_path)
    assert run.returncode == 0, f"{page}:{line}\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    if language == "bash" and ("genlab generate" in code or "genlab compare" in code):
        outputs = [line for line in run.stdout.splitlines() if line.lstrip().startswith("{")]
        for out in outputs:  # --json: complete outputs among the samples
            assert any(json.loads(out)["complete"]), out
        tables = run.stdout.count("complete ") + run.stdout.count("(100%)")
        assert outputs or tables, run.stdout  # the tables show complete outputs


def test_readme_test_command_is_what_ci_runs():
    """README's second command is `.ci/run`'s, character for character."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    commands = [code.strip() for page, _, lang, code, _ in ALL if page == "README.md" and lang == "bash"]
    assert ci in commands, (ci, commands)
    assert "mkdocs build --strict" in ci and "pytest" in ci
