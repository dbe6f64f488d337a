"""``misclassification`` (paper 004 EXP-1): the ID test set's errors are the positive class; no OOD data."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import UsageError
from .base import LoadOOD, Plan, Protocol, Target

COLUMNS = ("auroc_err", "aupr_succ", "aupr_err", "mean_msp_wrong", "mean_msp_right", "id_acc")


class Misclassification(Protocol):
    name = "misclassification"
    leaderboard_metrics = ("auroc_err", "aupr_succ", "aupr_err", "id_acc")
    scores_ood = False

    def check(self, req) -> None:
        if req.tune != "none" or req.oods:
            raise UsageError("--protocol misclassification uses the ID test set only (no --out, --tune none)")

    def design(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        return Plan(self.name, req.id, train, test, (Target("errors", test, kind="errors"),))

    def table(self, records, fmt, columns, ci=None) -> str:
        from ..tables import cells, tabulate_rows

        rows = [[r.detector, r.backbone, r.id, r.seed, *cells(r.metrics, COLUMNS, [r], ci)] for r in records]
        return tabulate_rows(
            [
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
            ],
            rows,
            fmt,
        )
