"""What every protocol produces — a :class:`Plan` of :class:`Target` rows — and the :class:`Protocol` base.

A protocol decides the data: the ID train/test sets, the targets each row scores against the ID
test set and the facts each row records (e.g. corruption type and severity); the report tabulates
its records by protocol name.
Everything after the plan (supply, evaluate, record, store) is the same for every protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch

from oodbench.core.errors import UsageError
from oodbench.data.imageset import ImageSet
from oodbench.pipeline.request import group_of

if TYPE_CHECKING:  # pragma: no cover
    from oodbench.pipeline.request import RunRequest

LoadOOD = Callable[[Any, tuple[int, int, int]], ImageSet]  # (dataset plugin, ID shape) → converted test set


@dataclass(frozen=True)
class Target:
    """One row source. ``kind="ood"``: ``scored`` (default ``clean``) against the ID test set, tuning drawn
    from ``clean``; ``kind="errors"``: the ID test set's misclassifications (no OOD data)."""

    name: str
    clean: ImageSet
    scored: ImageSet | None = None
    paired: bool = False  # derived sample by sample from the ID test set: shares the ID tuning split
    facts: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    kind: Literal["ood", "errors"] = "ood"
    tuning_check: Mapping[str, Any] | None = None  # the plan stage's tuning/evaluation disjointness check

    @property
    def evaluated(self) -> ImageSet:
        return self.scored if self.scored is not None else self.clean

    @property
    def tuning_source(self) -> ImageSet:
        """Where oracle tuning draws this target's OOD samples (at the target split's tuning indices): its clean
        set; for a paired target (each scored image a corrupted copy of an ID test image) the corrupted copies,
        since its clean set is the ID set itself and would tune ID against ID (issue 28). ``--corrupt-both``
        targets are not paired: they tune on clean data, as paper 003 Fig. 5 does."""
        return self.scored if self.paired and self.scored is not None else self.clean


@dataclass(frozen=True)
class Split:
    """Seeded (tuning, evaluation) indices of one set; they never share a sample."""

    tune: torch.Tensor
    eval: torch.Tensor

    @classmethod
    def of(cls, n: int, n_tune: int, seed: int) -> Split:
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        k = min(n_tune, n // 2)
        return cls(perm[:k].sort().values, perm[k:].sort().values)


@dataclass(frozen=True)
class Plan:
    """Everything the later stages need to know about the data of one run (immutable)."""

    protocol: str
    id_name: str
    id_train: ImageSet
    id_test: ImageSet
    targets: tuple[Target, ...]
    id_scored: ImageSet | None = None  # corrupted ID test set (corruption mode b); clean ∪ csID (full-spectrum)
    classes: tuple[int, ...] | None = None  # novelty: the in-classes the backbone trains on
    config: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    train_out: ImageSet | None = None  # training-time outliers (the novelty seen: classes, --train-out)
    tune_out: ImageSet | None = None  # heldout tuning source
    trained_on: str = ""  # the ID training data's name in checkpoint keys (contamination included)
    id_split: Split | None = None
    target_splits: tuple[Split, ...] = ()

    def id_scored_eval(self) -> torch.Tensor:
        """Indices of the evaluated samples in ``id_scored``: the ID evaluation split in each sample-for-sample copy
        of the ID test set it holds (one for corruption mode b, 1 + the csID copies for full-spectrum)."""
        assert self.id_split is not None
        n = len(self.id_test)
        copies = len(self.id_scored) // n if self.id_scored is not None else 1
        return torch.cat([self.id_split.eval + k * n for k in range(copies)])


class Protocol:
    """A protocol: the options it accepts (:meth:`check`) and its plan (:meth:`design`); its tables are the
    report's (:mod:`oodbench.report.protocol_tables`, keyed on the record's protocol name)."""

    name: ClassVar[str] = ""
    #: whether its rows score OOD data against the ID test set (False: misclassification's errors)
    scores_ood: ClassVar[bool] = True

    def check(self, req: RunRequest) -> None:
        """Refuse option combinations this protocol cannot run (one line, before any work)."""

    def holdouts(self, req: RunRequest, num_classes: Callable[[], int]) -> list[str | None]:
        """The runs one request stands for (novelty's ``--holdout each``: one per class)."""
        return [req.holdout]

    def design(self, req: RunRequest, train: ImageSet, test: ImageSet, load_ood: LoadOOD, oods: Sequence) -> Plan:
        raise NotImplementedError

    def ood_targets(
        self, req: RunRequest, oods: Sequence, shape: tuple[int, int, int], load_ood: LoadOOD
    ) -> tuple[Target, ...]:
        """One target per ``--out`` set, converted to the ID format; a set of an OOD group (``--near``/``--far``)
        records its group in the row's facts."""

        def facts(name: str) -> Mapping[str, Any]:
            group = group_of(req, name)
            return MappingProxyType({"group": group} if group else {})

        return tuple(Target(name, load_ood(ds, shape), facts=facts(name)) for name, ds in zip(req.oods, oods))


def no_outs(req: RunRequest, what: str) -> None:
    if not req.oods:
        raise UsageError(f"name at least one OOD set with --out ({what})")
