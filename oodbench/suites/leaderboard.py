"""The leaderboard of a suite: its records ranked by AUROC within each (protocol, ID, OOD), each number with its
95 % bootstrap interval and the paper's number beside it; rows a paired bootstrap cannot tell apart share a rank
(:mod:`oodbench.records.intervals`, whose ``comparisons.json`` keeps the comparisons for when the per-sample
scores are gone). Sections are chosen per protocol (:mod:`oodbench.report.protocol_tables`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from oodbench.core.errors import UnknownNameError, UsageError
from oodbench.records.intervals import MEAN_COVERS, RANK_LEGEND, Intervals, rank_labels
from oodbench.records.metrics import METRIC_LABELS
from oodbench.records.record import Record
from oodbench.records.store import record_files, results_dir
from oodbench.report.ood_groups import group_sections, record_groups
from oodbench.report.protocol_tables import leaderboard_sections
from oodbench.report.tables import CI_LEGEND, mean_std, over_seeds, repeats, tabulate_rows
from oodbench.suites.bench import load_suites, warn


def paper_numbers(suite: dict[str, Any]) -> dict[tuple, dict[str, float]]:
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


def published(paper: dict, protocol: str, detector: str, id_: str, ood: str, tune: str) -> dict[str, float]:
    """The published metrics beside a row (``{}`` where its entry declares none)."""
    base_id = re.split(r"-\{|\[", id_)[0]
    return (
        paper.get((protocol, detector, base_id, ood, tune)) or paper.get((protocol, detector, base_id, "*", tune)) or {}
    )


def ranked_table(
    records: list[Record], metrics: tuple[str, ...], paper: dict, fmt: str, ci: Intervals | None = None
) -> str:
    """Rows ranked by the first metric within each (ID, OOD), mean ± std over seeds, paper AUROC beside; with
    ``ci`` each number's interval beside it and ties from the paired bootstrap (:func:`rank_labels`)."""
    rows = []
    for key, grp, means, stds in over_seeds(records, metrics):
        id_, ood, det, tune, protocol = key["id"], key["ood"], key["detector"], key["tune"], grp[0].protocol
        ref = published(paper, protocol, det, id_, ood, tune)
        found = (ci(grp) or {}) if ci is not None else {}
        row = [
            id_,
            ood,
            det + key["variant"],
            key["backbone"],
            tune,
            repeats(grp),
            *(mean_std(means, stds, m, len(grp) > 1, found.get(m)) for m in metrics),
            ref.get("auroc", "—"),
        ]
        rows.append((row, grp, means.get(metrics[0], 0.0)))
    rows.sort(key=lambda r: (r[0][0], r[0][1], -r[2]))
    ranked = []
    for section in dict.fromkeys((row[0], row[1]) for row, _, _ in rows):
        part = [(row, grp) for row, grp, _ in rows if (row[0], row[1]) == section]
        labels = rank_labels([grp for _, grp in part], metrics[0], ci)
        ranked += [[label, *row] for label, (row, _) in zip(labels, part)]
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


def suite_records(name: str, path: str | Path, results: str | None) -> tuple[dict, list[tuple[Path, Record]]]:
    """The suite's definition and its (record file, record) pairs; one-line errors when either is missing."""
    suites = load_suites(path)
    if name not in suites:
        raise UnknownNameError("suite", name, suites)
    root = results_dir(results) / name
    found = record_files(root) if root.is_dir() else []
    if not found:
        raise UsageError(f"no records for suite {name!r} under {root}; run `oodbench bench {name}` first")
    return suites[name] or {}, found


def leaderboard(
    name: str, path: str | Path = "benchmarks.yaml", results: str | None = None, fmt: str = "github"
) -> str:
    """Ranked tables (sections chosen by each protocol) from the suite's records, paper numbers beside rows."""
    suite, root = load_suites(path).get(name, {}), results_dir(results) / name
    found = record_files(root)
    if not found:
        raise UsageError(f"no records for suite {name!r} under {root}; run `oodbench bench {name}` first")
    records, ci = [r for _, r in found], Intervals(root, {r.record_id: p for p, r in found})
    paper, fmt = paper_numbers(suite), fmt if fmt != "json" else "github"
    sections: list[str] = []
    for protocol in sorted({r.protocol for r in records}):
        rs = [r for r in records if r.protocol == protocol]
        sections += leaderboard_sections(protocol, rs, fmt, lambda recs, m: ranked_table(recs, m, paper, fmt, ci), ci)
    groups = record_groups(records) or suite.get("groups")  # OpenOOD's near-/far-OOD means (oods: {near: [...]})
    if groups:
        sections += group_sections(records, groups, fmt, ci=ci)
    try:
        ci.save()
    except OSError as exc:  # a read-only results folder still renders (from the stored comparisons)
        warn(f"could not keep the comparisons in {root}: {exc}")
    return "\n\n".join([*sections, f"Intervals {CI_LEGEND}; {MEAN_COVERS}. Ranks: {RANK_LEGEND}."])


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
