"""OpenOOD's summary of a benchmark: the OOD sets in groups (near-OOD, far-OOD) and a mean per group.

A run's OOD sets carry their group in each record (``target["group"]``, from ``--near``/``--far`` or a suite's
``oods: {near: [...], far: [...]}``); a suite may also declare ``groups:`` for records written without one. One
row per (ID, detector and its variant, backbone, tune): each set's metric (mean over seeds), then each group's
mean over its sets — with, when intervals are asked for, the group's 95 % interval: the percentile interval of
the mean of the per-set bootstrap replicates (each set resampled as its own row is,
:class:`oodbench.records.intervals.Intervals`). Records of different protocols are never one row: a full-spectrum
row (ID ∪ csID against each set) and an anomaly row (clean ID) of the same detector get a table each
(:func:`group_sections`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from oodbench.records.metrics import METRIC_LABELS
from oodbench.records.record import Record
from oodbench.report.tables import RowCI, label, tabulate_rows, with_interval

#: the order OpenOOD prints its groups in; other names follow in the order first seen
GROUP_ORDER = ("near", "near-OOD", "far", "far-OOD")


def record_groups(records: Sequence[Record]) -> dict[str, list[str]]:
    """{group: its OOD sets} from the records' ``target["group"]`` (empty: no record names a group)."""
    found: dict[str, list[str]] = {}
    for r in records:
        g = (r.target or {}).get("group")
        if g and r.ood not in found.setdefault(g, []):
            found[g].append(r.ood)
    ordered = sorted(found, key=lambda g: GROUP_ORDER.index(g) if g in GROUP_ORDER else len(GROUP_ORDER))
    return {g: sorted(found[g]) for g in ordered}


def group_means(
    records: Sequence[Record], groups: Mapping[str, Sequence[str]], metric: str = "auroc"
) -> dict[tuple, dict[str, tuple[float, float]]]:
    """{(ID, detector, backbone, tune): {set or group: (mean, std)}} over the row's runs (seeds, or checkpoints of
    one recipe): a set's ``metric``, and a group's mean over its sets within each run; absent when a set of the
    group has no record in some run. std is NumPy's (ddof 0) over runs: 0 for one run."""
    by_row: dict[tuple, dict[tuple, dict[str, float]]] = {}
    for r in records:
        if metric in r.metrics:
            row = _row_key(r)
            by_row.setdefault(row, {}).setdefault((r.seed, r.checkpoint), {})[r.ood] = r.metrics[metric]
    out: dict[tuple, dict[str, tuple[float, float]]] = {}
    for row, runs in by_row.items():
        columns: dict[str, list[float]] = {}
        for per_set in runs.values():
            for ood, value in per_set.items():
                columns.setdefault(ood, []).append(value)
            for g, members in groups.items():
                if members and all(m in per_set for m in members):
                    columns.setdefault(g, []).append(float(np.mean([per_set[m] for m in members])))
        out[row] = {k: (float(np.mean(v)), float(np.std(v))) for k, v in columns.items() if len(v) == len(runs)}
    return out


def group_table(
    records: Sequence[Record],
    groups: Mapping[str, Sequence[str]],
    fmt: str = "github",
    metric: str = "auroc",
    ci: RowCI = None,
) -> str:
    """Per-set columns and a mean per group (see the module docstring)."""
    sets = [s for members in groups.values() for s in members]
    table = group_means(records, groups, metric)
    rows = []
    for row, values in sorted(table.items()):
        spread = any(std > 0 for _, std in values.values())
        cells = [_cell(values.get(s), spread) for s in sets]
        for g, members in groups.items():
            text = _cell(values.get(g), spread)
            if ci is not None and text != "—":
                mine = [r for r in records if _row_key(r) == row and r.ood in members]
                text = with_interval(text, (ci(mine) or {}).get(metric))
            cells.append(text)
        rows.append([*row, *cells])
    name = METRIC_LABELS.get(metric, metric)
    headers = ["ID", "Detector", "Backbone", "Tune", *sets, *(f"{g} mean {name}" for g in groups)]
    return tabulate_rows(headers, rows, fmt)


def by_protocol(records: Sequence[Record]) -> dict[str, list[Record]]:
    """The records of each protocol, protocols in sorted order."""
    out: dict[str, list[Record]] = {}
    for r in sorted(records, key=lambda r: r.protocol):
        out.setdefault(r.protocol, []).append(r)
    return out


def group_title(protocol: str, several: bool) -> str:
    """The heading of a group table; the protocol is named only when the records hold several."""
    return f"OOD groups, {protocol}" if several else "OOD groups"


def group_sections(
    records: Sequence[Record], groups: Mapping[str, Sequence[str]], fmt: str = "github", ci: RowCI = None
) -> list[str]:
    """One :func:`group_table` per protocol, each under its bold heading."""
    parts = by_protocol(records)
    return [
        f"**{group_title(protocol, len(parts) > 1)}** (AUROC per set, mean per group)\n\n"
        + group_table(rs, groups, fmt, ci=ci)
        for protocol, rs in parts.items()
    ]


def _row_key(r: Record) -> tuple:
    """A group table's row: (ID, detector and its variant, backbone, tune)."""
    return (r.id, label(r), r.backbone, r.tune)


def _cell(value: tuple[float, float] | None, spread: bool) -> str:
    if value is None:
        return "—"
    return f"{value[0]:.1f}" + (f" ± {value[1]:.1f}" if spread else "")
