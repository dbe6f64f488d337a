"""Stage 1, plan: the protocol's :class:`~oodbench.pipeline.protocols.Plan`, completed with training-time outliers,
contamination, the heldout tuning source and the seeded tuning/evaluation splits (SPEC.md "Splits").

Nothing here trains or extracts; the plan is immutable once built.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from oodbench.core.errors import UnknownNameError, UsageError
from oodbench.core.progress import say
from oodbench.core.userconfig import explain_unknown_dataset
from oodbench.data.imageset import ImageSet, LoadContext, resolve_data_root
from oodbench.data.streams import is_streamed, refuse_streamed
from oodbench.pipeline import leakage, protocols
from oodbench.pipeline.checks import check_combinations, check_grid, check_validation_split, make_detector
from oodbench.pipeline.protocols import Plan, Split
from oodbench.pipeline.request import N_TUNE_DEFAULT, TUNE_MODES, RunRequest, resolve_device, resolve_precision


@dataclass(frozen=True)
class Resolved:
    """The request's names looked up in the registries: detectors built, datasets and backbone found."""

    detectors: tuple[Any, ...]  # Detector instances, parameters set
    owners: dict[str, str]  # detector name → plugin that registered it
    id_dataset: Any
    ood_datasets: tuple[Any, ...]
    tune_out: Any | None
    device: torch.device
    brought: Any | None = None  # the user's model as a backbone factory (oodbench.models.foreign.BroughtModel)
    precision: str = "fp32"  # of extraction and input-perturbation passes alike (request.resolve_precision)


def resolve(req: RunRequest) -> Resolved:
    """Check the request and resolve every name (unknown names fail here, before any work)."""
    from oodbench.plugins.manager import registries

    regs = registries()
    protocol = protocols.get(req.protocol)
    if req.tune not in TUNE_MODES:
        raise UsageError(f"unknown tuning mode {req.tune!r} ({' | '.join(TUNE_MODES)})")
    classes = [regs.detectors.get(name) for name in req.detectors]  # names first, then option combinations
    protocol.check(req)
    check_combinations(req)
    check_grid(req, classes)
    check_validation_split(req, classes)
    detectors = tuple(make_detector(cls, req.seed, req.detector_params.get(cls.name, {})) for cls in classes)
    tune_out = None
    if req.tune == "heldout":
        name = req.tune_out or "uniform"
        if name in req.oods:
            raise UsageError(f"--tune heldout must not tune on a test OOD set ({name!r}); pick another --tune-out")
        tune_out = dataset(regs, name)
    elif req.tune_out:
        raise UsageError("--tune-out only applies to --tune heldout")
    if req.backbone:
        regs.backbones.get(req.backbone)
    owners = {d.name: regs.detectors.entry(d.name).plugin for d in detectors}
    device = resolve_device(req.device)
    return Resolved(
        detectors,
        owners,
        dataset(regs, req.id),
        tuple(dataset(regs, n) for n in req.oods),
        tune_out,
        device,
        brought_model(req),
        resolve_precision(req.precision, device),
    )


def brought_model(req: RunRequest) -> Any | None:
    """The ``--model`` (or Python API) model, loaded and checked for its layer paths before any data is read."""
    if req.model is None:
        return None
    from oodbench.models.foreign import BroughtModel

    return BroughtModel(req.model, req.model_layers, req.model_head, req.input_mean, req.input_std, req.model_name)


def dataset(regs: Any, name: str) -> Any:
    """The registered dataset ``name``; an unknown name is one line, with a way out when a suite's template
    declares it (the imagenet suite's sets exist once the user declares them)."""
    try:
        return regs.datasets.get(name)
    except UnknownNameError as exc:
        raise explain_unknown_dataset(exc) from None


def load_split(ds, split: str, ctx: LoadContext) -> ImageSet:
    """``ds.load(split, ctx)`` as plugin code: an ordinary exception inside it is one line naming the plugin."""
    from oodbench.plugins.manager import registries

    data = registries().datasets.call(ds, "load", split, ctx)
    return data.stamped(f"{ds.name}/{split}")


