"""``corruption``: (a) the corrupted ID test set as OOD for every type × severity; (b) with
``--corrupt-both TYPE:SEV``, ID and OOD test data corrupted for scoring while tuning stays clean
(paper 003 Fig. 5). Rows of (a) record ``target = {corruption, severity}``; tables pivot on it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from oodbench.core.errors import UnknownNameError, UsageError
from oodbench.data import corruptions
from oodbench.pipeline.protocols.base import LoadOOD, Plan, Protocol, Target

SEVERITIES = (1, 2, 3, 4, 5)


def parse_corruption(text: str) -> tuple[str, int]:
    kind, _, sev = text.partition(":")
    if kind not in corruptions.CORRUPTIONS:
        raise UnknownNameError("corruption", kind, corruptions.names())
    if sev not in {"1", "2", "3", "4", "5"}:
        raise UsageError(f"--corrupt-both takes TYPE:SEVERITY with severity 1..5, got {text!r}")
    return kind, int(sev)


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
