"""Stage 2, supply: what the plan's detectors declared they need — the backbone (trained or loaded from the
cache), the feature views of every split with the union of the detectors' layers extracted in one pass each (the
test splits here; the train and held-out splits at the first detector that reads them, :attr:`FeatureView.prefetch`),
and the :class:`~oodbench.plugins.detector.Supplies` (model provider, training-time outliers) for detectors whose
:class:`~oodbench.plugins.detector.Needs` ask for them.

Views keep the model's device; a later stage never reaches back here except through the model provider it
was handed (MC Dropout's tuning grid trains one model per dropout rate through it).
"""

from __future__ import annotations

import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from oodbench.core import memory
from oodbench.core.progress import say
from oodbench.core.userconfig import weights_file
from oodbench.data.imageset import ImageSet, cache_dir
from oodbench.data.streams import is_streamed
from oodbench.models.backbones import Backbone
from oodbench.models.checkpoints import ModelSpec, file_hash, load_or_train, state_hash
from oodbench.models.features import FeatureView
from oodbench.models.pretrained import pretrained_backbone, report_accuracy
from oodbench.models.provider import ModelProvider
from oodbench.models.train import default_config
from oodbench.pipeline.planning import Resolved
from oodbench.pipeline.protocols import Plan
from oodbench.pipeline.request import RunRequest
from oodbench.plugins.detector import Supplies
from oodbench.plugins.manager import registries
from oodbench.records.metrics import accuracy


@dataclass(frozen=True)
class TargetViews:
    tune: FeatureView  # oracle tuning draws from it (Target.tuning_source; the ID test view for error rows)
    scored: FeatureView  # evaluated


@dataclass
class Supplied:
    """The backbone and every view of one run, features extracted."""

    backbone: str
    model: Backbone
    model_info: dict
    spec: ModelSpec
    supplies: Supplies
    train: FeatureView
    id_test: FeatureView
    id_scored: FeatureView
    targets: tuple[TargetViews, ...]
    heldout: FeatureView | None
    id_acc: float
    seconds: dict[str, float] = field(default_factory=dict)
    precision: str = "fp32"
    id_acc_shifted: float | None = None  # full-spectrum: the accuracy on the csID copies

    def id_metrics(self) -> dict[str, float]:
        """ID accuracy on the clean ID test set (and on the covariate-shifted copies, full-spectrum)."""
        shifted = {"id_acc_shifted": self.id_acc_shifted} if self.id_acc_shifted is not None else {}
        return {"id_acc": self.id_acc, **shifted}


def shifted_accuracy(plan: Plan, id_scored: FeatureView) -> float | None:
    """Accuracy on the covariate-shifted copies that follow the clean ID test set in ``id_scored`` (full-spectrum)."""
    n = len(plan.id_test)
    if plan.id_scored is None or len(plan.id_scored) <= n:
        return None
    return accuracy(id_scored.logits()[n:].cpu().numpy(), plan.id_scored.labels[n:].numpy())


def default_backbone(shape: tuple[int, int, int]) -> str:
    """The backbone a run without ``--backbone`` trains (issue 28): of those that declare they suit the input shape,
    oodbench's own first (``lenet`` for 1×28×28, ``resnet18`` for 3×32×32), then other plugins', each by name — so
    installing a plugin never changes the default of a shape oodbench covers. The run says which it chose."""
    from oodbench.core.errors import UsageError

    suited = [e for e in registries().backbones if e.obj.suits(shape)]
    if not suited:
        raise UsageError(f"no default backbone for {'×'.join(map(str, shape))} inputs; choose one with --backbone")
    chosen = min(suited, key=lambda e: (not e.plugin.startswith("oodbench:"), e.name))
    say(f"backbone: {chosen.name} (the default for {'×'.join(map(str, shape))} inputs; --backbone NAME to choose)")
    return chosen.name


def backbone_spec(req: RunRequest, plan: Plan) -> tuple[str, ModelSpec]:
    name = req.backbone or default_backbone(plan.id_train.shape)
    factory = registries().backbones.get(name)
    cfg = default_config(factory.train_defaults, epochs=req.epochs, seed=req.seed, **req.train_options)
    return name, ModelSpec(
        name,
        plan.trained_on,
        plan.id_train.shape,
        plan.id_train.num_classes,
        cfg,
        classes=plan.classes,
        train_limit=req.train_limit,
        pretrained=req.pretrained or req.pretrained_file is not None,
    )


