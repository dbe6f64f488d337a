"""``misclassification`` (paper 004 EXP-1): the ID test set's errors are the positive class; no OOD data."""

from __future__ import annotations

from collections.abc import Sequence

from oodbench.core.errors import UsageError
from oodbench.pipeline.protocols.base import LoadOOD, Plan, Protocol, Target


class Misclassification(Protocol):
    name = "misclassification"
    scores_ood = False

    def check(self, req) -> None:
        if req.tune != "none" or req.oods:
            raise UsageError("--protocol misclassification uses the ID test set only (no --out, --tune none)")

    def design(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        return Plan(self.name, req.id, train, test, (Target("errors", test, kind="errors"),))
