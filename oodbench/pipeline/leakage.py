"""Tuning never sees an evaluated sample (issue 11), checked by per-sample provenance, whatever the names.

For every row of a plan, the tuning samples (the ID tuning split, plus the row's OOD tuning split under
``--tune oracle`` or the heldout source under ``--tune heldout``) must share no (source, index) with the
samples the row evaluates (the ID evaluation split and the row's OOD evaluation split). A heldout source is
drawn only from samples that no row evaluates and that are not ID tuning samples; when too few remain, the
run is refused in one line. Exact duplicates by content (a dataset holding the same image twice, e.g.
``constant``'s 256 values) are counted and recorded, not refused.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import torch

from oodbench.core.errors import UsageError
from oodbench.data.imageset import ImageSet
from oodbench.data.provenance import Provenance, content_keys, shared, union
from oodbench.pipeline.protocols import Plan, Split, Target


def _prov(data: ImageSet) -> Provenance:
    if data.provenance is None:
        raise ValueError(f"{data.name}: no per-sample provenance (load datasets through planning.load_split)")
    return data.provenance


def evaluated_samples(plan: Plan) -> list[tuple[str, ImageSet]]:
    """(name, samples) of everything the plan evaluates: the ID evaluation split and each row's OOD split."""
    assert plan.id_split is not None
    out = [(f"{plan.id_name} (ID test)", plan.id_test.subset(plan.id_split.eval))]
    for t, split in zip(plan.targets, plan.target_splits):
        if t.kind == "ood":
            out.append((t.name, t.evaluated.subset(split.eval)))
    return out


def disjoint_heldout(
    first: ImageSet, load_all: Callable[[], ImageSet], plan: Plan, n_tune: int, seed: int
) -> tuple[ImageSet, int]:
    """The heldout tuning source with every sample an evaluated or ID tuning sample also derives from removed:
    ``first`` as loaded when it shares nothing, else a seeded draw of ``n_tune`` from the rest of ``load_all()``.
    Returns (source, number of samples excluded)."""
    assert plan.id_split is not None
    banned = union([_prov(s) for _, s in evaluated_samples(plan)] + [_prov(plan.id_test.subset(plan.id_split.tune))])
    if not shared(_prov(first), banned).any():
        return first, 0
    full = load_all()
    clash = shared(_prov(full), banned)
    rest = torch.nonzero(~clash).flatten()
    if len(rest) < min(n_tune, len(first)):
        raise UsageError(
            f"--tune-out {first.name!r}: only {len(rest)} of its {len(full)} samples are not evaluated in this run "
            f"(or ID tuning samples), fewer than --n-tune {n_tune}; pick a source not derived from an evaluated set "
            "(e.g. perturbed-id, uniform) or evaluate fewer samples (--test-limit)"
        )
    kept = full.subset(rest, f"{int(clash.sum())} samples shared with evaluated/ID-tuning data removed")
    return kept.head(n_tune, seed), int(clash.sum())


def _tuning_samples(plan: Plan, target: Target, split: Split, tune: str) -> list[ImageSet]:
    assert plan.id_split is not None
    parts = [plan.id_test.subset(plan.id_split.tune)]
    if tune == "oracle" and target.kind == "ood":
        parts.append(target.tuning_source.subset(split.tune))
    elif tune == "heldout" and plan.tune_out is not None:
        parts.append(plan.tune_out)
    return parts


def row_check(plan: Plan, target: Target, split: Split, tune: str, excluded: int) -> dict[str, Any]:
    """The disjointness check of one row (refuses on any shared provenance), recorded in its tuning facts."""
    assert plan.id_split is not None
    tuning = _tuning_samples(plan, target, split, tune)
    evaluated = [plan.id_test.subset(plan.id_split.eval)]
    if target.kind == "ood":
        evaluated.append(target.evaluated.subset(split.eval))
    tprov, eprov = union([_prov(s) for s in tuning]), union([_prov(s) for s in evaluated])
    clash = shared(tprov, eprov)
    if clash.any():
        raise UsageError(
            f"row {target.name!r}: {int(clash.sum())} tuning samples are also evaluated "
            f"({tprov.subset(torch.nonzero(clash).flatten()).describe()}); tuning and evaluation must be disjoint"
        )
    same = torch.isin(
        torch.cat([content_keys(s.images) for s in tuning]), torch.cat([content_keys(s.images) for s in evaluated])
    )
    return {
        "by": "provenance (source split, index)",
        "shared_samples": 0,
        "tuning_samples": len(tprov),
        "evaluated_samples": len(eprov),
        "tuning_sources": tprov.describe(),
        "excluded_from_tune_out": excluded,
        "content_duplicates": int(same.sum()),
    }


def checked(plan: Plan, tune: str, excluded: int = 0) -> Plan:
    """``plan`` with each row's disjointness check attached (``Target.tuning_check``); none for ``--tune none``."""
    if tune == "none":
        return plan
    targets = tuple(
        dataclasses.replace(t, tuning_check=row_check(plan, t, split, tune, excluded))
        for t, split in zip(plan.targets, plan.target_splits)
    )
    return dataclasses.replace(plan, targets=targets)
