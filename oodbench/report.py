"""The last stage: a table from records only, in the form the records' protocol chooses."""

from __future__ import annotations

import json
from collections.abc import Sequence

from . import protocols
from .record import Record
from .tables import CI_LEGEND, DEFAULT_COLUMNS, RowCI


def render(records: list[Record], fmt: str = "github", columns: Sequence[str] | None = None, ci: RowCI = None) -> str:
    """The table that fits the records' protocol (and repeats), from records only.
    ``columns``: metric keys to show (default: AUROC, AUPR-In/Out, FPR95, FPR80, ID accuracy); ``ci``: a row's
    records → its bootstrap intervals (:class:`oodbench.intervals.Intervals`), shown beside each number."""
    if fmt == "json":
        return json.dumps([r.to_dict() for r in records], indent=2, sort_keys=True, default=str, ensure_ascii=False)
    if not records:
        return "(no records)"
    table = protocols.get(records[0].protocol).table(records, fmt, list(columns or DEFAULT_COLUMNS), ci=ci)
    if ci is None:
        return table
    from .intervals import MEAN_COVERS

    return f"{table}\n\n{CI_LEGEND}; {MEAN_COVERS}."
