"""Benchmark suites (``benchmarks.yaml``), resumable execution and the leaderboard.

A suite is a list of run entries (the options of ``oodbench run`` as YAML, plus ``seeds`` and
``paper`` — the published numbers to print beside the reproduced ones). ``bench`` expands every
entry (seeds × held-out classes), writes a marker when a run completes and skips marked runs, and
inside a run skips records that already exist: an interrupted suite resumes where it stopped.
``leaderboard`` renders the records only, ranked by AUROC within each (protocol, ID, OOD).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from contextlib import closing
from pathlib import Path
from typing import Any

from . import protocols
from .errors import UsageError
from .evaluate import failure_lines
from .executors import Executor, LocalExecutor
from .metrics import METRIC_LABELS
from .progress import say
from .record import Record
from .request import RunRequest, describe_run
from .runner import expand
from .store import read_records, results_dir
from .tables import mean_std, over_seeds, tabulate_rows


def warn(message: str) -> None:
    """A line on stderr that ``OODBENCH_QUIET`` does not silence (failures)."""
    import sys

    print(message, file=sys.stderr, flush=True)


SUITE_KEYS = {f.name for f in dataclasses.fields(RunRequest)} | {"seeds", "paper"}


def load_suites(path: str | Path = "benchmarks.yaml") -> dict[str, Any]:
    import yaml

    p = Path(path)
    if not p.is_file():
        raise UsageError(f"suite file {str(p)!r} not found (run from the project root or pass --file)")
    return (yaml.safe_load(p.read_text()) or {}).get("suites", {})


def suite_requests(suite: dict[str, Any], out_dir: Path) -> list[tuple[RunRequest, dict]]:
    """Every (request, entry) of a suite, expanded over seeds and held-out classes."""
    out = []
    for i, entry in enumerate(suite.get("runs", [])):
        unknown = set(entry) - SUITE_KEYS
        if unknown:
            raise UsageError(f"suite entry {i} has unknown keys {sorted(unknown)}")
        fields = {k: v for k, v in entry.items() if k not in ("seeds", "paper")}
        if fields.get("checkpoint") is not None:
            fields["checkpoint"] = Path(fields["checkpoint"])  # YAML gives a string; the run loads a Path
        req = RunRequest(**fields, results=str(out_dir))
        for part in expand(req, entry.get("seeds")):
            out.append((part, entry))
    return out


def request_key(req: RunRequest) -> str:
    blob = json.dumps(dataclasses.asdict(req), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def bench(
    name: str, path: str | Path = "benchmarks.yaml", results: str | None = None, executor: Executor | None = None
) -> dict[str, int]:
    """Run suite ``name``; returns counts of runs done now, skipped as already done, and failed.
    A run whose detectors failed gets no marker: the next call retries it (its finished records are kept).
    ``executor`` runs the runs not done yet (default: :class:`~oodbench.executors.LocalExecutor`, in this process)."""
    suites = load_suites(path)
    if name not in suites:
        from .errors import UnknownNameError

        raise UnknownNameError("suite", name, suites)
    out_dir = results_dir(results) / name
    todo = suite_requests(suites[name], out_dir)
    markers = out_dir / ".done"
    markers.mkdir(parents=True, exist_ok=True)
    counts = {"done": 0, "skipped": 0, "failed": 0, "total": len(todo)}
    pending = []
    for i, (req, _) in enumerate(todo, 1):
        if (markers / request_key(req)).is_file():
            counts["skipped"] += 1
            say(f"[{i}/{len(todo)}] skip (done): {describe_run(req)}")
            continue
        pending.append((i, req))
    with closing((executor or LocalExecutor()).run_all(pending, out_dir, len(todo))) as finished:
        for i, outcome in finished:
            req = todo[i - 1][0]
            if outcome.failures or outcome.error:
                counts["failed"] += 1
                lines = [f"run failed ({describe_run(req)}): {outcome.error}"] if outcome.error else []
                for line in lines + failure_lines(outcome.failures):
                    warn(f"[{i}/{len(todo)}] {line}")
                continue
            (markers / request_key(req)).write_text(json.dumps(dataclasses.asdict(req), default=str))
            counts["done"] += 1
    say(
        f"suite {name}: {counts['done']} run(s) done now, {counts['skipped']} skipped as already done, "
        f"{counts['failed']} failed" + (" — nothing to do" if counts["done"] + counts["failed"] == 0 else "")
    )
    return counts


def _paper_numbers(suite: dict[str, Any]) -> dict[tuple, dict[str, float]]:
    """(protocol, detector, base ID, OOD or "*", tune) → {metric: value} from the entries' ``paper`` mappings
    (``{det: {auroc: N}}`` for every OOD of the entry, or ``{det: {OOD: {auroc: N}}}`` per OOD set).
    A published number sits only beside rows run the way the declaring entry runs them."""
    out: dict[tuple, dict[str, float]] = {}
    for entry in suite.get("runs", []):
        tune, protocol = entry.get("tune", "none"), entry.get("protocol", "anomaly")
        for det, spec in (entry.get("paper") or {}).items():
            if spec and all(isinstance(v, dict) for v in spec.values()):
                for ood, metrics in spec.items():
                    out[(protocol, det, entry["id"], ood, tune)] = metrics
            else:
                for ood in entry.get("oods") or ["*"]:
                    out[(protocol, det, entry["id"], ood, tune)] = spec
    return out


def ranked_table(records: list[Record], metrics: tuple[str, ...], paper: dict, fmt: str) -> str:
    """Rows ranked by the first metric within each (ID, OOD), mean ± std over seeds, paper AUROC beside."""
    rows = []
    for key, grp, means, stds in over_seeds(records, metrics):
        id_, ood, det, tune, protocol = key["id"], key["ood"], key["detector"], key["tune"], grp[0].protocol
        base_id = re.split(r"-\{|\[", id_)[0]
        ref = paper.get((protocol, det, base_id, ood, tune)) or paper.get((protocol, det, base_id, "*", tune)) or {}
        rows.append(
            [
                id_,
                ood,
                det + key["variant"],
                key["backbone"],
                tune,
                len({g.seed for g in grp}),
                *(mean_std(means, stds, m, len(grp) > 1) for m in metrics),
                ref.get("auroc", "—"),
                means.get(metrics[0], 0.0),
            ]
        )
    rows.sort(key=lambda r: (r[0], r[1], -r[-1]))
    ranked, last, rank = [], None, 0
    for row in rows:
        rank = rank + 1 if (row[0], row[1]) == last else 1
        last = (row[0], row[1])
        ranked.append([rank, *row[:-1]])
    headers = [
        "#",
        "ID",
        "OOD",
        "Detector",
        "Backbone",
        "Tune",
        "Seeds",
        *(METRIC_LABELS.get(m, m) for m in metrics),
        "paper AUROC",
    ]
    return tabulate_rows(headers, ranked, fmt)


def leaderboard(
    name: str, path: str | Path = "benchmarks.yaml", results: str | None = None, fmt: str = "github"
) -> str:
    """Ranked tables (sections chosen by each protocol) from the suite's records, paper numbers beside rows."""
    suite = load_suites(path).get(name, {})
    records = read_records(results_dir(results) / name)
    if not records:
        raise UsageError(
            f"no records for suite {name!r} under {results_dir(results) / name}; run `oodbench bench {name}` first"
        )
    paper, fmt = _paper_numbers(suite), fmt if fmt != "json" else "github"
    sections: list[str] = []
    for protocol in sorted({r.protocol for r in records}):
        rs = [r for r in records if r.protocol == protocol]
        sections += protocols.get(protocol).leaderboard(rs, fmt, lambda recs, m: ranked_table(recs, m, paper, fmt))
    return "\n\n".join(sections)


def write_section(path: str | Path, name: str, text: str) -> Path:
    """Replace the marked leaderboard section of a Markdown file in place (append it if absent)."""
    p = Path(path)
    start, end = f"<!-- oodbench:leaderboard {name} -->", f"<!-- /oodbench:leaderboard {name} -->"
    block = f"{start}\n{text}\n{end}"
    old = p.read_text() if p.is_file() else ""
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.S)
    new = pattern.sub(lambda _: block, old) if pattern.search(old) else (old.rstrip() + "\n\n" + block + "\n").lstrip()
    p.write_text(new)
    return p
