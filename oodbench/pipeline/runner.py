"""One run of any protocol, as a pipeline of stages that never reach back (the CLI is a thin wrapper):

1. **plan** (:mod:`oodbench.pipeline.planning`): the protocol decides the data — ID train/test, the targets, training
   outliers, contamination, the heldout tuning source and the seeded tuning/evaluation splits;
2. **supply** (:mod:`oodbench.pipeline.supply`): the backbone (trained or cached), every split's features extracted
   once, and the model provider and outliers for detectors whose declared needs ask for them;
3. **evaluate** (:mod:`oodbench.pipeline.evaluate`): per detector fit, tune, score, validate and measure, each detector
   failing alone;
4. **record → store** (:mod:`oodbench.records.record`, :mod:`oodbench.records.store`): one typed record per (detector,
   target), written atomically with its per-sample scores; tables are rendered from records only.

``run_many`` repeats a run per seed and per held-out class.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import re
import socket
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from oodbench import __version__
from oodbench.core import memory
from oodbench.core.progress import say
from oodbench.pipeline.evaluate import Context, Failure, evaluate
from oodbench.pipeline.planning import make_plan, resolve
from oodbench.pipeline.protocols import Plan, Target
from oodbench.pipeline.request import TUNE_MODES, RunRequest, resolve_device
from oodbench.pipeline.supply import Supplied, default_backbone, supply
from oodbench.records.record import Record, evaluated_as_is, identity_hash
from oodbench.records.store import read_record, record_path, results_dir, write_record

__all__ = ["TUNE_MODES", "RunOutcome", "RunRequest", "default_backbone", "expand", "resolve_device", "run", "run_many"]


@dataclass
class RunOutcome:
    """The records of a run (new and resumed) and the (detector, target) pairs that failed. ``unsaved``: the new
    records with their per-sample scores when the run did not store them (``run(store=False)``); ``error``: one
    line when an executor caught the whole run failing."""

    records: list[Record] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    unsaved: list[tuple[Record, dict[str, Any]]] = field(default_factory=list)
    error: str | None = None

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int) -> Record:
        return self.records[i]

    def __iadd__(self, other: RunOutcome) -> RunOutcome:
        self.records += other.records
        self.failures += other.failures
        self.unsaved += other.unsaved
        return self


def versions() -> dict[str, str]:
    import sklearn
    import torch
    import torchvision

    return {
        "oodbench": __version__,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "scikit-learn": sklearn.__version__,
        "python": platform.python_version(),
    }


def run_facts(plan: Plan, got: Supplied) -> dict[str, Any]:
    """What every record of the run shares: data provenance, the model, the device, versions."""
    info = got.model_info
    return {
        # the views' notes: the plan's, and what the supply stage did to the images (backbone geometry, decoder)
        "data": {"id_train": list(got.train.imageset.notes), "id_test": list(got.id_test.imageset.notes)},
        "model": {k: v for k, v in info.items() if k != "train"}
        | {  # pretrained weights evaluated as they are were never trained here: no training config to record
            "train_config": {} if evaluated_as_is(info) else dataclasses.asdict(got.spec.train),
            "train_log": info.get("train", {}),
        },
        "device": str(got.train.device),
        "versions": versions(),
        "host": {"hostname": socket.gethostname(), "pid": os.getpid(), **cpu_kernels()},
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def cpu_kernels() -> dict[str, Any]:
    """The CPU kernel path torch dispatches to and its thread count: on a CPU they decide the bits of a training.
    The same seed retrains the same LeNet on one host, and other weights under another ISA (docs/reproductions.md,
    "The pins run on main": AVX-512 and forced AVX2 on one machine gave two weights hashes)."""
    import torch

    return {"cpu_capability": torch.backends.cpu.get_cpu_capability(), "threads": torch.get_num_threads()}


def computed_on(got: Supplied) -> dict[str, str]:
    """What changes a number besides the data and the method (issue 28): the device class, the precision of the
    model's passes, and oodbench's version. Part of every record's identity (``config``), so ``--skip-existing``
    never mixes a CPU-fp32 record with a GPU-bf16 one, nor records of two versions."""
    return {"device": got.train.device.type, "precision": got.precision, "oodbench": __version__}


def identity_of(req: RunRequest, plan: Plan, got: Supplied):
    """The record identity of (detector, target) in this run."""
    base = {
        "train_limit": req.train_limit,
        "test_limit": req.test_limit,
        "n_tune": req.n_tune,
        "epochs": got.spec.train.epochs,
        **plan.config,
        **computed_on(got),
        **({"grid": req.grid} if req.grid else {}),
    }
    train_out = {"name": plan.train_out.name, "n": len(plan.train_out)} if plan.train_out is not None else None

    def identity(det, target: Target) -> dict[str, Any]:
        uses = train_out and det.needs.outliers != "none"
        return {
            "detector": det.name,
            "backbone": got.backbone,
            "checkpoint": got.model_info["weights_hash"],  # the weights' content hash (issue 28)
            "id": plan.id_name,
            "ood": target.name,
            "protocol": plan.protocol,
            "tune": req.tune,
            "tune_out": plan.tune_out.name if plan.tune_out is not None else None,
            "seed": req.seed,
            "config": {
                **base,
                "detector_params": req.detector_params.get(det.name, {}),
                **({"train_out": train_out} if uses else {}),
            },
        }

    return identity


def run(
    req: RunRequest, skip_existing: bool = False, *, known: Mapping[str, Record] | None = None, store: bool = True
) -> RunOutcome:
    """Run ``req``; records are written under ``req.results`` as they finish. ``skip_existing``: records
    already on disk are read back instead of recomputed (a detector whose records all exist is not fitted).
    ``known`` (record id → record): look existing records up there instead of on disk; ``store=False``: write
    nothing, keep the new records and their scores in ``outcome.unsaved`` (a worker without the results folder)."""
    with memory.guarded(req.max_memory):
        outcome = _run(req, skip_existing, known, store)
    peaks = memory.peaks_mb()
    if peaks:
        top = max((k for k in peaks if k != "run"), key=peaks.get)
        say(f"peak resident memory {peaks['run'] / 1024:.2f} GB (stage {top}); per stage in each record's memory")
    return outcome


def _run(req: RunRequest, skip_existing: bool, known: Mapping[str, Record] | None, store: bool) -> RunOutcome:
    resolved = resolve(req)
    t0 = time.perf_counter()
    with memory.stage("plan"):
        plan = make_plan(req, resolved)
    load_seconds = time.perf_counter() - t0
    got = supply(req, plan, resolved)
    got.seconds = {"load_data": load_seconds, **got.seconds}
    out_dir = results_dir(req.results)
    identity = identity_of(req, plan, got)

    def existing(ident: dict[str, Any]) -> Record | None:
        if not skip_existing:
            return None
        if known is not None:
            return known.get(identity_hash(ident))
        return read_record(record_path(out_dir, Record(**ident, metrics={})))

    owner = lambda n: resolved.owners.get(n, "?")  # noqa: E731
    ctx = Context(req.tune, req.seed, identity, run_facts(plan, got), existing, owner, req.grid)
    outcome = RunOutcome()
    for det in resolved.detectors:
        for o in evaluate(det, plan, got, ctx):
            if o.failure is not None:
                outcome.failures.append(o.failure)
                continue
            assert o.record is not None
            if not o.existing:
                if store:
                    write_record(out_dir, o.record, **o.scores)
                else:
                    outcome.unsaved.append((o.record, o.scores))
                report_tuning(o.record)
            outcome.records.append(o.record)
    say(f"{len(outcome.records)} record(s)" + (f" under {out_dir}{os.sep}{req.protocol}" if store else ""))
    return outcome


def report_tuning(record: Record) -> None:
    tuning = record.tuning
    if tuning and tuning["chosen"] and tuning["value"] is not None:
        text = ", ".join(f"{k}={v}" for k, v in tuning["chosen"].items())
        say(
            f"{record.detector} [{record.tune}, tuned on {tuning['ood_source']}]: {text} "
            f"({tuning['criterion']} {tuning['value']:.1f})"
        )


def expand(req: RunRequest, seeds: list[int] | None = None) -> list[RunRequest]:
    """One request per checkpoint (``models``), per seed and per run the protocol makes of it (novelty
    ``--holdout each``: one per class)."""
    if req.models:
        name = req.model_name or family_name(req.models)
        each = [dataclasses.replace(req, model=m, models=None, model_name=name) for m in req.models]
        return [part for one in each for part in expand(one, seeds)]
    from oodbench.data.imageset import LoadContext, resolve_data_root
    from oodbench.pipeline import protocols
    from oodbench.pipeline.planning import load_split
    from oodbench.plugins.manager import registries

    def num_classes() -> int:
        ctx = LoadContext(root=resolve_data_root(req.data_root), download=req.download, seed=req.seed)
        return load_split(registries().datasets.get(req.id), "test", ctx).num_classes

    holdouts = protocols.get(req.protocol).holdouts(req, num_classes)
    return [dataclasses.replace(req, seed=s, holdout=h) for s in (seeds or [req.seed]) for h in holdouts]


def family_name(sources: list[str]) -> str:
    """The name several checkpoints of one recipe share in tables: their files' common stem without a trailing
    seed tag (``cifar10-mininet-w64-s0.pt2``, ``…-s1.pt2`` → ``cifar10-mininet-w64``)."""
    stems = [Path(str(s)).name.split(".")[0] for s in sources]
    common = re.sub(r"[-_.]+(s|seed)\d*$", "", os.path.commonprefix(stems)).rstrip("-_.")
    return common or "checkpoints"


def run_many(req: RunRequest, seeds: list[int] | None = None, skip_existing: bool = False) -> RunOutcome:
    """Run every expansion of ``req`` (seeds × holdouts)."""
    parts = expand(req, seeds)
    outcome = RunOutcome()
    for i, part in enumerate(parts, 1):
        if len(parts) > 1:
            model = f", model {Path(str(part.model)).name}" if req.models else ""
            say(f"[{i}/{len(parts)}] seed {part.seed}" + (f", holdout {part.holdout}" if part.holdout else "") + model)
        outcome += run(part, skip_existing=skip_existing)
    return outcome
