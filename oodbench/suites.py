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
from pathlib import Path
from typing import Any

from .errors import UsageError
from .progress import say
from .results import METRIC_LABELS, corruption_table, mean_std, over_seeds, read_records, results_dir, tabulate_rows
from .runner import RunRequest, expand, run

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
        req = RunRequest(**fields, results=str(out_dir))
        for part in expand(req, entry.get("seeds")):
            out.append((part, entry))
    return out


def request_key(req: RunRequest) -> str:
    blob = json.dumps(dataclasses.asdict(req), sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def bench(name: str, path: str | Path = "benchmarks.yaml", results: str | None = None) -> dict[str, int]:
    """Run suite ``name``; returns counts of runs done now and skipped as already done."""
    suites = load_suites(path)
    if name not in suites:
        from .errors import UnknownNameError

        raise UnknownNameError("suite", name, suites)
    out_dir = results_dir(results) / name
    todo = suite_requests(suites[name], out_dir)
    markers = out_dir / ".done"
    markers.mkdir(parents=True, exist_ok=True)
    done = skipped = 0
    for i, (req, _) in enumerate(todo, 1):
        marker = markers / request_key(req)
        label = f"{req.protocol} {req.id}→{','.join(req.oods) or req.holdout or ''} seed {req.seed}: {', '.join(req.detectors)}"
        if marker.is_file():
            skipped += 1
            say(f"[{i}/{len(todo)}] skip (done): {label}")
            continue
        say(f"[{i}/{len(todo)}] run: {label}")
        run(req, skip_existing=True)
        marker.write_text(json.dumps(dataclasses.asdict(req), default=str))
        done += 1
    say(f"suite {name}: {done} run(s) done now, {skipped} skipped as already done" +
        (" — nothing to do" if done == 0 else ""))
    return {"done": done, "skipped": skipped, "total": len(todo)}


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


def leaderboard(name: str, path: str | Path = "benchmarks.yaml", results: str | None = None, fmt: str = "github") -> str:
    """Ranked tables (one per protocol) from the suite's records, paper numbers beside reproduced rows."""
    suites = load_suites(path)
    suite = suites.get(name, {})
    records = read_records(results_dir(results) / name)
    if not records:
        raise UsageError(f"no records for suite {name!r} under {results_dir(results) / name}; run `oodbench bench {name}` first")
    paper = _paper_numbers(suite)
    sections = []
    for protocol in sorted({r["protocol"] for r in records}):
        rs = [r for r in records if r["protocol"] == protocol]
        sweep = [r for r in rs if "@" in r["ood"]]  # corruption (a): one pivot per ID set, not 55 rows each
        if sweep:
            for id_ in sorted({r["id"] for r in sweep}):
                sections.append(f"### {protocol}: {id_} test set corrupted as OOD (AUROC per type × severity)\n\n"
                                + corruption_table([r for r in sweep if r["id"] == id_], fmt if fmt != "json" else "github"))
            rs = [r for r in rs if "@" not in r["ood"]]
            if not rs:
                continue
        metrics = (["auroc_err", "aupr_succ", "aupr_err", "id_acc"] if protocol == "misclassification"
                   else ["auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_oodpos", "fpr80", "id_acc"])
        rows = []
        for key, grp, means, stds in over_seeds(rs, metrics):
            id_, ood, det, tune = key["id"], key["ood"], key["detector"], key["tune"]
            cells = [mean_std(means, stds, m, len(grp) > 1) for m in metrics]
            base_id = re.split(r"-\{|\[", id_)[0]
            ref = paper.get((protocol, det, base_id, ood, tune)) or paper.get((protocol, det, base_id, "*", tune)) or {}
            seeds = len({g["seed"] for g in grp})
            rows.append([id_, ood, det + key["variant"], key["backbone"], tune, seeds, *cells, ref.get("auroc", "—"), means.get(metrics[0], 0.0)])
        rows.sort(key=lambda r: (r[0], r[1], -r[-1]))
        ranked, last, rank = [], None, 0
        for row in rows:
            rank = rank + 1 if (row[0], row[1]) == last else 1
            last = (row[0], row[1])
            ranked.append([rank, *row[:-1]])
        headers = ["#", "ID", "OOD", "Detector", "Backbone", "Tune", "Seeds",
                   *(METRIC_LABELS.get(m, m) for m in metrics), "paper AUROC"]
        sections.append(f"### {protocol}\n\n" + tabulate_rows(headers, ranked, fmt if fmt != "json" else "github"))
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
