"""Reproduction pins (issue 29, item 1): every number README.md and docs/reproductions.md call reproduced is
regenerated and held against the committed one.

``pytest -m reproduction`` (deselected by default; the ``reproduction`` workflow runs it weekly and on demand)
regenerates the ``cpu`` and ``trained`` suites of benchmarks.yaml — the rows docs/reproductions.md and LEADERBOARD.md
print, the papers' numbers beside them — and compares each record with the one committed under ``leaderboards/``,
plus the README's main-job row with the README's own table. Each test prints the pinned rows: committed, now, and
the paper's number. A suite is pinned entry by entry (``-k trained-10``: its tenth entry alone), so a suite longer
than one sitting can be shown passing in parts; one pytest session shares its checkpoint cache across the entries,
as one ``oodbench bench`` does across its runs.

Tolerance (``OODBENCH_PIN_TOLERANCE``, default 0.5 AUROC points), from measured noise, not guessed: on the same
weights a regeneration is deterministic here (``smoke`` moved by at most 0.0005); the README's main-job row moved by
0.1 between days. 0.5 is five times that, so a change of code that moves a pinned number by a point fails. It holds
for records whose weights hash equals the committed one (``oodbench compare`` matches records without it and tags
the others). A LeNet retrained from the same seed on another host has other weights, and the cpu suite's rows then
moved by up to 17.6 AUROC with no change of code (docs/reproductions.md, "Retraining moves numbers"): such rows are
held to ``OODBENCH_PIN_RETRAINED_TOLERANCE`` (default 20) — a broken or inverted detector still fails it — and
marked ``*``. The workflow caches the checkpoints between runs; its rows are held to 0.5 only where the committed
records were made from the same weights (on 2026-12-07 a cold run here retrained every LeNet of ``cpu`` and of
``trained`` entries 1-9 to other weights: the kernel ISA decides the bits; docs/reproductions.md, "The pins run on
main").
A change that moves a pinned number updates the committed records (``oodbench leaderboard SUITE --publish``), the
docs and this pin in the same commit.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from oodbench.cli.main import main
from oodbench.records.record import Record
from oodbench.records.store import record_files
from oodbench.suites.bench import load_suites
from oodbench.suites.compare import compare_records, matched, run_key
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
    """``rows``: (label, committed, now, paper, retrained); a retrained row (other weights than the committed
    record's) is marked ``*`` and held to the retrained tolerance."""
    with capsys.disabled():
        print(f"\n{title} (AUROC; pin ±{TOLERANCE}; * other weights, pin ±{RETRAINED_TOLERANCE})")
        print(f"{'row':<72} {'committed':>9} {'now':>7} {'paper':>7}")
        for label, old, new, paper, retrained in rows:
            now = "—" if new is None else f"{new:.1f}" + ("*" if retrained else "")
            print(f"{label:<72} {old:>9.1f} {now:>7} {paper if paper is not None else '—':>7}")


def _entries(*suites: str) -> list:
    """One test per suite entry (``-k trained-10`` runs the tenth entry of ``trained`` alone), so a suite too long
    for one sitting can be shown passing in parts; ``-k "regenerates and cpu"`` runs a whole suite."""
    every = load_suites(ROOT / "benchmarks.yaml")
    return [pytest.param(s, i, id=f"{s}-{i + 1:02d}") for s in suites for i in range(len(every[s]["runs"]))]


def _entry_file(suite: dict, name: str, index: int, path: Path) -> Path:
    """A suite file holding entry ``index`` of ``suite`` alone, under the suite's name (the same requests)."""
    alone = {"description": f"entry {index + 1} of {name}", "runs": [suite["runs"][index]]}
    path.write_text(yaml.safe_dump({"suites": {name: alone}}))
    return path


def _committed_twins(committed: dict[str, Record], fresh: dict[str, Record], detectors: set[str]) -> dict:
    """The committed records of the runs that made ``fresh``: same run (:func:`run_key`), a detector of the entry.
    A record the code no longer makes (a dropped OOD set or detector) is among them and shows as not regenerated."""
    runs = {run_key(r) for r in fresh.values()}
    return {k: r for k, r in committed.items() if r.detector in detectors and run_key(r) in runs}


@pytest.mark.reproduction
@pytest.mark.parametrize(("suite", "index"), _entries("cpu", "trained"))
def test_suite_regenerates_its_committed_numbers(suite, index, tmp_path, capsys):
    """One entry of the suite from a cold cache (``oodbench bench``; entries of one pytest session share the
    checkpoint cache, as one ``oodbench bench`` does): every regenerated record has a committed twin (same identity,
    weights hash aside) whose AUROC and ID accuracy are within the tolerance, and every committed record of the
    same runs is regenerated. An entry whose records are not committed fails ("regenerated but not committed", as an
    identity change does): adding an entry publishes its records in the same commit."""
    committed = ROOT / "leaderboards" / suite
    if not any(committed.rglob("*.json")):  # said, not hidden: `pytest -m reproduction -rs` lists it
        pytest.skip(
            f"no committed records for {suite} yet: oodbench bench {suite} && oodbench leaderboard {suite} --publish"
        )
    results, spec = tmp_path / "results", load_suites(ROOT / "benchmarks.yaml")[suite]
    entry = _entry_file(spec, suite, index, tmp_path / "entry.yaml")
    assert main(["bench", suite, "--file", str(entry), "--results", str(results)]) == 0
    every, new = matched(committed, results / suite)
    assert new, f"entry {index + 1} of {suite} wrote no records"
    old = _committed_twins(every, new, set(spec["runs"][index]["detectors"]))
    problems = compare_records(old, new, TOLERANCE, PINNED, RETRAINED_TOLERANCE)
    paper = paper_numbers(spec)
    rows = []
    for key, r in sorted(old.items(), key=lambda kv: (kv[1].protocol, kv[1].id, kv[1].ood, kv[1].detector)):
        ref = published(paper, r.protocol, r.detector, r.id, r.ood, r.tune).get("auroc")
        metric = "auroc" if "auroc" in r.metrics else "auroc_err"
        now = new[key].metrics.get(metric) if key in new else None
        label = f"{r.detector} {r.id}→{r.ood} [{r.protocol}, {r.tune}, seed {r.seed}]"
        rows.append((label, r.metrics[metric], now, ref, key in new and new[key].checkpoint != r.checkpoint))
    _show(capsys, f"suite {suite}, entry {index + 1}: {len(rows)} pinned rows", rows)
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
        [(f"{detector} (README)", pinned, record.metrics["auroc"], paper["auroc"], False)],
    )
    assert abs(record.metrics["auroc"] - pinned) <= TOLERANCE