def layer_check(detectors, backbone: str):
    """A check that every layer the detectors ask for (``--layers``, their defaults) exists in the built backbone,
    run before training or extraction."""
    from oodbench.core.errors import UsageError

    def check(model: Backbone) -> None:
        for det in detectors:
            bad = [layer for layer in det.required_layers(model) if layer not in model.feature_layers]
            if bad:
                raise UsageError(
                    f"backbone {backbone!r} has no feature layer {', '.join(map(repr, bad))} (asked for by "
                    f"{det.name}); it has: {', '.join(model.feature_layers)} (see `oodbench layers {backbone}`)"
                )

    return check


#: on the CPU a batch holds at most this many input pixels (16 images at 224×224; MNIST and CIFAR keep 512):
#: activations of large inputs (a ResNet's first map is 64 × (H/2) × (W/2) floats per image) take ~7 MB per
#: 224² image (issue 31: 32 images per batch before)
CPU_BATCH_PIXELS = 16 * 224 * 224


def batch_for(batch_size: int, shape: tuple[int, int, int], device: torch.device) -> int:
    """``batch_size`` on CUDA; on the CPU at most :data:`CPU_BATCH_PIXELS` pixels (MNIST/CIFAR keep 512)."""
    if device.type == "cuda":
        return batch_size
    return max(1, min(batch_size, CPU_BATCH_PIXELS // (shape[1] * shape[2])))


def view_factory(
    req: RunRequest, model: Backbone, weights: str, device: torch.device, precision: str = "fp32", identity: str = ""
):
    """Views of ``model`` on ``device``; on-disk features keyed by content (issue 28): the weights' hash, the images'
    fingerprint, the precision and the decoder — never by the name or training configuration of the model
    (``identity``, which names it only to say when its weights changed)."""

    def view(data: ImageSet) -> FeatureView:
        if is_streamed(data.images) and model.data_config:  # resized and cropped as the backbone's own eval does
            files = data.images.with_geometry(model.data_config)
            if files is not data.images:  # generated noise has no geometry: nothing to note
                data = dataclasses.replace(
                    data, images=files, notes=(*data.notes, f"backbone geometry: {files.describe()}")
                )
        # what makes features differ beyond weights and images: bf16 autocast, nvJPEG's rounding
        how = "|bf16 autocast" if precision == "bf16" else ""  # fp32 keys stay as they were
        if is_streamed(data.images) and data.images.decodes_on(device):
            how += f"|decoded on {device}"
            data = dataclasses.replace(data, notes=(*data.notes, f"JPEGs decoded on {device} (decode_jpeg)"))
        disk = None
        if req.feature_cache:
            disk = feature_dir(f"{weights}|{data.name}|{data.fingerprint()}{how}", identity, weights, data)
        batch = batch_for(req.batch_size, data.shape, device)
        return FeatureView(data, model, device, batch, amp=precision == "bf16", cache_dir=disk)

    return view


def feature_dir(key: str, identity: str, weights: str, data: ImageSet) -> Path:
    """The cache folder of these features; one line when this model (its cache key or file: ``identity``) had other
    weights when these images' features were cached (a retrained or replaced checkpoint): those are not used."""
    root = cache_dir() / "features"
    folder = root / hashlib.sha256(key.encode()).hexdigest()[:20]
    last = root / "weights" / hashlib.sha256(f"{identity}|{data.name}|{data.fingerprint()}".encode()).hexdigest()[:20]
    before = last.read_text().strip() if last.is_file() else None
    if before is not None and before != weights and not folder.is_dir():
        say(f"features of {data.name}: the model's weights changed ({before[:8]} → {weights[:8]}); extracting again")
    if before != weights:
        last.parent.mkdir(parents=True, exist_ok=True)
        last.write_text(weights + "\n")
    return folder


def supply_brought(req: RunRequest, plan: Plan, resolved: Resolved) -> tuple[str, ModelSpec, Backbone, dict]:
    """The user's model (``--model``, the Python API) as the run's backbone, evaluated as it is."""
    brought = resolved.brought
    spec = ModelSpec(
        brought.name,
        plan.trained_on,
        plan.id_train.shape,
        plan.id_train.num_classes,
        default_config({}),
        classes=plan.classes,
        pretrained=True,  # trained elsewhere: its ID accuracy is reported, with a warning near chance
        weights=brought.content_hash(),
    )
    model = brought.build(spec.input_shape, spec.num_classes)
    layer_check(resolved.detectors, brought.name)(model)
    say(f"evaluating {brought.name} as it is ({brought.facts['kind']}; layers: {', '.join(model.feature_layers)})")
    facts = {"source": "brought", **brought.facts, "hash": brought.content_hash()}
    return brought.name, spec, model.to(resolved.device).eval(), facts


def supply_backbone(req: RunRequest, plan: Plan, resolved: Resolved) -> tuple[str, ModelSpec, Backbone, dict]:
    """The run's backbone (name, spec, model, facts): a brought model, ``--checkpoint``, the cache, or trained."""
    if resolved.brought is not None:
        return supply_brought(req, plan, resolved)
    name, spec = backbone_spec(req, plan)
    factory, owner = registries().backbones.get(name), registries().backbones.owner(name)
    check = layer_check(resolved.detectors, name)
    if spec.pretrained and req.checkpoint is None:
        weights = weights_file(name, req.pretrained, req.pretrained_file)
        spec = dataclasses.replace(spec, weights=file_hash(weights) if weights is not None else "")
        data = (plan.id_train, plan.id_test)
        fine_tune = req.epochs is not None
        model, info = pretrained_backbone(spec, factory, weights, data, resolved.device, owner, check, fine_tune)
        return name, spec, model, info
    model, info = load_or_train(
        spec, factory, plan.id_train, plan.id_test, resolved.device, req.checkpoint, owner, check
    )
    return name, spec, model, info


def supply(req: RunRequest, plan: Plan, resolved: Resolved) -> Supplied:
    """Train or load the backbone, build every view and extract the detectors' layers once per split."""
    device = resolved.device
    t0 = time.perf_counter()
    with memory.stage("backbone"):
        name, spec, model, info = supply_backbone(req, plan, resolved)
    if resolved.brought is not None:
        factory, owner = resolved.brought, "the user"
    else:
        factory, owner = registries().backbones.get(name), registries().backbones.owner(name)
    seconds = {"backbone": time.perf_counter() - t0}
    info = {**info, "weights_hash": state_hash(model)}  # content: what the features, scores and records are keyed by
    view = view_factory(req, model, info["weights_hash"], device, resolved.precision, info["hash"])
    id_view = view(plan.id_test)
    id_scored = view(plan.id_scored) if plan.id_scored is not None else id_view
    targets = []
    for t in plan.targets:
        scored = view(t.scored) if t.scored is not None else None
        source = id_view if t.kind == "errors" else scored if t.tuning_source is t.scored else view(t.clean)
        targets.append(TargetViews(source, scored or source))
    layers = sorted({layer for d in resolved.detectors for layer in d.required_layers(model)} | {"logits"})
    t0 = time.perf_counter()
    for v in {id(v): v for v in [id_view, id_scored, *(x for t in targets for x in (t.tune, t.scored))]}.values():
        with memory.stage(f"extract {v.imageset.name}"):
            v.features(layers)  # one pass per split, shared by every detector
    seconds["extract_features"] = time.perf_counter() - t0
    id_acc = accuracy(id_view.logits().cpu().numpy(), plan.id_test.labels.numpy())
    if spec.pretrained:
        report_accuracy(id_acc, spec.num_classes, name)
    provider = ModelProvider(spec, factory, plan.id_train, plan.id_test, device, owner)
    supplies = Supplies(provider, plan.train_out, req.seed)
    train, heldout = view(plan.id_train), view(plan.tune_out) if plan.tune_out is not None else None
    for v in (train, heldout):  # read only by detectors that fit or tune on them: the union, at first use
        if v is not None:
            v.prefetch = frozenset(layers)
    views = (train, id_view, id_scored, tuple(targets), heldout)
    shifted = shifted_accuracy(plan, id_scored)
    return Supplied(name, model, info, spec, supplies, *views, id_acc, seconds, resolved.precision, shifted)
