"""Stage 3, evaluate: fit, tune, score, validate and measure one detector on every target of a plan.

Each (detector, target) gives an :class:`Outcome`: a new :class:`~oodbench.records.record.Record` with its per-sample
scores, a record found on disk (resume), or a :class:`Failure`. A detector that raises (any exception from its
own code, or invalid scores) fails alone: its remaining targets become failures with a one-line reason naming
the detector and its plugin, and the other detectors run on. Bad input (:class:`~oodbench.core.errors.UsageError`)
and interrupts still stop the run.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oodbench.core import memory
from oodbench.core.errors import UsageError, describe
from oodbench.models.features import FeatureView
from oodbench.pipeline.protocols import Plan, Split, Target
from oodbench.pipeline.supply import Supplied, TargetViews
from oodbench.pipeline.tuning import TuneResult, tune
from oodbench.plugins.detector import Detector, fit_detector, validate_scores
from oodbench.records.bootstrap import error_ci, fingerprint, ood_ci
from oodbench.records.metrics import misclassification_metrics, ood_metrics
from oodbench.records.record import Record


@dataclass(frozen=True)
class Failure:
    """A (detector, target) pair that produced no record."""

    detector: str
    plugin: str
    target: str
    stage: str  # fit | tune | score
    reason: str  # ExcType: message, one line

    def line(self) -> str:
        return f"detector {self.detector!r} (plugin {self.plugin}) failed in {self.stage}: {self.reason}"


def failure_lines(failures: list[Failure]) -> list[str]:
    """One line per failed detector, naming the targets left without a record."""
    by_det: dict[str, list[Failure]] = {}
    for f in failures:
        by_det.setdefault(f.detector, []).append(f)
    return [
        f"{fs[0].line()} — no record for {', '.join(dict.fromkeys(f.target for f in fs))}" for fs in by_det.values()
    ]


@dataclass(frozen=True)
class Outcome:
    record: Record | None = None
    scores: dict[str, Any] = field(default_factory=dict)
    existing: bool = False  # read back from the results folder (resume)
    failure: Failure | None = None


@dataclass
class Context:
    """What evaluate needs besides the plan and the supplied views."""

    tune: str
    seed: int
    identity: Callable[[Detector, Target], dict[str, Any]]  # a record's identity fields
    facts: dict[str, Any]  # data, model, device, versions, host, created: shared by every record of the run
    existing: Callable[[dict[str, Any]], Record | None] = lambda identity: None
    plugin_of: Callable[[str], str] = lambda name: "?"
    grid: str | None = None  # ``--grid NAME``: a detector's named search space where it has one


class _Stage:
    """The stage a detector is in: a failure says where it happened; each stage's peak memory is measured."""

    def __init__(self) -> None:
        self.name = "fit"

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = value
        memory.enter(value)


def evaluate(det: Detector, plan: Plan, got: Supplied, ctx: Context) -> Iterator[Outcome]:
    """Every target of ``plan`` for ``det``, in order (see the module docstring)."""
    found = {t.name: ctx.existing(ctx.identity(det, t)) for t in plan.targets}
    if all(found.values()):
        yield from (Outcome(record=r, existing=True) for r in found.values())
        return
    stage, done = _Stage(), set()
    try:
        for outcome in _evaluate(det, plan, got, ctx, found, stage):
            done.add(outcome.record.ood if outcome.record else "")
            yield outcome
    except (UsageError, KeyboardInterrupt):
        raise
    except Exception as exc:  # noqa: BLE001 - a detector fails alone (issue 10)
        if os.environ.get("OODBENCH_DEBUG"):
            raise
        for t in plan.targets:
            if t.name not in done and not found[t.name]:
                yield Outcome(failure=Failure(det.name, ctx.plugin_of(det.name), t.name, stage.name, describe(exc)))


def _evaluate(det: Detector, plan: Plan, got: Supplied, ctx: Context, found: dict, stage: _Stage) -> Iterator[Outcome]:
    mark = len(got.supplies.models.records)
    assert plan.id_split is not None
    id_tune = got.id_test.subset(plan.id_split.tune)
    id_eval = got.id_scored.subset(plan.id_scored_eval())
    fit_on = id_tune if det.needs.fits_on == "validation" else got.train  # Needs.fits_on
    t0 = time.perf_counter()
    fit_detector(det, fit_on, got.supplies)
    times = {**got.seconds, "fit": time.perf_counter() - t0}
    shared = _shared_tuning(det, ctx, got, id_tune, fit_on, stage)
    for target, views, split in zip(plan.targets, got.targets, plan.target_splits):
        if found[target.name]:
            yield Outcome(record=found[target.name], existing=True)
            continue
        if target.kind == "errors":
            stage.name = "score"
            yield _errors_row(det, target, got, ctx, times, mark)
            continue
        stage.name = "tune"
        t0 = time.perf_counter()
        tuned, info, tune_seconds = shared or (
            *tune(
                det,
                id_tune,
                views.tune.subset(split.tune),
                target.name,
                seed=ctx.seed,
                train=fit_on,
                supplies=got.supplies,
                grid=ctx.grid,
            ),
            time.perf_counter() - t0,
        )
        stage.name = "score"
        yield _ood_row(
            tuned,
            info,
            target,
            views,
            split,
            id_eval,
            got,
            ctx,
            {**times, "tune": tune_seconds},
            mark,
            det,
            len(id_tune),
        )


