"""Protocols (SPEC.md "Protocols"): one object per protocol decides a run's data.

- ``anomaly``: ID vs each ``--out`` set.
- ``novelty``: one dataset split by classes (:mod:`.novelty`).
- ``corruption``: corrupted ID test sets as OOD, or ID and OOD both corrupted (:mod:`.corruption`).
- ``full-spectrum``: ID ∪ covariate-shifted ID (csID) vs OOD sets, OpenOOD v1.5's FS setting (:mod:`.full_spectrum`).
- ``misclassification``: paper 004 EXP-1 on the ID test set (:mod:`.misclassification`).

The report tabulates records by their protocol's name (:mod:`oodbench.report.protocol_tables`).
"""

from __future__ import annotations

from oodbench.core.errors import UsageError
from oodbench.pipeline.protocols.anomaly import Anomaly
from oodbench.pipeline.protocols.base import Plan, Protocol, Split, Target
from oodbench.pipeline.protocols.corruption import Corruption, parse_corruption
from oodbench.pipeline.protocols.full_spectrum import FullSpectrum
from oodbench.pipeline.protocols.misclassification import Misclassification
from oodbench.pipeline.protocols.novelty import Novelty, expand_holdout, parse_holdout

PROTOCOLS: dict[str, Protocol] = {
    p.name: p for p in (Anomaly(), Novelty(), Corruption(), FullSpectrum(), Misclassification())
}

__all__ = [
    "PROTOCOLS",
    "Plan",
    "Protocol",
    "Split",
    "Target",
    "expand_holdout",
    "get",
    "parse_corruption",
    "parse_holdout",
]


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UsageError(f"unknown protocol {name!r} ({' | '.join(PROTOCOLS)})")
    return PROTOCOLS[name]
