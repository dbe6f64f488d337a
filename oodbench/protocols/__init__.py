"""Protocols (SPEC.md "Protocols"): one object per protocol decides a run's data and its tables.

- ``anomaly``: ID vs each ``--out`` set.
- ``novelty``: one dataset split by classes (:mod:`.novelty`).
- ``corruption``: corrupted ID test sets as OOD, or ID and OOD both corrupted (:mod:`.corruption`).
- ``misclassification``: paper 004 EXP-1 on the ID test set (:mod:`.misclassification`).

Results, suites and plots ask a record's protocol (:func:`get`) — they never parse row names.
"""

from __future__ import annotations

from ..errors import UsageError
from .anomaly import Anomaly
from .base import Plan, Protocol, Split, Target
from .corruption import Corruption, corruption_table, is_sweep, parse_corruption
from .misclassification import Misclassification
from .novelty import Novelty, expand_holdout, parse_holdout

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (Anomaly(), Novelty(), Corruption(), Misclassification())}

__all__ = [
    "PROTOCOLS",
    "Plan",
    "Protocol",
    "Split",
    "Target",
    "corruption_table",
    "expand_holdout",
    "get",
    "is_sweep",
    "parse_corruption",
    "parse_holdout",
]


def get(name: str) -> Protocol:
    if name not in PROTOCOLS:
        raise UsageError(f"unknown protocol {name!r} ({' | '.join(PROTOCOLS)})")
    return PROTOCOLS[name]
