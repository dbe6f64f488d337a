"""``anomaly`` (the default): the ID test set against each ``--out`` set."""

from __future__ import annotations

from collections.abc import Sequence

from oodbench.pipeline.protocols.base import LoadOOD, Plan, Protocol, no_outs


class Anomaly(Protocol):
    name = "anomaly"

    def check(self, req) -> None:
        no_outs(req, "protocol anomaly")

    def design(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        return Plan(self.name, req.id, train, test, self.ood_targets(req, oods, train.shape, load_ood))
