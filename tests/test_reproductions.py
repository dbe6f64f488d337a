"""Reproduction pins (issue 29, item 1): every number README.md and docs/reproductions.md call reproduced is
regenerated and held against the committed one.

``pytest -m reproduction`` (deselected by default; the ``reproduction`` workflow runs it weekly and on demand)
regenerates the ``cpu`` and ``trained`` suites of benchmarks.yaml — the rows docs/reproductions.md and LEADERBOARD.md
print, the papers' numbers beside them — and compares each record with the one committed under ``leaderboards/``,
plus the README's main-job row with the README's own table. Each test prints the pinned rows: committed, now, and
the paper's number.

Tolerance (``OODBENCH_PIN_TOLERANCE``, default 0.5 AUROC points), from measured noise, not guessed: on the same
weights a regeneration is deterministic here (``smoke`` moved by at most 0.0005); the README's main-job row moved by
0.1 between days. 0.5 is five times that, so a change of code that moves a pinned number by a point fails. It holds
for records whose weights hash equals the committed one (``oodbench compare`` matches records without it and tags
the others). A LeNet retrained from the same seed on another host has other weights, and the cpu suite's rows then
moved by up to 17.6 AUROC with no change of code (docs/reproductions.md, "Retraining moves numbers"): such rows are
held to ``OODBENCH_PIN_RETRAINED_TOLERANCE`` (default 20) — a broken or inverted detector still fails it — and
the workflow caches the checkpoints between runs so that its pins compare like with like.
A change that moves a pinned number updates the committed records (``oodbench leaderboard SUITE --publish``), the
docs and this pin in the same commit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from oodbench.cli.main import main
from oodbench.records.store import record_files
from oodbench.suites.bench import load_suites
from oodbench.suites.compare import compare, matched
from oodbench.suites.leaderboard import paper_numbers, published

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = float(os.environ.get("OODBENCH_PIN_TOLERANCE", "0.5"))
# rows whose LeNet was retrained with other weights (another host): the largest move measured between two such
# retrains of the cpu suite was 17.6 AUROC (ASH on Gaussian noise; docs/reproductions.md, "Retraining moves numbers")
RETRAINED_TOLERANCE = float(os.environ.get("OODBENCH_PIN_RETRAINED_TOLERANCE", "20"))
PINNED = ("auroc", "auroc_err", "id_acc")  # auroc_err: misclassification rows (errors positive)


@pytest.fixture(autouse=True)
def _long_training_allowed(monkeypatch):
    """A reproduction trains for as long as its paper's recipe takes; the CPU time estimate must not refuse it.
    ``OODBENCH_PIN_CACHE=DIR`` reuses the checkpoints of an earlier regeneration (same code, same numbers: the
    checkpoint key holds the whole training configuration) instead of a cold cache."""
    monkeypatch.setenv("OODBENCH_YES", "1")
    if os.environ.get("OODBENCH_PIN_CACHE"):
        monkeypatch.setenv("OODBENCH_CACHE", os.environ["OODBENCH_PIN_CACHE"])


def _show(capsys, title: str, rows: list[tuple]) -> None:
    with capsys.disabled():
        print(f"\n{title} (AUROC; pin ±{TOLERANCE})")
        print(f"{'row':<72} {'committed':>9} {'now':>7} {'paper':>7}")
        for label, old, new, paper in rows:
            now = "—" if new is None else f"{new:.1f}"
            print(f"{label:<72} {old:>9.1f} {now:>7} {paper if paper is not None else '—':>7}")


@pytest.mark.reproduction
@pytest.mark.parametrize("suite", ["cpu", "trained"])
def test_suite_regenerates_its_committed_numbers(suite, tmp_path, capsys):
    """The whole suite from a cold cache (``oodbench bench``), every record's AUROC and ID accuracy within the
    tolerance of the committed record with the same identity (weights hash aside)."""
    committed = ROOT / "leaderboards" / suite
    if not any(committed.rglob("*.json")):  # said, not hidden: `pytest -m reproduction -rs` lists it
        pytest.skip(
            f"no committed records for {suite} yet: oodbench bench {suite} && oodbench leaderboard {suite} --publish"
        )
    results = tmp_path / "results"
    assert main(["bench", suite, "--file", str(ROOT / "benchmarks.yaml"), "--results", str(results)]) == 0
    # rows of runs not committed yet (a suite entry added before its records) are not pinned; an identity change
    # still fails, as "committed but not regenerated"
    problems = compare(committed, results / suite, TOLERANCE, PINNED, RETRAINED_TOLERANCE, uncommitted=False)
    old, new = matched(committed, results / suite)
    paper = paper_numbers(load_suites(ROOT / "benchmarks.yaml")[suite])
    rows = []
    for key, r in sorted(old.items(), key=lambda kv: (kv[1].protocol, kv[1].id, kv[1].ood, kv[1].detector)):
        ref = published(paper, r.protocol, r.detector, r.id, r.ood, r.tune).get("auroc")
        metric = "auroc" if "auroc" in r.metrics else "auroc_err"
        now = new[key].metrics.get(metric) if key in new else None
        label = f"{r.detector} {r.id}→{r.ood} [{r.protocol}, {r.tune}, seed {r.seed}]"
        rows.append((label, r.metrics[metric], now, ref))
    _show(capsys, f"suite {suite}: {len(rows)} pinned rows", rows)
    assert not problems, "\n".join(problems)


def _readme_rows() -> list[tuple[str, list[str], float]]:
    """(detector, command, AUROC) of the README's "Reproduced numbers" table."""
    text = (ROOT / "README.md").read_text()
    section = text.split("## Reproduced numbers", 1)[1].split("\n## ", 1)[0]
    found = []
    for m in re.finditer(r"^\| `(oodbench run [^`]+)` \| [^|]+ \| \*\*([\d.]+)\*\* \|", section, re.M):
        found.append((m.group(1).split("--detector ")[1].split()[0], m.group(1).split()[2:], float(m.group(2))))
    return found


def test_the_readme_table_is_found():
    """Runs by default: the pins below parse the README's table, so a reworded table cannot silently unpin it."""
    assert [d for d, _, _ in _readme_rows()] == ["fssd", "msp"]


@pytest.mark.reproduction
@pytest.mark.parametrize("detector", ["fssd", "msp"])
def test_readme_main_job_rows(detector, tmp_path, capsys, monkeypatch):
    """The README's "Reproduced numbers" rows, as its commands run them (seed 0, cold cache)."""
    if not os.environ.get("OODBENCH_PIN_CACHE"):
        monkeypatch.setenv("OODBENCH_CACHE", str(tmp_path / "cache"))
    (_, args, pinned), *_ = [row for row in _readme_rows() if row[0] == detector]
    assert main(["run", *args, "--results", str(tmp_path / "results"), "--format", "json"]) == 0
    capsys.readouterr()
    (record,) = [r for _, r in record_files(tmp_path / "results")]
    paper = published(
        paper_numbers(load_suites(ROOT / "benchmarks.yaml")["cpu"]),
        "anomaly",
        detector,
        "fashionmnist",
        "mnist",
        "oracle",
    )
    _show(
        capsys,
        "README.md, Reproduced numbers",
        [(f"{detector} (README)", pinned, record.metrics["auroc"], paper["auroc"])],
    )
    assert abs(record.metrics["auroc"] - pinned) <= TOLERANCE
