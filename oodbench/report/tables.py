"""Tables from records only: plain rows, means over held-out sets, mean ± std over seeds.

Protocol-specific tables (the corruption pivot, the misclassification columns) are in
:mod:`oodbench.report.protocol_tables`, chosen by the records' protocol name.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Optional

import numpy as np

from oodbench.records.bootstrap import LEVEL, RESAMPLES
from oodbench.records.metrics import METRIC_LABELS
from oodbench.records.record import Record

DEFAULT_COLUMNS = ("auroc", "aupr_in", "aupr_out", "fpr95", "fpr80", "id_acc")
RUN_KEY = ("detector", "backbone", "id", "ood", "tune")
#: a row's records → {metric: [lo, hi]} or None (``oodbench.records.intervals.Intervals``); None: no intervals shown
RowCI = Optional[Callable[[Sequence[Record]], Optional[dict]]]
CI_LEGEND = (
    f"[lo, hi]: {LEVEL} % percentile bootstrap interval over test samples ({RESAMPLES:,} resamples; "
    "the two classes, ID and OOD or correct and wrong predictions, resampled separately)"
)


def tabulate_rows(headers: list[str], rows: list[list[Any]], fmt: str) -> str:
    from tabulate import tabulate

    tablefmt = {"github": "github", "markdown": "pipe", "latex": "latex_booktabs", "html": "html"}.get(fmt)
    if tablefmt is None:
        raise ValueError(f"unknown table format {fmt!r}")
    return tabulate(rows, headers=headers, tablefmt=tablefmt, floatfmt=".1f")


def variant(record: Record) -> str:
    """What else set this run apart (detector parameters, training outliers, contamination, a named tuning
    grid, a precision other than fp32), or ""."""
    cfg = record.config
    parts = [f"{k}={v}" for k, v in sorted((cfg.get("detector_params") or {}).items())]
    if cfg.get("train_out"):
        parts.append(f"train-out {cfg['train_out']['name']}")
    if cfg.get("contaminate"):
        parts.append(f"contaminated {cfg['contaminate']['rate']:g} {cfg['contaminate']['with']}")
    if cfg.get("grid"):
        parts.append(f"grid {cfg['grid']}")
    if cfg.get("precision", "fp32") != "fp32":
        parts.append(cfg["precision"])
    return f" [{'; '.join(parts)}]" if parts else ""


def label(record: Record) -> str:
    """The detector name as tables show it: with its :func:`variant`."""
    return record.detector + variant(record)


def headers_for(columns: Sequence[str], *lead: str) -> list[str]:
    return [*lead, *(METRIC_LABELS.get(c, c) for c in columns)]


def with_interval(text: str, interval: Sequence[float] | None) -> str:
    """``"99.5"`` → ``"99.5 [99.3, 99.7]"`` (unchanged without an interval)."""
    return text if not text or interval is None else f"{text} [{interval[0]:.1f}, {interval[1]:.1f}]"


def cells(values: dict[str, float], columns: Sequence[str], group: Sequence[Record], ci: RowCI) -> list[Any]:
    """Metric cells of a row: plain numbers, or with ``ci`` text with the row's interval beside each."""
    if ci is None:
        return [values.get(c) for c in columns]
    found = ci(group) or {}
    return [with_interval("" if values.get(c) is None else f"{values[c]:.1f}", found.get(c)) for c in columns]


def plain_table(
    records: list[Record], fmt: str, columns: Sequence[str], extra_rows: list | None = None, ci: RowCI = None
) -> str:
    rows = [[label(r), r.backbone, r.id, r.ood, r.tune, *cells(r.metrics, columns, [r], ci)] for r in records]
    return tabulate_rows(
        headers_for(columns, "Detector", "Backbone", "ID", "OOD", "Tune"), rows + (extra_rows or []), fmt
    )


def mean_rows(records: list[Record], columns: Sequence[str] = DEFAULT_COLUMNS, ci: RowCI = None) -> list[list[Any]]:
    """One 'mean' row per (detector, backbone, tune) over several records (e.g. leave-one-class-out)."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        groups.setdefault((label(r), r.backbone, r.tune), []).append(r)
    rows = []
    for (det, bb, tune), rs in groups.items():
        if len(rs) < 2:
            continue
        vals = {c: float(np.mean([r.metrics[c] for r in rs])) for c in columns if all(c in r.metrics for r in rs)}
        rows.append([det, bb, "mean", f"{len(rs)} sets", tune, *cells(vals, columns, rs, ci)])
    return rows


def over_seeds(records: list[Record], metrics: Iterable[str]) -> list[tuple[dict, list[Record], dict, dict]]:
    """Group records by (detector, backbone, ID, OOD, tune) and :func:`variant` — runs that differ in anything
    but the seed are never averaged together: (key, group, mean, std) per metric every record of the group has."""
    groups: dict[tuple, list[Record]] = {}
    for r in records:
        groups.setdefault((*(getattr(r, k) for k in RUN_KEY), variant(r)), []).append(r)
    out = []
    for key, grp in groups.items():
        vals = {m: [g.metrics[m] for g in grp] for m in metrics if all(m in g.metrics for g in grp)}
        out.append(
            (
                dict(zip((*RUN_KEY, "variant"), key)),
                grp,
                {m: float(np.mean(v)) for m, v in vals.items()},
                {m: float(np.std(v)) for m, v in vals.items()},
            )
        )
    return out


def repeats(group: Sequence[Record]) -> int | str:
    """What a row averages over: its number of seeds, or ``"N ckpts"`` when one seed's row holds several
    checkpoints of one recipe (``--model a --model b --model c``, OpenOOD's three checkpoints)."""
    seeds, checkpoints = {r.seed for r in group}, {r.checkpoint for r in group}
    return f"{len(checkpoints)} ckpts" if len(seeds) == 1 and len(checkpoints) > 1 else len(seeds)


def _seeds_cell(group: Sequence[Record]) -> str:
    """The seed table's Seeds cell: the seeds, or ``"N ckpts"`` (:func:`repeats`)."""
    shown = repeats(group)
    return ",".join(str(r.seed) for r in group) if isinstance(shown, int) else shown


def is_repeated(records: list[Record]) -> bool:
    """Whether some row of the records averages several runs (seeds or checkpoints)."""
    return any(len(grp) > 1 for _, grp, _, _ in over_seeds(records, []))


def mean_std(mean: dict, std: dict, m: str, spread: bool, interval: Sequence[float] | None = None) -> str:
    text = "" if m not in mean else f"{mean[m]:.1f}" + (f" ± {std[m]:.1f}" if spread else "")
    return with_interval(text, interval)


def seed_table(
    records: list[Record], fmt: str = "github", columns: Sequence[str] = DEFAULT_COLUMNS, ci: RowCI = None
) -> str:
    """mean ± std over seeds for each (detector, backbone, ID, OOD, tune) (SPEC.md "repeats"); with ``ci``
    the row's interval beside each (:mod:`oodbench.records.intervals`: it does not cover seed variance)."""
    rows = []
    for key, grp, mean, std in over_seeds(records, columns):
        found = (ci(grp) or {}) if ci is not None else {}
        rows.append(
            [
                key["detector"] + key["variant"],
                *(key[k] for k in RUN_KEY[1:]),
                _seeds_cell(grp),
                *(mean_std(mean, std, c, True, found.get(c)) for c in columns),
            ]
        )
    return tabulate_rows(headers_for(columns, "Detector", "Backbone", "ID", "OOD", "Tune", "Seeds"), rows, fmt)
