"""Protocols (SPEC.md "Protocols"): which data a run fits on, tunes on and evaluates.

:func:`prepare` turns a request into a :class:`Plan` — ID train/test sets (class-restricted for
novelty) and the OOD sets to evaluate, each with its clean version (for tuning) and the version
to score (corrupted for corruption mode b). The runner does the rest the same way for every protocol.

- ``anomaly``: ID vs each ``--out`` set.
- ``novelty``: one dataset split by classes (``--holdout 0,1``, or ``in:2,6,7/seen:0,3,4,8/unseen:5,9,1``;
  ``each`` is expanded by :func:`expand` into one run per class). The backbone trains on the in-classes.
- ``corruption``: (a) corrupted ID test sets as OOD, per type × severity; (b) with ``--corrupt-both
  TYPE:SEV``, ID and OOD test data corrupted for scoring (tuning stays clean, as paper 003 Fig. 5).
- ``misclassification``: paper 004 EXP-1 on the ID test set (no OOD data).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import torch

from . import corruptions
from .data import ImageSet, LoadContext
from .errors import UsageError

PROTOCOLS = ("anomaly", "novelty", "corruption", "misclassification")


@dataclass
class OODSet:
    name: str
    clean: ImageSet  # tuning draws from this
    scored: ImageSet | None = None  # what is evaluated (None: the clean set)
    paired: bool = False  # derived sample-by-sample from ID test: share ID's tuning split


@dataclass
class Plan:
    id_name: str
    id_train: ImageSet
    id_test: ImageSet
    id_scored: ImageSet | None = None
    oods: list[OODSet] = field(default_factory=list)
    classes: tuple[int, ...] | None = None
    config: dict = field(default_factory=dict)
    train_out: ImageSet | None = None  # seen outliers for detectors that train with them (ODM, OE)


def parse_holdout(text: str, num_classes: int) -> dict[str, list[int]]:
    """``"0,1"`` → {in: rest, unseen: [0, 1]}; ``"in:2,6,7/seen:0,3,4,8/unseen:5,9,1"`` → as written."""

    def ints(part: str) -> list[int]:
        try:
            out = [int(v) for v in part.split(",") if v.strip()]
        except ValueError:
            raise UsageError(f"--holdout: {part!r} is not a comma-separated list of class indices") from None
        bad = [v for v in out if not 0 <= v < num_classes]
        if bad:
            raise UsageError(f"--holdout: classes {bad} outside 0..{num_classes - 1}")
        return out

    if ":" in text:
        parts = dict(p.split(":", 1) for p in text.split("/"))
        unknown = set(parts) - {"in", "seen", "unseen"}
        if unknown or "unseen" not in parts:
            raise UsageError("--holdout partitions look like in:2,6,7/seen:0,3,4,8/unseen:5,9,1")
        groups = {k: ints(v) for k, v in parts.items()}
        groups.setdefault("in", [c for c in range(num_classes) if c not in groups["unseen"] + groups.get("seen", [])])
    else:
        unseen = ints(text)
        groups = {"in": [c for c in range(num_classes) if c not in unseen], "unseen": unseen}
    flat = [c for g in groups.values() for c in g]
    if len(flat) != len(set(flat)):
        raise UsageError("--holdout: a class appears in two groups")
    if not groups["in"] or not groups["unseen"]:
        raise UsageError("--holdout needs at least one in-class and one held-out class")
    return groups


def _braces(classes: list[int]) -> str:
    return "{" + ",".join(map(str, classes)) + "}"


def expand_holdout(holdout: str | None, num_classes: int) -> list[str | None]:
    """``each`` → one holdout per class (leave-one-class-out); anything else stays one run."""
    if holdout == "each":
        return [str(c) for c in range(num_classes)]
    return [holdout]


def parse_corruption(text: str) -> tuple[str, int]:
    kind, _, sev = text.partition(":")
    if kind not in corruptions.CORRUPTIONS:
        from .errors import UnknownNameError

        raise UnknownNameError("corruption", kind, corruptions.names())
    if sev not in {"1", "2", "3", "4", "5"}:
        raise UsageError(f"--corrupt-both takes TYPE:SEVERITY with severity 1..5, got {text!r}")
    return kind, int(sev)


def prepare(req, id_ds, ood_dss, ctx: LoadContext, load_ood) -> Plan:
    """Build the :class:`Plan` for ``req.protocol`` (``load_ood(ds, shape)`` loads and converts an OOD set)."""
    train = id_ds.load("train", ctx).head(req.train_limit, req.seed)
    test = id_ds.load("test", ctx).head(req.test_limit, req.seed)
    shape = train.shape
    plan = Plan(req.id, train, test)
    if req.protocol == "novelty":
        if not req.holdout:
            raise UsageError("--protocol novelty needs --holdout (each | 0,1 | in:…/seen:…/unseen:…)")
        groups = parse_holdout(req.holdout, train.num_classes)
        plan.classes = tuple(groups["in"])
        plan.id_train, plan.id_test = train.with_classes(groups["in"]), test.with_classes(groups["in"])
        unseen = test.with_classes(groups["unseen"])
        plan.id_name = f"{req.id}-{_braces(groups['unseen'] + groups.get('seen', []))}"
        plan.oods.append(OODSet(f"{req.id}{_braces(groups['unseen'])}", unseen))
        plan.config = {"holdout": groups}
        if groups.get("seen"):  # paper 001: seen out-of-distribution classes, training split only
            seen = train.with_classes(groups["seen"])
            plan.train_out = dataclasses.replace(seen, name=f"{req.id}{_braces(groups['seen'])}",
                                                 labels=torch.full_like(seen.labels, -1), classes=())
    if req.protocol == "corruption" and not req.corrupt_both:
        kinds = req.corruptions or corruptions.names()
        for kind in kinds:
            for sev in req.severities or [1, 2, 3, 4, 5]:
                plan.oods.append(OODSet(f"{kind}@{sev}", plan.id_test, corruptions.corrupt(plan.id_test, kind, sev, req.seed), paired=True))
        plan.config = {"corruptions": list(kinds), "severities": list(req.severities or [1, 2, 3, 4, 5])}
    if req.protocol != "misclassification":
        for name, ds in zip(req.oods, ood_dss):
            plan.oods.append(OODSet(name, load_ood(ds, shape)))
    if req.protocol == "corruption" and req.corrupt_both:
        kind, sev = parse_corruption(req.corrupt_both)
        tag = f"[{kind}:{sev}]"  # names say what was scored: fashionmnist[impulse_noise:5] vs mnist[impulse_noise:5]
        plan.id_name = f"{plan.id_name}{tag}"
        plan.id_scored = corruptions.corrupt(plan.id_test, kind, sev, req.seed)
        plan.oods = [dataclasses.replace(o, name=f"{o.name}{tag}", scored=corruptions.corrupt(o.clean, kind, sev, req.seed))
                     for o in plan.oods]
        plan.config = {"corrupt_both": f"{kind}:{sev}", "tuning": "clean data"}
        if not plan.oods:
            raise UsageError("--corrupt-both needs --out sets to score against the corrupted ID test set")
    if req.protocol in ("anomaly", "novelty") and not plan.oods:
        raise UsageError("name at least one OOD set with --out")
    return plan


def outlier_split(ds, ctx: LoadContext, shape, test_oods: list[str], what: str) -> ImageSet:
    """Training-time outliers from ``ds``: its train split, or its test split when it has no train
    split and is not also evaluated (a test sample must never be trained on)."""
    if "train" in ds.splits:
        data = ds.load("train", dataclasses.replace(ctx, shape=shape))
    elif ds.name in test_oods:
        raise UsageError(f"{what} {ds.name!r} has no train split and is also an --out set; pick another dataset")
    else:
        data = ds.load("test", dataclasses.replace(ctx, shape=shape, seed=ctx.seed + 7919))
    return data.to_format(shape)


def contaminate(train: ImageSet, outliers: ImageSet, rate: float, seed: int) -> ImageSet:
    """Paper 000 §III-A: ID training data mixed with outliers (a fraction ``rate`` of the result),
    each given a random ID label (as paper 000's noise sets are labelled)."""
    if not 0.0 < rate < 1.0:
        raise UsageError(f"--contaminate takes a rate in (0, 1), got {rate}")
    g = torch.Generator().manual_seed(seed + 31)
    n = round(rate * len(train) / (1.0 - rate))
    if n > len(outliers):
        raise UsageError(f"--contaminate {rate}: needs {n} outliers but {outliers.name!r} has {len(outliers)}")
    pick = torch.randperm(len(outliers), generator=g)[:n]
    labels = torch.randint(0, train.num_classes, (n,), generator=g)
    note = f"contaminated: {n} {outliers.name} images ({100 * rate:g}% of training data) with random labels, appended"
    return dataclasses.replace(train, images=torch.cat([train.images, outliers.images[pick]]),
                               labels=torch.cat([train.labels, labels]), notes=train.notes + (note,))
