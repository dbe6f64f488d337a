"""Regenerated records held against the committed ones (issue 29): a change that moves a published number fails.

``.ci/run`` regenerates the ``smoke`` suite and runs ``oodbench compare smoke --against leaderboards/smoke``; the
reproduction pins (``pytest -m reproduction``, ``tests/test_reproductions.py``) do the same for ``cpu`` and
``trained``. Records are matched by their identity (:attr:`~oodbench.records.record.Record.identity`: detector,
backbone, data, protocol, tuning, seed, configuration) *without* the checkpoint hash: a retrain on other hardware
gives other weights (training is not bit-reproducible across CPUs), and the numbers, not the bits, are what is
pinned; weights evaluated as they are (``--model``, hub weights) keep their hash (the three checkpoints of
``cifar10-cpu`` differ only by it). A committed record that was not regenerated, a new one that was not
committed, or a metric that moved by more than ``tolerance`` (percentage points) is one line each. The tolerance
is 0.1 on this CPU: regenerating ``smoke`` here moved no metric by more than 0.0005 (FSSD's AUPR-Out); a change of
method or default moves them by whole points.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

from oodbench.records.record import Record, evaluated_as_is, identity_hash
from oodbench.records.store import record_files

TOLERANCE = 0.1


def _label(r: Record) -> str:
    model = f", model {Path(r.model['path']).name}" if evaluated_as_is(r.model) and r.model.get("path") else ""
    return f"{r.detector} {r.id}→{r.ood} [{r.protocol}, tune {r.tune}, seed {r.seed}{model}]"


def _moved(old: float, new: float | None, tolerance: float) -> bool:
    if new is None:
        return True
    if math.isnan(old) or math.isnan(new):
        return math.isnan(old) != math.isnan(new)
    return abs(new - old) > tolerance


def _pinned_identity(record: Record) -> dict:
    """The record's identity less the checkpoint hash and oodbench's version (a pin outlives both); records from
    before the identity named device and precision were CPU fp32 ones. Weights evaluated as they are (a ``--model``
    file, hub weights) keep their hash: they are not retrained anywhere, and it is what tells the checkpoints of a
    several-model suite (``models: [...]``, one backbone name) apart."""
    identity = {k: v for k, v in record.identity.items() if k != "checkpoint" or evaluated_as_is(record.model)}
    config = {"device": "cpu", "precision": "fp32", **identity["config"]}
    config.pop("oodbench", None)
    return {**identity, "config": config}


def pin_key(record: Record) -> str:
    """What a pinned number is matched by: :func:`_pinned_identity`, hashed."""
    return identity_hash(_pinned_identity(record))


def run_key(record: Record) -> str:
    """What the records of one run share (one request of a suite entry, one seed, one held-out split): the pin key's
    identity less the detector, the OOD set and the detector's parameters."""
    identity = {k: v for k, v in _pinned_identity(record).items() if k not in ("detector", "ood")}
    config = {k: v for k, v in identity["config"].items() if k != "detector_params"}
    return identity_hash({**identity, "config": config})


def matched(committed: Path, fresh: Path) -> tuple[dict[str, Record], dict[str, Record]]:
    """The committed and the regenerated records, each by :func:`pin_key`."""
    return (
        {pin_key(r): r for _, r in record_files(committed)},
        {pin_key(r): r for _, r in record_files(fresh)},
    )


def compare(
    committed: Path,
    fresh: Path,
    tolerance: float = TOLERANCE,
    metrics: Iterable[str] | None = None,
    retrained_tolerance: float | None = None,
    uncommitted: bool = True,
) -> list[str]:
    """One line per difference between the records under ``committed`` and those under ``fresh`` (every metric,
    or only ``metrics``). A pair whose weights differ (another checkpoint hash: a retrain on another host) is held
    to ``retrained_tolerance`` where given, and its lines say so. ``uncommitted=False``: regenerated records with
    no committed twin are not lines (a suite committed in part; an identity change still is, from the other
    side)."""
    old, new = matched(committed, fresh)
    return compare_records(old, new, tolerance, metrics, retrained_tolerance, uncommitted)


def compare_records(
    old: dict[str, Record],
    new: dict[str, Record],
    tolerance: float = TOLERANCE,
    metrics: Iterable[str] | None = None,
    retrained_tolerance: float | None = None,
    uncommitted: bool = True,
) -> list[str]:
    """:func:`compare` on records already matched by :func:`pin_key` (a part of a suite: one entry's records)."""
    only = set(metrics) if metrics is not None else None
    problems = [f"{_label(old[i])}: committed but not regenerated" for i in sorted(old.keys() - new.keys())]
    problems += [
        f"{_label(new[i])}: regenerated but not committed (its identity changed?)"
        for i in sorted(new.keys() - old.keys())
        if uncommitted
    ]
    for i in sorted(old.keys() & new.keys()):
        retrained = retrained_tolerance is not None and old[i].checkpoint != new[i].checkpoint
        limit = retrained_tolerance if retrained else tolerance
        tag = f" [other weights: {old[i].checkpoint[:8]} → {new[i].checkpoint[:8]}]" if retrained else ""
        for metric, value in sorted(old[i].metrics.items()):
            if only is not None and metric not in only:
                continue
            now = new[i].metrics.get(metric)
            if isinstance(value, (int, float)) and _moved(value, now, limit):
                shown = "missing" if now is None else f"{now:.2f}"
                problems.append(f"{_label(old[i])}: {metric} {value:.2f} committed, {shown} now (±{limit}){tag}")
    return problems
