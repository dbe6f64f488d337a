"""Plugin authors see no break from the stage layout (issue 22): every public name imports from ``oodbench``,
and each module path from before the layout imports the same module object with a DeprecationWarning."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

import oodbench
from oodbench._compat import MOVED, RESULTS

REPO = Path(__file__).resolve().parents[1]


def test_every_public_name_imports_from_oodbench():
    missing = [name for name in oodbench.__all__ if getattr(oodbench, name, None) is None]
    assert not missing, missing


def test_the_guides_api_summary_imports():
    """docs/plugins.md §12, as written: every import line of its summary block runs."""
    guide = (REPO / "docs" / "plugins.md").read_text()
    block = guide.split("## 12 API summary", 1)[1].split("```python", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(block, "plugins.md §12", "exec"), namespace)
    assert {"Detector", "check_detector", "registries", "state_key", "UsageError", "TrainTask"} <= set(namespace)


def test_every_old_module_path_is_the_new_module_with_a_warning():
    """In a fresh interpreter, so that no import an earlier test made hides a warning."""
    code = (
        "import importlib, sys, warnings\n"
        f"for old, new in {MOVED!r}.items():\n"
        "    with warnings.catch_warnings(record=True) as seen:\n"
        "        warnings.simplefilter('always')\n"
        "        module = importlib.import_module(old)\n"
        "    assert module is importlib.import_module(new), old\n"
        "    said = [str(w.message) for w in seen if w.category is DeprecationWarning and old in str(w.message)]\n"
        "    assert len(said) == 1 and new in said[0], (old, said)\n"
        "print(len(sys.modules))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_the_old_results_module_resolves_every_name(monkeypatch):
    monkeypatch.delitem(sys.modules, "oodbench.results", raising=False)
    with pytest.warns(DeprecationWarning, match="oodbench.results is deprecated"):
        results = importlib.import_module("oodbench.results")
    for name, home in RESULTS.items():
        assert getattr(results, name) is getattr(importlib.import_module(home), name), name
    with pytest.raises(AttributeError):
        results.no_such_name  # noqa: B018
