"""Every protocol end to end, as a pure function (the CLI is a thin wrapper).

run(request):
  1. resolve every name through the registries (unknown names fail before any work);
  2. build the protocol's plan (``oodbench.protocols``): ID train/test (class-restricted for
     novelty) and the OOD sets, converted to the ID format (conversion noted).
     Training-time outliers (``--train-out``, the novelty ``seen:`` classes, or a detector's
     default) go to the detectors that train with them; ``--contaminate`` mixes outliers into ID train;
  3. train the backbone or reuse its cached checkpoint;
  4. draw the tuning set (SPEC.md): n_tune ID-test + n_tune OOD samples, seeded, removed
     from evaluation;
  5. fit each detector once on ID train; tune it (none | oracle | heldout);
  6. score the untouched remainder, compute metrics, write one record (and its per-sample
     scores) per (detector, OOD); misclassification scores the ID test set alone.
Features are extracted once per split in one pass and shared by every detector.
``run_many`` repeats it per seed and per held-out class.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .backbones import BackboneFactory
from .checkpoints import ModelProvider, ModelSpec, load_or_train
from .data import Dataset, ImageSet, LoadContext, cache_dir, resolve_data_root
from .detector import Detector, validate_scores
from .errors import UsageError
from .features import FeatureView
from .metrics import accuracy, misclassification_metrics, ood_metrics
from .plugins import registries
from .progress import say
from .results import record_id, record_path, results_dir, write_record, write_scores
from .train import TrainConfig
from .tuning import TuneResult, tune

TUNE_MODES = ("none", "oracle", "heldout")


@dataclass
class RunRequest:
    """Everything ``oodbench run`` takes (CLI options map one to one)."""

    detectors: list[str]
    id: str
    oods: list[str] = field(default_factory=list)
    backbone: str | None = None
    checkpoint: Path | None = None
    epochs: int | None = None
    tune: str = "none"
    tune_out: str | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    train_limit: int | None = None
    test_limit: int | None = None
    n_tune: int = 1000
    pretrained: bool = False
    feature_cache: bool = True
    batch_size: int = 512
    results: str | None = None
    protocol: str = "anomaly"
    holdout: str | None = None
    corruptions: list[str] | None = None
    severities: list[int] | None = None
    corrupt_both: str | None = None
    train_out: str | None = None
    contaminate: float = 0.0
    contaminate_with: str | None = None
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r} (auto | cpu | cuda)")
    return torch.device(name)


def default_backbone(shape: tuple[int, int, int]) -> str:
    for entry in registries().backbones:
        if entry.obj.suits(shape):
            return entry.name
    raise UsageError(f"no default backbone for {'×'.join(map(str, shape))} inputs; choose one with --backbone")


def train_config(factory: BackboneFactory, epochs: int | None, seed: int) -> TrainConfig:
    defaults = dict(getattr(factory, "train_defaults", {}))
    return TrainConfig(**defaults).replace(epochs=epochs, seed=seed)


def split_tuning(n: int, n_tune: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (tuning, evaluation) index split; the two never share a sample."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = min(n_tune, n // 2)
    return perm[:k].sort().values, perm[k:].sort().values


def versions() -> dict[str, str]:
    import sklearn
    import torchvision

    return {"oodbench": __version__, "torch": torch.__version__, "torchvision": torchvision.__version__,
            "scikit-learn": sklearn.__version__, "python": platform.python_version()}


def make_detector(cls: type[Detector], seed: int, params: dict[str, Any]) -> Detector:
    det = cls()
    if "seed" in det.get_params():
        det.set_params(seed=seed)
    bad = [k for k in params if k not in det.get_params()]
    if bad:
        raise UsageError(f"detector {cls.name!r} has no parameter(s) {bad}; it has {sorted(det.get_params())}")
    return det.set_params(**params)


def load_ood(ds: Dataset, ctx: LoadContext, id_shape, limit: int | None, seed: int) -> ImageSet:
    size = limit or ctx.size
    data = ds.load("test", dataclasses.replace(ctx, shape=id_shape, size=size))
    return data.head(limit, seed).to_format(id_shape)


def run(req: RunRequest, skip_existing: bool = False) -> list[dict[str, Any]]:
    """Run ``req.protocol``; returns the records (also written under ``req.results``).

    ``skip_existing``: records already on disk are read back instead of recomputed (and a detector
    whose records all exist is not even fitted) — how an interrupted suite resumes.
    """
    from .protocols import PROTOCOLS, prepare

    regs = registries()
    if req.protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {req.protocol!r} ({' | '.join(PROTOCOLS)})")
    if req.tune not in TUNE_MODES:
        raise UsageError(f"unknown tuning mode {req.tune!r} ({' | '.join(TUNE_MODES)})")
    if req.protocol == "misclassification" and (req.tune != "none" or req.oods):
        raise UsageError("--protocol misclassification uses the ID test set only (no --out, --tune none)")
    det_classes = [regs.detectors.get(name) for name in req.detectors]
    detectors = [make_detector(cls, req.seed, req.detector_params.get(cls.name, {})) for cls in det_classes]
    id_ds = regs.datasets.get(req.id)
    ood_dss = [regs.datasets.get(name) for name in req.oods]
    tune_out_ds = None
    if req.tune == "heldout":
        tune_out = req.tune_out or "uniform"
        if tune_out in req.oods:
            raise UsageError(f"--tune heldout must not tune on a test OOD set ({tune_out!r}); pick another --tune-out")
        tune_out_ds = regs.datasets.get(tune_out)
    elif req.tune_out:
        raise UsageError("--tune-out only applies to --tune heldout")
    if req.backbone:
        regs.backbones.get(req.backbone)
    device = resolve_device(req.device)
    ctx = LoadContext(root=resolve_data_root(req.data_root), download=req.download, seed=req.seed, id_name=req.id)
    timings: dict[str, float] = {}

    t0 = time.perf_counter()
    plan = prepare(req, id_ds, ood_dss, ctx, lambda ds, shape: load_ood(ds, ctx, shape, req.test_limit, req.seed))
    shape = plan.id_train.shape
    add_training_outliers(req, plan, detectors, ctx, shape)
    id_train, id_test = plan.id_train, plan.id_test
    tune_out_set = load_ood(tune_out_ds, ctx, shape, req.n_tune, req.seed + 1) if tune_out_ds else None
    timings["load_data"] = time.perf_counter() - t0

    backbone_name = req.backbone or default_backbone(shape)
    factory = regs.backbones.get(backbone_name)
    trained_on = f"{req.id}+{req.contaminate:g}{req.contaminate_with}" if req.contaminate else req.id
    spec = ModelSpec(backbone_name, trained_on, shape, id_train.num_classes, train_config(factory, req.epochs, req.seed),
                     classes=plan.classes, train_limit=req.train_limit, pretrained=req.pretrained)
    t0 = time.perf_counter()
    model, model_info = load_or_train(spec, factory, id_train, id_test, device, req.checkpoint)
    timings["backbone"] = time.perf_counter() - t0
    models = ModelProvider(spec, factory, id_train, id_test, device)

    def view(data: ImageSet) -> FeatureView:
        disk = None
        if req.feature_cache:
            import hashlib

            key = hashlib.sha256(f"{model_info['hash']}|{data.name}|{data.fingerprint()}".encode()).hexdigest()[:20]
            disk = cache_dir() / "features" / key
        return FeatureView(data, model, device, req.batch_size, amp=device.type == "cuda", cache_dir=disk, models=models)

    out_dir = results_dir(req.results)
    config = {"train_limit": req.train_limit, "test_limit": req.test_limit, "n_tune": req.n_tune,
              "epochs": spec.train.epochs, **plan.config}
    train_out = {"name": plan.train_out.name, "n": len(plan.train_out)} if plan.train_out is not None else None

    def identity(det: Detector, ood: str) -> dict[str, Any]:
        return {"detector": det.name, "backbone": backbone_name, "checkpoint": model_info["hash"], "id": plan.id_name,
                "ood": ood, "protocol": req.protocol, "tune": req.tune,
                "tune_out": tune_out_set.name if tune_out_set is not None else None, "seed": req.seed,
                "config": {**config, "detector_params": req.detector_params.get(det.name, {}),
                           **({"train_out": train_out} if train_out and uses_outliers(det) else {})}}

    def existing(det: Detector, ood: str) -> dict[str, Any] | None:
        if not skip_existing:
            return None
        path = record_path(out_dir, identity(det, ood))
        return json.loads(path.read_text()) if path.is_file() else None

    train_view, id_view = view(id_train), view(id_test)
    train_view.outliers = plan.train_out
    id_scored_view = view(plan.id_scored) if plan.id_scored is not None else id_view
    id_tune_idx, id_eval_idx = split_tuning(len(id_test), req.n_tune, req.seed)
    targets = []
    for o in plan.oods:
        clean = view(o.clean) if not o.paired else id_view
        scored = view(o.scored) if o.scored is not None else clean
        split = (id_tune_idx, id_eval_idx) if o.paired else split_tuning(len(o.clean), req.n_tune, req.seed + 1)
        targets.append((o, clean, scored, split))

    layers = sorted({layer for d in detectors for layer in d.required_layers(model)} | {"logits"})
    t0 = time.perf_counter()
    for v in {id(v): v for v in [id_view, id_scored_view, *(t[1] for t in targets), *(t[2] for t in targets)]}.values():
        v.features(layers)  # one pass per split, shared by all detectors
    timings["extract_features"] = time.perf_counter() - t0
    id_acc = accuracy(id_view.logits().numpy(), id_test.labels.numpy())
    id_eval, id_tune = id_scored_view.subset(id_eval_idx), id_view.subset(id_tune_idx)
    heldout_view = view(tune_out_set) if tune_out_set is not None else None

    def finish(record: dict[str, Any], **scores) -> None:
        record["record_id"] = record_id(record)
        write_scores(out_dir, record, **scores)  # before the record: a record never lacks its scores
        write_record(out_dir, record)
        records.append(record)

    def facts() -> dict[str, Any]:
        return {
            "data": {"id_train": list(id_train.notes), "id_test": list(id_test.notes)},
            "model": {k: v for k, v in model_info.items() if k != "train"} | {
                "train_config": dataclasses.asdict(spec.train), "train_log": model_info.get("train", {})},
            "device": str(device), "versions": versions(), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    records: list[dict[str, Any]] = []
    for det in detectors:
        names = [t[0].name for t in targets] if req.protocol != "misclassification" else ["errors"]
        found = {n: existing(det, n) for n in names}
        if all(found.values()):
            records.extend(found.values())  # type: ignore[arg-type]
            say(f"{det.name}: all {len(names)} record(s) already exist, skipped")
            continue
        mark = len(models.records)
        t0 = time.perf_counter()
        det.fit(train_view)
        fit_seconds = time.perf_counter() - t0
        if req.protocol == "misclassification":
            t0 = time.perf_counter()
            s = validate_scores(det, det.score_samples(id_view), len(id_view))
            logits = id_view.logits()
            correct = (logits.argmax(1) == id_test.labels).numpy()
            msp = torch.softmax(logits, 1).max(1).values.numpy()
            record = identity(det, "errors") | {
                "params": det.get_params(), "tuning": None, "fit": det.describe_fit(),
                "metrics": {**misclassification_metrics(s, correct), "id_acc": id_acc,
                            "mean_msp_wrong": 100.0 * float(msp[~correct].mean()),
                            "mean_msp_right": 100.0 * float(msp[correct].mean())},
                "n_eval": {"id": len(id_view), "errors": int((~correct).sum())},
                "seconds": {**timings, "fit": fit_seconds, "score": time.perf_counter() - t0}, **facts()}
            finish(record, id=s, correct=correct)
            continue
        shared: tuple[Detector, TuneResult | None, float] | None = None
        if req.tune == "heldout":
            t0 = time.perf_counter()
            tuned, info = tune(det, id_tune, heldout_view, tune_out_set.name, seed=req.seed, train=train_view)
            shared = (tuned, info, time.perf_counter() - t0)
        elif req.tune == "none":
            shared = (det, None, 0.0)
        s_id = None
        for o, clean, scored, (tune_idx, eval_idx) in targets:
            if found[o.name]:
                records.append(found[o.name])
                continue
            if shared is None:  # oracle: tune on this OOD set's (clean) tuning samples
                t0 = time.perf_counter()
                tuned, info = tune(det, id_tune, clean.subset(tune_idx), o.name, seed=req.seed, train=train_view)
                tune_seconds = time.perf_counter() - t0
            else:
                tuned, info, tune_seconds = shared
            t0 = time.perf_counter()
            if s_id is None or shared is None:
                s_id = validate_scores(tuned, tuned.score_samples(id_eval), len(id_eval))
            ood_eval = scored.subset(eval_idx)
            s_ood = validate_scores(tuned, tuned.score_samples(ood_eval), len(ood_eval))
            score_seconds = time.perf_counter() - t0
            record = identity(det, o.name) | {
                "params": {**det.get_params(), **(info.params if info else {})},
                "tuning": None if info is None else {
                    "criterion": info.criterion, "value": info.value, "grid_size": info.grid_size,
                    "ood_source": info.ood_source, "n_id": len(id_tune),
                    "n_ood": len(tune_idx) if req.tune == "oracle" else len(heldout_view),
                    "protocol": "regression half / selection half, then refit on the whole tuning set",
                    "trials": info.trials},
                "fit": tuned.describe_fit(),
                "extra_models": list({m["hash"]: m for m in models.records[mark:]}.values()),
                "metrics": {**ood_metrics(s_id, s_ood), "id_acc": id_acc},
                "n_eval": {"id": len(id_eval), "ood": len(ood_eval)},
                "seconds": {**timings, "fit": fit_seconds, "tune": tune_seconds, "score": score_seconds},
                **facts(),
            }
            record["data"]["ood"] = list((o.scored or o.clean).notes)
            finish(record, id=s_id, ood=s_ood, **embeddings(tuned, id_eval, ood_eval, req.seed))
            if info is not None and info.params and (shared is None or o is targets[0][0]):
                chosen = ", ".join(f"{k}={v}" for k, v in info.params.items())
                say(f"{det.name} [{req.tune}, tuned on {info.ood_source}]: {chosen} ({info.criterion} {info.value:.1f})")
    say(f"{len(records)} record(s) under {out_dir}{os.sep}{req.protocol}")
    return records


def uses_outliers(det: Detector) -> bool:
    """Whether a detector trains with the run's training-time outliers (ODM, Outlier Exposure)."""
    return bool(getattr(det, "needs_outliers", False) or getattr(det, "uses_outliers", False))