def load_ood(ds, ctx: LoadContext, id_shape, limit: int | None, seed: int) -> ImageSet:
    """A test split converted to the ID format (a seeded ``limit`` subset)."""
    data = load_split(ds, "test", dataclasses.replace(ctx, shape=id_shape, size=limit or ctx.size))
    return data.head(limit, seed).to_format(id_shape)


def outlier_split(ds, ctx: LoadContext, shape, test_oods: list[str], what: str) -> ImageSet:
    """Training-time outliers from ``ds``: its train split, or its test split when it has no train split
    and is not also evaluated (a test sample must never be trained on)."""
    if "train" in ds.splits:
        data = load_split(ds, "train", dataclasses.replace(ctx, shape=shape))
    elif ds.name in test_oods:
        raise UsageError(f"{what} {ds.name!r} has no train split and is also an --out set; pick another dataset")
    else:
        data = load_split(ds, "test", dataclasses.replace(ctx, shape=shape, seed=ctx.seed + 7919))
    return data.to_format(shape)


def contaminate(train: ImageSet, outliers: ImageSet, rate: float, seed: int) -> ImageSet:
    """Paper 000 §III-A: ID training data mixed with outliers (a fraction ``rate`` of the result),
    each given a random ID label (as paper 000's noise sets are labelled)."""
    if not 0.0 < rate < 1.0:
        raise UsageError(f"--contaminate takes a rate in (0, 1), got {rate}")
    refuse_streamed(train.images, f"--contaminate on {train.name}")
    g = torch.Generator().manual_seed(seed + 31)
    n = round(rate * len(train) / (1.0 - rate))
    if n > len(outliers):
        raise UsageError(f"--contaminate {rate}: needs {n} outliers but {outliers.name!r} has {len(outliers)}")
    pick = torch.randperm(len(outliers), generator=g)[:n]
    labels = torch.randint(0, train.num_classes, (n,), generator=g)
    note = f"contaminated: {n} {outliers.name} images ({100 * rate:g}% of training data) with random labels, appended"
    picked = outliers.subset(pick)
    prov = train.provenance.cat(picked.provenance) if train.provenance and picked.provenance else None
    return dataclasses.replace(
        train,
        images=torch.cat([train.images, picked.images]),
        labels=torch.cat([train.labels, labels]),
        notes=train.notes + (note,),
        provenance=prov,
    )


def training_outliers(req: RunRequest, plan: Plan, resolved: Resolved, ctx: LoadContext) -> ImageSet | None:
    """``--train-out``, the novelty ``seen:`` classes, or the default of a detector that requires them."""
    from oodbench.plugins.manager import registries

    shape = plan.id_train.shape
    if req.train_out:
        if plan.train_out is not None:
            raise UsageError(
                f"--train-out {req.train_out!r} and the --holdout seen: classes both name training outliers; use one"
            )
        return outlier_split(dataset(registries(), req.train_out), ctx, shape, req.oods, "--train-out")
    needy = [d for d in resolved.detectors if d.needs.outliers == "required"]
    if not needy or plan.train_out is not None:
        return plan.train_out
    default = needy[0].default_outliers(shape)
    if default is None:
        raise UsageError(
            f"detector {needy[0].name!r} trains with outliers: name them with --train-out NAME "
            "(or the novelty seen: classes, --holdout in:…/seen:…/unseen:…)"
        )
    say(f"{needy[0].name}: training outliers default to {default!r} (override with --train-out)")
    return outlier_split(dataset(registries(), default), ctx, shape, req.oods, "training-outlier set")


