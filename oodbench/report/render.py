"""The last stage: a table from records only, in the form the records' protocol chooses."""

from __future__ import annotations

import json
from collections.abc import Sequence

from oodbench.records.record import Record
from oodbench.report.ood_groups import group_sections, record_groups
from oodbench.report.protocol_tables import run_table
from oodbench.report.tables import CI_LEGEND, DEFAULT_COLUMNS, RowCI


def render(records: list[Record], fmt: str = "github", columns: Sequence[str] | None = None, ci: RowCI = None) -> str:
    """The table that fits the records' protocol (and repeats), from records only.
    ``columns``: metric keys to show (default: AUROC, AUPR-In/Out, FPR95, FPR80, ID accuracy); ``ci``: a row's
    records → its bootstrap intervals (:class:`oodbench.records.intervals.Intervals`), shown beside each number."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in records], indent=2, sort_keys=True, default=str, ensure_ascii=False)
    if not records:
        return "(no records)"
    table = run_table(records, fmt, list(columns or DEFAULT_COLUMNS), ci=ci)
    groups = record_groups(records)
    if groups:  # --near/--far: OpenOOD's per-set columns and a mean per group
        table = "\n\n".join([table, *group_sections(records, groups, fmt, ci=ci)])
    if ci is None:
        return table
    from oodbench.records.intervals import MEAN_COVERS

    return f"{table}\n\n{CI_LEGEND}; {MEAN_COVERS}."