def embeddings(det: Detector, id_eval: FeatureView, ood_eval: FeatureView, seed: int, n: int = 1000) -> dict[str, Any]:
    """Up to ``n`` seeded ID and OOD points of a detector's embedding (detectors with ``embed``),
    saved beside the scores for ``oodbench plot embedding`` (papers 000 Fig. 4, 001 Fig. 1)."""
    if not hasattr(det, "embed"):
        return {}
    g = torch.Generator().manual_seed(seed)
    pick_id = torch.randperm(len(id_eval), generator=g)[:n].sort().values
    pick_ood = torch.randperm(len(ood_eval), generator=g)[:n].sort().values
    return {"emb_id": det.embed(id_eval)[pick_id.numpy()], "emb_ood": det.embed(ood_eval)[pick_ood.numpy()],
            "emb_id_labels": id_eval.labels[pick_id].numpy()}


def add_training_outliers(req: RunRequest, plan, detectors: list[Detector], ctx: LoadContext, shape) -> None:
    """Training-time outliers: ``--train-out`` (or the novelty ``seen:`` classes, or the default of a
    detector that needs them, e.g. KMNIST for Outlier Exposure on 28×28), and ``--contaminate``."""
    from .protocols import contaminate, outlier_split

    regs = registries()
    if req.train_out:
        if plan.train_out is not None:
            raise UsageError(f"--train-out {req.train_out!r} and the --holdout seen: classes both name training outliers; use one")
        plan.train_out = outlier_split(regs.datasets.get(req.train_out), ctx, shape, req.oods, "--train-out")
    needy = [d for d in detectors if getattr(d, "needs_outliers", False)]
    if needy and plan.train_out is None:
        default = needy[0].default_outliers(shape)
        if default is None:
            raise UsageError(f"detector {needy[0].name!r} trains with outliers: name them with --train-out NAME "
                             "(or the novelty seen: classes, --holdout in:…/seen:…/unseen:…)")
        say(f"{needy[0].name}: training outliers default to {default!r} (override with --train-out)")
        plan.train_out = outlier_split(regs.datasets.get(default), ctx, shape, req.oods, "training-outlier set")
    if req.contaminate:
        if not req.contaminate_with:
            raise UsageError("--contaminate RATE needs --contaminate-with NAME")
        pool = outlier_split(regs.datasets.get(req.contaminate_with), ctx, shape, req.oods, "--contaminate-with")
        plan.id_train = contaminate(plan.id_train, pool, req.contaminate, req.seed)
        plan.config["contaminate"] = {"rate": req.contaminate, "with": req.contaminate_with}
    elif req.contaminate_with:
        raise UsageError("--contaminate-with needs --contaminate RATE")


def expand(req: RunRequest, seeds: list[int] | None = None) -> list[RunRequest]:
    """One request per seed and per held-out class (``--holdout each``)."""
    from .protocols import expand_holdout

    holdouts = [req.holdout]
    if req.protocol == "novelty" and req.holdout == "each":
        ds = registries().datasets.get(req.id)
        ctx = LoadContext(root=resolve_data_root(req.data_root), download=req.download, seed=req.seed)
        holdouts = expand_holdout("each", ds.load("test", ctx).num_classes)
    return [dataclasses.replace(req, seed=s, holdout=h) for s in (seeds or [req.seed]) for h in holdouts]


def run_many(req: RunRequest, seeds: list[int] | None = None, skip_existing: bool = False) -> list[dict[str, Any]]:
    """Run every expansion of ``req`` (seeds × holdouts) and return all records."""
    parts = expand(req, seeds)
    records: list[dict[str, Any]] = []
    for i, part in enumerate(parts, 1):
        if len(parts) > 1:
            say(f"[{i}/{len(parts)}] seed {part.seed}" + (f", holdout {part.holdout}" if part.holdout else ""))
        records += run(part, skip_existing=skip_existing)
    return records
