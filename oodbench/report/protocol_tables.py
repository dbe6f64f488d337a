"""Each protocol's tables, chosen by the protocol name a record carries (SPEC.md "Protocols").

The protocols (:mod:`oodbench.pipeline.protocols`) decide a run's data; how their records are tabulated is
the report's business, so it lives here and the pipeline never imports a table. A record says which
protocol produced it (``record.protocol``) and, for the corruption sweep, its ``target`` facts.

- ``anomaly``: one row per record (mean ± std when several seeds are present).
- ``novelty``: the same, plus a mean row per detector over the held-out sets.
- ``corruption``: mode (a) pivots AUROC per corruption type × severity; mode (b) rows are plain.
- ``misclassification``: paper 004 EXP-1's columns (AUROC/AUPR of the errors, mean MSP).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from oodbench.records.metrics import METRIC_LABELS
from oodbench.records.record import Record
from oodbench.report.tables import RowCI, cells, is_repeated, mean_rows, plain_table, seed_table, tabulate_rows

#: the columns of each protocol's leaderboard table (every other protocol: :data:`LEADERBOARD_DEFAULT`)
LEADERBOARD_DEFAULT = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr95_oodpos", "fpr80", "id_acc")
LEADERBOARD_METRICS = {
    "misclassification": ("auroc_err", "aupr_succ", "aupr_err", "id_acc"),
    "full-spectrum": (*LEADERBOARD_DEFAULT, "id_acc_shifted"),  # ID ∪ csID is the positive class
}
MISCLASSIFICATION_COLUMNS = ("auroc_err", "aupr_succ", "aupr_err", "mean_msp_wrong", "mean_msp_right", "id_acc")
MISCLASSIFICATION_HEADERS = [
    "Detector",
    "Backbone",
    "ID",
    "Seed",
    "AUROC-Err",
    "AUPR-Succ",
    "AUPR-Err",
    "mean MSP wrong",
    "mean MSP right",
    "ID acc",
]


def leaderboard_metrics(protocol: str) -> tuple[str, ...]:
    return LEADERBOARD_METRICS.get(protocol, LEADERBOARD_DEFAULT)


def is_sweep(record: Record) -> bool:
    """A corruption mode-(a) row: the corrupted ID test set as OOD."""
    return "severity" in record.target


def corruption_table(records, fmt: str = "github", metric: str = "auroc", ci: RowCI = None) -> str:
    """``metric`` per corruption type × severity, with the mean per severity (mode a); ``ci``: intervals beside."""
    by_kind: dict[tuple, dict[int, list]] = {}
    for r in records:
        if is_sweep(r):
            by_kind.setdefault((r.detector, r.target["corruption"]), {})[int(r.target["severity"])] = [r]
    sevs = sorted({s for v in by_kind.values() for s in v})

    def cell(group: list) -> object:
        if not group:
            return None
        return cells({metric: float(np.mean([r.metrics[metric] for r in group]))}, [metric], group, ci)[0]

    rows = [[det, kind, *(cell(v.get(s, [])) for s in sevs)] for (det, kind), v in sorted(by_kind.items())]
    for det in sorted({d for d, _ in by_kind}):
        rows.append(
            [det, "mean", *(cell([r for (d, _), v in by_kind.items() if d == det for r in v.get(s, [])]) for s in sevs)]
        )
    label = METRIC_LABELS.get(metric, metric)
    return tabulate_rows(["Detector", "Corruption", *(f"{label} s{s}" for s in sevs)], rows, fmt)


def run_table(records: list[Record], fmt: str, columns: Sequence[str], ci: RowCI = None) -> str:
    """The run table of the records' protocol: one row per record, or mean ± std when several seeds are
    present; ``ci``: a row's records → its intervals, shown beside each number (``--ci``)."""
    protocol, one_seed = records[0].protocol, not is_repeated(records)
    if protocol == "misclassification":
        rows = [
            [r.detector, r.backbone, r.id, r.seed, *cells(r.metrics, MISCLASSIFICATION_COLUMNS, [r], ci)]
            for r in records
        ]
        return tabulate_rows(MISCLASSIFICATION_HEADERS, rows, fmt)
    if protocol == "corruption" and one_seed and all(map(is_sweep, records)):
        return corruption_table(records, fmt, ci=ci)  # every row is in the pivot; --format json has the rest
    if not one_seed:
        return seed_table(records, fmt, columns, ci)
    if protocol == "novelty":
        return plain_table(records, fmt, columns, extra_rows=mean_rows(records, columns, ci), ci=ci)
    return plain_table(records, fmt, columns, ci=ci)


def leaderboard_sections(
    protocol: str, records: list[Record], fmt: str, ranked: Callable[..., str], ci: RowCI = None
) -> list[str]:
    """Markdown sections for the leaderboard; ``ranked(records, metrics)`` renders a ranked table. The
    corruption sweep gets one pivot per ID set (not 55 rows each), the rest one ranked table."""
    sections, rest = [], records
    if protocol == "corruption":
        sweep = [r for r in records if is_sweep(r)]
        sections = [
            f"### {protocol}: {id_} test set corrupted as OOD (AUROC per type × severity)\n\n"
            + corruption_table([r for r in sweep if r.id == id_], fmt, ci=ci)
            for id_ in sorted({r.id for r in sweep})
        ]
        rest = [r for r in records if not is_sweep(r)]
    if rest:
        sections.append(f"### {protocol}\n\n" + ranked(rest, leaderboard_metrics(protocol)))
    return sections
