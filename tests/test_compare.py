"""``oodbench compare`` (issue 29): regenerated records held against the committed ones, so that a change that
moves a published number fails CI (``.ci/run`` runs it on the ``smoke`` suite)."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from oodbench.cli.main import main
from oodbench.records.record import evaluated_as_is
from oodbench.records.store import read_records, record_files
from oodbench.suites.compare import compare, matched, pin_key, run_key

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


def test_the_checkpoints_of_a_several_model_suite_are_told_apart(tmp_path):
    """cifar10-cpu evaluates three brought models under one backbone name: matched without the checkpoint hash,
    their records collided (seed 1's number compared with seed 2's). A brought model keeps its hash in the key; a
    trained one does not (a retrain elsewhere gives other weights)."""
    cifar = COMMITTED.parent / "cifar10-cpu"
    records = sorted(cifar.glob("anomaly/msp__*__mnist__*.json"))  # one per checkpoint
    assert len({json.loads(p.read_text())["checkpoint"] for p in records}) == 3
    fresh = tmp_path / "cifar10-cpu"
    for p in records:
        (fresh / p.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(p, fresh / p.parent.name / p.name)
    committed = tmp_path / "committed"
    shutil.copytree(fresh, committed)
    assert compare(committed, fresh) == [] and len(matched(committed, fresh)[0]) == 3
    moved = sorted(fresh.rglob("*.json"))[0]
    data = json.loads(moved.read_text())
    data["metrics"]["auroc"] += 1.0
    moved.write_text(json.dumps(data))
    (line,) = compare(committed, fresh, metrics=["auroc"])
    assert f"model {Path(data['model']['path']).name}]: auroc" in line
    committed_only = sorted(committed.rglob("*.json"))[-1]
    committed_only.unlink()  # regenerated but not committed yet: a line, unless uncommitted=False (partial suite)
    assert sum("regenerated but not committed" in x for x in compare(committed, fresh, metrics=["auroc"])) == 1
    assert not any("regenerated but not committed" in x for x in compare(committed, fresh, uncommitted=False))
    trained = read_records(COMMITTED)
    assert not any(evaluated_as_is(r.model) for r in trained) and len({pin_key(r) for r in trained}) == len(trained)


def test_run_key_groups_the_records_one_run_writes():
    """A suite entry's pin compares the committed records of the runs it regenerated (tests/test_reproductions.py):
    the records of one run share a run key whatever their detector, OOD set or checkpoint; another protocol, tuning,
    seed or held-out split is another run. Counted on the committed ``cpu`` suite (benchmarks.yaml's entries)."""
    runs = Counter()
    for _, r in record_files(COMMITTED.parent / "cpu"):
        runs[run_key(r), r.id, r.protocol, r.tune, r.seed] += 1
    assert len({key for key, *_ in runs}) == len(runs)  # one run key, one (data, protocol, tuning, seed)
    assert runs.most_common(2) == [
        ((run_key_of(runs, "fashionmnist", "corruption", "none")), 3 * 11 * 5),  # 3 detectors, 11 types × 5 levels
        ((run_key_of(runs, "fashionmnist", "anomaly", "none")), 22 * 6),  # entry 3: 22 detectors × 6 OOD sets
    ]
    assert runs[run_key_of(runs, "fashionmnist", "anomaly", "oracle")] == 6  # entry 1, six methods (two LeNets more)
    assert runs[run_key_of(runs, "fashionmnist", "anomaly", "oracle", seed=1)] == 2  # entry 2, another seed


def run_key_of(runs: Counter, id_: str, protocol: str, tune: str, seed: int = 0) -> tuple:
    (found,) = [key for key in runs if key[1:] == (id_, protocol, tune, seed)]
    return found