def contaminated(req: RunRequest, plan: Plan, ctx: LoadContext) -> dict:
    """Plan changes for ``--contaminate RATE --contaminate-with NAME`` (none without them)."""
    from oodbench.plugins.manager import registries

    if not req.contaminate:
        if req.contaminate_with:
            raise UsageError("--contaminate-with needs --contaminate RATE")
        return {}
    if not req.contaminate_with:
        raise UsageError("--contaminate RATE needs --contaminate-with NAME")
    pool = outlier_split(
        dataset(registries(), req.contaminate_with), ctx, plan.id_train.shape, req.oods, "--contaminate-with"
    )
    return {
        "id_train": contaminate(plan.id_train, pool, req.contaminate, req.seed),
        "config": {**plan.config, "contaminate": {"rate": req.contaminate, "with": req.contaminate_with}},
        "trained_on": f"{req.id}+{req.contaminate:g}{req.contaminate_with}",
    }


def check_n_tune(req: RunRequest, plan: Plan) -> None:
    """A set gives at most half its samples to tuning. An explicit ``--n-tune`` larger than half the ID test set
    (the set ``--test-limit`` sizes) is refused; otherwise smaller sets are capped, with a note. Tuning
    (``--tune oracle | heldout``) needs at least one sample per side."""
    most = len(plan.id_test) // 2
    if req.n_tune > most and req.n_tune != N_TUNE_DEFAULT:
        limit = f" (--test-limit {req.test_limit})" if req.test_limit else ""
        raise UsageError(
            f"--n-tune {req.n_tune}: the {plan.id_name} test set has {len(plan.id_test)} samples{limit}, so at "
            f"most {most} can be held out for tuning; lower --n-tune or raise --test-limit"
        )
    sets = [plan.id_test, *(t.clean for t in plan.targets if not (t.paired or t.kind == "errors"))]
    small = [f"{s.name}: {len(s) // 2}" for s in sets if len(s) // 2 < req.n_tune]
    if small:
        say(f"--n-tune {req.n_tune} capped at half of a set ({', '.join(small)})")
    if req.tune != "none" and min([req.n_tune] + [len(s) // 2 for s in sets]) < 1:
        raise UsageError(f"--tune {req.tune} needs tuning samples: --n-tune ≥ 1 and test sets of ≥ 2 samples")


def make_plan(req: RunRequest, resolved: Resolved) -> Plan:
    """The complete plan of one run."""
    root = resolve_data_root(req.data_root)
    ctx = LoadContext(root, req.download, req.seed, id_name=req.id, device=str(resolved.device))
    train = load_split(resolved.id_dataset, "train", ctx).head(req.train_limit, req.seed)
    test = load_split(resolved.id_dataset, "test", ctx).head(req.test_limit, req.seed)
    ctx = dataclasses.replace(ctx, stream=is_streamed(train.images) or is_streamed(test.images))
    plan = protocols.get(req.protocol).design(
        req, train, test, lambda ds, shape: load_ood(ds, ctx, shape, req.test_limit, req.seed), resolved.ood_datasets
    )
    plan = dataclasses.replace(plan, train_out=training_outliers(req, plan, resolved, ctx), trained_on=req.id)
    plan = dataclasses.replace(plan, **contaminated(req, plan, ctx))
    check_n_tune(req, plan)
    id_split = Split.of(len(plan.id_test), req.n_tune, req.seed)
    splits = tuple(
        id_split if t.paired or t.kind == "errors" else Split.of(len(t.clean), req.n_tune, req.seed + 1)
        for t in plan.targets
    )
    plan = dataclasses.replace(plan, id_split=id_split, target_splits=splits)
    excluded = 0
    if resolved.tune_out is not None:
        shape = plan.id_train.shape
        first = load_ood(resolved.tune_out, ctx, shape, req.n_tune, req.seed + 1)
        tune_out, excluded = leakage.disjoint_heldout(
            first, lambda: load_ood(resolved.tune_out, ctx, shape, None, req.seed + 1), plan, req.n_tune, req.seed + 1
        )
        if excluded:
            say(f"--tune-out {tune_out.name}: {excluded} samples shared with evaluated or ID tuning data excluded")
        plan = dataclasses.replace(plan, tune_out=tune_out)
    return leakage.checked(plan, req.tune, excluded)
