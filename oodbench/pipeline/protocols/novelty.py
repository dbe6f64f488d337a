"""``novelty``: one dataset split by classes; the backbone trains on the in-classes only.

``--holdout 0,1`` holds classes 0 and 1 out (paper 000's MNIST'/MNIST-{0,1}); ``in:2,6,7/seen:0,3,4,8/
unseen:5,9,1`` is paper 001's partition (seen classes are training-time outliers, unseen ones are scored);
``each`` is leave-one-class-out (paper 002 Table 1), expanded by :func:`expand_holdout` into one run per class.
Its run table adds a mean row per detector over the held-out sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import torch

from oodbench.core.errors import UsageError
from oodbench.pipeline.protocols.base import LoadOOD, Plan, Protocol, Target


def _ints(part: str, num_classes: int) -> list[int]:
    try:
        out = [int(v) for v in part.split(",") if v.strip()]
    except ValueError:
        raise UsageError(f"--holdout: {part!r} is not a comma-separated list of class indices") from None
    bad = [v for v in out if not 0 <= v < num_classes]
    if bad:
        raise UsageError(f"--holdout: classes {bad} outside 0..{num_classes - 1}")
    return out


def parse_holdout(text: str, num_classes: int) -> dict[str, list[int]]:
    """``"0,1"`` → {in: rest, unseen: [0, 1]}; ``"in:2,6,7/seen:0,3,4,8/unseen:5,9,1"`` → as written."""
    if ":" in text:
        parts = dict(p.split(":", 1) for p in text.split("/"))
        if set(parts) - {"in", "seen", "unseen"} or "unseen" not in parts:
            raise UsageError("--holdout partitions look like in:2,6,7/seen:0,3,4,8/unseen:5,9,1")
        groups = {k: _ints(v, num_classes) for k, v in parts.items()}
        taken = groups["unseen"] + groups.get("seen", [])
        groups.setdefault("in", [c for c in range(num_classes) if c not in taken])
    else:
        unseen = _ints(text, num_classes)
        groups = {"in": [c for c in range(num_classes) if c not in unseen], "unseen": unseen}
    flat = [c for g in groups.values() for c in g]
    if len(flat) != len(set(flat)):
        raise UsageError("--holdout: a class appears in two groups")
    if not groups["in"] or not groups["unseen"]:
        raise UsageError("--holdout needs at least one in-class and one held-out class")
    return groups


def check_holdout_syntax(text: str) -> None:
    """The form of ``--holdout`` before any data is read (class indices are checked against the data later)."""
    if text == "each":
        return
    parts = text.split("/") if ":" in text else [f"unseen:{text}"]
    if any(":" not in p for p in parts):
        raise UsageError("--holdout partitions look like in:2,6,7/seen:0,3,4,8/unseen:5,9,1")
    for part in parts:
        name, _, classes = part.partition(":")
        if name not in {"in", "seen", "unseen"}:
            raise UsageError("--holdout partitions look like in:2,6,7/seen:0,3,4,8/unseen:5,9,1")
        if not all(v.strip().isdigit() for v in classes.split(",") if v.strip()) or not classes.strip(", "):
            raise UsageError(f"--holdout: {classes!r} is not a comma-separated list of class indices")


def expand_holdout(holdout: str | None, num_classes: int) -> list[str | None]:
    """``each`` → one holdout per class (leave-one-class-out); anything else stays one run."""
    if holdout == "each":
        return [str(c) for c in range(num_classes)]
    return [holdout]


def braces(classes: list[int]) -> str:
    return "{" + ",".join(map(str, classes)) + "}"


class Novelty(Protocol):
    name = "novelty"

    def check(self, req) -> None:
        if not req.holdout:
            raise UsageError("--protocol novelty needs --holdout (each | 0,1 | in:…/seen:…/unseen:…)")
        check_holdout_syntax(req.holdout)

    def holdouts(self, req, num_classes) -> list[str | None]:
        return expand_holdout(req.holdout, num_classes()) if req.holdout == "each" else [req.holdout]

    def design(self, req, train, test, load_ood: LoadOOD, oods: Sequence) -> Plan:
        groups = parse_holdout(req.holdout, train.num_classes)
        unseen = Target(f"{req.id}{braces(groups['unseen'])}", test.with_classes(groups["unseen"]))
        train_out = None
        if groups.get("seen"):  # paper 001: seen out-of-distribution classes, training split only
            seen = train.with_classes(groups["seen"])
            train_out = dataclasses.replace(
                seen, name=f"{req.id}{braces(groups['seen'])}", labels=torch.full_like(seen.labels, -1), classes=()
            )
        in_train, in_test = train.with_classes(groups["in"]), test.with_classes(groups["in"])
        return Plan(
            self.name,
            f"{req.id}-{braces(groups['unseen'] + groups.get('seen', []))}",
            in_train,
            in_test,
            (unseen, *self.ood_targets(req, oods, train.shape, load_ood)),
            classes=tuple(groups["in"]),
            config={"holdout": groups},
            train_out=train_out,
        )
