"""``oodbench compare`` (issue 29): regenerated records held against the committed ones, so that a change that
moves a published number fails CI (``.ci/run`` runs it on the ``smoke`` suite)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from oodbench.cli.main import main
from oodbench.suites.compare import compare

COMMITTED = Path(__file__).resolve().parents[1] / "leaderboards" / "smoke"


def _copy(tmp_path: Path) -> Path:
    fresh = tmp_path / "results" / "smoke"
    shutil.copytree(COMMITTED, fresh)
    return fresh


def test_identical_records_match_and_a_moved_or_missing_one_is_a_line_each(tmp_path, capsys):
    fresh = _copy(tmp_path)
    assert compare(COMMITTED, fresh) == []
    record = next(p for p in sorted(fresh.rglob("*.json")) if "anomaly" in p.parts and "energy" in p.name)
    data = json.loads(record.read_text())
    data["metrics"]["auroc"] += 0.05  # within the tolerance
    record.write_text(json.dumps(data))
    assert compare(COMMITTED, fresh) == []
    data["metrics"]["auroc"] += 0.5
    record.write_text(json.dumps(data))
    (line,) = compare(COMMITTED, fresh)
    assert line.startswith(f"energy fashionmnist→{data['ood']} [anomaly, tune oracle, seed 0]: auroc ")
    assert "now (±0.1)" in line
    next(p for p in sorted(fresh.rglob("*.json")) if "novelty" in p.parts).unlink()
    assert sum("committed but not regenerated" in x for x in compare(COMMITTED, fresh)) == 1
    assert main(["compare", "smoke", "--against", str(COMMITTED), "--results", str(tmp_path / "results")]) == 1
    assert capsys.readouterr().err.count("oodbench: ") == 2