def _shared_tuning(
    det: Detector, ctx: Context, got: Supplied, id_tune: FeatureView, fit_on: FeatureView, stage: _Stage
) -> tuple[Detector, TuneResult | None, float] | None:
    """(tuned, result, seconds) shared by every target — heldout tuning, or none for ``--tune none`` —, or None:
    tune per target (oracle)."""
    if ctx.tune == "none":
        return det, None, 0.0
    if ctx.tune != "heldout":
        return None
    stage.name = "tune"
    assert got.heldout is not None
    t0 = time.perf_counter()
    tuned, info = tune(
        det,
        id_tune,
        got.heldout,
        got.heldout.name,
        seed=ctx.seed,
        train=fit_on,
        supplies=got.supplies,
        grid=ctx.grid,
    )
    return tuned, info, time.perf_counter() - t0


def _scores(det: Detector, view: FeatureView) -> np.ndarray:
    return validate_scores(det, det.score_samples(view), len(view))


def _ood_row(
    tuned: Detector,
    info: TuneResult | None,
    target: Target,
    views: TargetViews,
    split: Split,
    id_eval: FeatureView,
    got: Supplied,
    ctx: Context,
    seconds: dict,
    mark: int,
    det: Detector,
    n_id_tune: int,
) -> Outcome:
    t0 = time.perf_counter()
    ood_eval = views.scored.subset(split.eval)
    s_id, s_ood = _scores(tuned, id_eval), _scores(tuned, ood_eval)
    seconds = {**seconds, "score": time.perf_counter() - t0}
    tuning = (
        None
        if info is None
        else {
            "criterion": info.criterion,
            "chosen": info.params,
            "value": info.value,
            "grid": info.grid,
            "grid_size": info.grid_size,
            "ood_source": info.ood_source,
            "n_id": n_id_tune,
            "n_ood": len(split.tune) if ctx.tune == "oracle" else len(got.heldout or []),
            "protocol": info.protocol,
            "trials": info.trials,
            "disjoint": dict(target.tuning_check or {}),
        }
    )
    record = Record(
        **ctx.identity(det, target),
        metrics={**ood_metrics(s_id, s_ood), **got.id_metrics()},
        ci=ood_ci(s_id, s_ood, ctx.seed, fingerprint(id_eval.imageset, ood_eval.imageset)),
        target=dict(target.facts),
        plugin=ctx.plugin_of(det.name),
        params={**det.get_params(), **(info.params if info else {})},
        tuning=tuning,
        fit=tuned.describe_fit(),
        extra_models=_extra_models(got, mark),
        n_eval={"id": len(id_eval), "ood": len(ood_eval)},
        seconds=seconds,
        **_facts(ctx, ood_notes=list(views.scored.imageset.notes)),  # the supply stage's notes too (geometry, decoder)
    )
    return Outcome(record=record, scores={"id": s_id, "ood": s_ood, **embeddings(tuned, id_eval, ood_eval, ctx.seed)})


def _errors_row(det: Detector, target: Target, got: Supplied, ctx: Context, seconds: dict, mark: int) -> Outcome:
    """Paper 004 EXP-1: errors of the classifier on the ID test set are the positive class."""
    t0 = time.perf_counter()
    view = got.id_test
    s = _scores(det, view)
    logits = view.logits().cpu()
    correct = (logits.argmax(1) == target.clean.labels).numpy()
    msp = torch.softmax(logits, 1).max(1).values.numpy()
    metrics = {
        **misclassification_metrics(s, correct),
        "id_acc": got.id_acc,
        "mean_msp_wrong": 100.0 * float(msp[~correct].mean()),
        "mean_msp_right": 100.0 * float(msp[correct].mean()),
    }
    record = Record(
        **ctx.identity(det, target),
        metrics=metrics,
        ci=error_ci(s, correct, ctx.seed, fingerprint(view.imageset, correct)),
        plugin=ctx.plugin_of(det.name),
        params=det.get_params(),
        fit=det.describe_fit(),
        extra_models=_extra_models(got, mark),
        n_eval={"id": len(view), "errors": int((~correct).sum())},
        seconds={**seconds, "score": time.perf_counter() - t0},
        **_facts(ctx),
    )
    return Outcome(record=record, scores={"id": s, "correct": correct})


def _extra_models(got: Supplied, mark: int) -> list[dict]:
    return list({m["hash"]: m for m in got.supplies.models.records[mark:]}.values())


def _facts(ctx: Context, ood_notes: list[str] | None = None) -> dict[str, Any]:
    facts = {k: ctx.facts[k] for k in ("model", "device", "versions", "host", "created")}
    facts["memory"] = memory.peaks_mb()
    data = dict(ctx.facts["data"])
    if ood_notes is not None:
        data["ood"] = ood_notes
    return {**facts, "data": data}


def embeddings(det: Detector, id_eval: FeatureView, ood_eval: FeatureView, seed: int, n: int = 1000) -> dict:
    """Up to ``n`` seeded ID and OOD points of a detector's embedding (``needs.embedding``), saved beside the
    scores for ``oodbench plot embedding`` (papers 000 Fig. 4, 001 Fig. 1)."""
    if not det.needs.embedding:
        return {}
    g = torch.Generator().manual_seed(seed)
    pick_id = torch.randperm(len(id_eval), generator=g)[:n].sort().values
    pick_ood = torch.randperm(len(ood_eval), generator=g)[:n].sort().values
    return {
        "emb_id": det.embed(id_eval)[pick_id.numpy()],
        "emb_ood": det.embed(ood_eval)[pick_ood.numpy()],
        "emb_id_labels": id_eval.labels[pick_id].numpy(),
    }
