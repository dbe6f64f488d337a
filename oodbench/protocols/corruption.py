"""``corruption``: (a) the corrupted ID test set as OOD for every type × severity; (b) with
``--corrupt-both TYPE:SEV``, ID and OOD test data corrupted for scoring while tuning stays clean
(paper 003 Fig. 5). Rows of (a) record ``target = {corruption, severity}``; tables pivot on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from .. import corruptions
from ..errors import UnknownNameError, UsageError
from .base import LoadOOD, Plan, Protocol, Target

SEVERITIES = (1, 2, 3, 4, 5)


def parse_corruption(text: str) -> tuple[str, int]:
    kind, _, sev = text.partition(":")
    if kind not in corruptions.CORRUPTIONS:
        raise UnknownNameError("corruption", kind, corruptions.names())
    if sev not in {"1", "2", "3", "4", "5"}:
        raise UsageError(f"--corrupt-both takes TYPE:SEVERITY with severity 1..5, got {text!r}")
    return kind, int(sev)


def is_sweep(record) -> bool:
    """A mode-(a) row: the corrupted ID test set as OOD."""
    return "severity" in record.target


def corruption_table(records, fmt: str = "github", metric: str = "auroc", ci=None) -> str:
    """``metric`` per corruption type × severity, with the mean per severity (mode a); ``ci``: intervals beside."""
    from ..metrics import METRIC_LABELS
    from ..tables import cells as metric_cells
    from ..tables import tabulate_rows

    cells: dict[tuple, dict[int, list]] = {}
    for r in records:
        if is_sweep(r):
            cells.setdefault((r.detector, r.target["corruption"]), {})[int(r.target["severity"])] = [r]
    sevs = sorted({s for v in cells.values() for s in v})

    def cell(group: list) -> object:
        if not group:
            return None
        return metric_cells({metric: float(np.mean([r.metrics[metric] for r in group]))}, [metric], group, ci)[0]

    rows = [[det, kind, *(cell(v.get(s, [])) for s in sevs)] for (det, kind), v in sorted(cells.items())]
    for det in sorted({d for d, _ in cells}):
        rows.append(
            [det, "mean", *(cell([r for (d, _), v in cells.items() if d == det for r in v.get(s, [])]) for s in sevs)]
        )
    label = METRIC_LABELS.get(metric, metric)
    return tabulate_rows(["Detector", "Corruption", *(f"{label} s{s}" for s in sevs)], rows, fmt)


class Corruption(Protocol):
    name = "corruption"

    def check(self, req) -> None:
        for kind in req.corruptions or []:
            if kind not in corruptions.CORRUPTIONS:
                raise UnknownNameError("corruption", kind, corruptions.names())
        bad = [s for s in req.severities or [] if s not in SEVERITIES]
        if bad:
            raise UsageError(f"--severity takes 1..5, got {bad[0]}")
        if req.corrupt_both:
            parse_corruption(req.corrupt_both)
            if not req.oods:
                raise UsageError("--corrupt-both needs --out sets to score against the corrupted ID test set")

    def design(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        if req.corrupt_both:
            return self._both(req, train, test, load_ood, oods)
        kinds, sevs = list(req.corruptions or corruptions.names()), list(req.severities or SEVERITIES)
        sweep = tuple(
            Target(
                f"{k}@{s}",
                test,
                corruptions.corrupt(test, k, s, req.seed),
                paired=True,
                facts={"corruption": k, "severity": s},
            )
            for k in kinds
            for s in sevs
        )
        return Plan(
            self.name,
            req.id,
            train,
            test,
            sweep + self.ood_targets(req, oods, train.shape, load_ood),
            config={"corruptions": kinds, "severities": sevs},
        )

    def _both(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        kind, sev = parse_corruption(req.corrupt_both)
        tag = f"[{kind}:{sev}]"  # names say what was scored: fashionmnist[impulse_noise:5] vs mnist[impulse_noise:5]
        targets = tuple(
            dataclasses.replace(t, name=f"{t.name}{tag}", scored=corruptions.corrupt(t.clean, kind, sev, req.seed))
            for t in self.ood_targets(req, oods, train.shape, load_ood)
        )
        return Plan(
            self.name,
            f"{req.id}{tag}",
            train,
            test,
            targets,
            id_scored=corruptions.corrupt(test, kind, sev, req.seed),
            config={"corrupt_both": f"{kind}:{sev}", "tuning": "clean data"},
        )

    def table(self, records, fmt, columns, ci=None) -> str:
        if all(is_sweep(r) for r in records) and len({r.seed for r in records}) == 1:
            return corruption_table(records, fmt, ci=ci)  # every row is in the pivot; --format json has the rest
        return super().table(records, fmt, columns, ci)

    def leaderboard(self, records, fmt, ranked, ci=None) -> list[str]:
        sweep = [r for r in records if is_sweep(r)]  # one pivot per ID set, not 55 rows each
        sections = [
            f"### {self.name}: {id_} test set corrupted as OOD (AUROC per type × severity)\n\n"
            + corruption_table([r for r in sweep if r.id == id_], fmt, ci=ci)
            for id_ in sorted({r.id for r in sweep})
        ]
        rest = [r for r in records if not is_sweep(r)]
        return sections + (super().leaderboard(rest, fmt, ranked, ci) if rest else [])
