"""Pretrained backbones evaluated as they are, as OpenOOD v1.5 evaluates ImageNet models (issue 12 item 4).

Weights come from the hub (``--pretrained``) or from a local file: ``--pretrained-file PATH``, or an entry
``backbones: {"timm:resnet50": {pretrained_file: PATH}}`` in ``oodbench.yaml`` that ``--pretrained`` uses
(offline clusters). The factory builds the weights' own head first (``num_classes=None``). When it has as many
classes as the ID dataset, nothing is trained unless ``--epochs N`` asks for fine-tuning. When the class counts
differ, the run is refused in one line that names the ways out. The ID test accuracy is printed afterwards,
with a warning when it is near chance (a class order that does not match the head).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch

from oodbench.core.errors import UsageError, plugin_code
from oodbench.core.progress import say, warn
from oodbench.data.imageset import ImageSet
from oodbench.models.backbones import Backbone, BackboneFactory
from oodbench.models.checkpoints import ModelSpec, file_hash, state_hash, train_cached


def head_size(model: Backbone) -> int:
    """Classes of the model's head (its ``out_features``, else the logits of one forward pass)."""
    out = getattr(model.head, "out_features", None)
    if isinstance(out, int):
        return out
    with torch.inference_mode():
        return int(model.eval()(torch.zeros(1, *model.input_shape)).shape[1])


def _build(factory: BackboneFactory, spec: ModelSpec, classes: int | None, weights: Path | bool, owner: str):
    with plugin_code("backbone", spec.backbone, owner):
        return factory.build(spec.input_shape, classes, pretrained=weights, **dict(spec.options))


def pretrained_backbone(
    spec: ModelSpec,
    factory: BackboneFactory,
    weights: Path | None,
    data: tuple[ImageSet, ImageSet | None],
    device: torch.device,
    owner: str,
    check: Callable[[Backbone], None],
    fine_tune: bool,
) -> tuple[Backbone, dict]:
    """The backbone with pretrained weights (``weights`` = a local file, None = the hub), as it is or fine-tuned
    on ``data`` (train, val) when ``fine_tune`` (an explicit ``--epochs``)."""
    source: Path | bool = weights if weights is not None else True
    origin = f"weights file {weights}" if weights is not None else "hub weights"
    torch.manual_seed(spec.train.seed)
    model = _build(factory, spec, None, source, owner)
    classes = head_size(model)
    if classes != spec.num_classes:
        if not fine_tune:
            raise UsageError(
                f"{spec.backbone}'s {origin} have a {classes}-class head but {spec.dataset} has {spec.num_classes} "
                f"classes: fine-tune a new {spec.num_classes}-class head with --epochs N, or choose weights whose "
                "head matches the ID classes"
            )
        say(f"{origin}: replacing the {classes}-class head with a new {spec.num_classes}-class one to fine-tune")
        model = _build(factory, spec, spec.num_classes, source, owner)
    check(model)
    facts = {"weights": str(weights) if weights is not None else "hub"}
    facts["weights_hash"] = file_hash(weights) if weights is not None else state_hash(model)
    if not fine_tune:
        say(f"{spec.backbone} with {origin}, evaluated as it is (no training; --epochs N fine-tunes)")
        info = {"source": "pretrained", "path": facts["weights"], "hash": facts["weights_hash"]}
        return model.to(device).eval(), info
    identity = json.loads(json.dumps(spec.identity(), default=str))
    train, val = data
    what = f"{spec.backbone} from {origin} on {spec.dataset} (fine-tuning)"
    model, info = train_cached(
        spec.path(),
        spec.key(),
        identity,
        model,
        train,
        spec.train,
        device,
        what,
        val=val,
        val_name=f"{spec.dataset} test",
    )
    return model, {**info, **facts}


def report_accuracy(accuracy: float, num_classes: int, backbone: str) -> None:
    """The ID test accuracy of pretrained weights; near chance (< 2× chance) is a one-line warning."""
    whose = f"{backbone} (brought, as it is)" if backbone.startswith("model:") else f"{backbone}'s pretrained weights"
    say(f"ID test accuracy of {whose}: {accuracy:.1f} %")
    if accuracy < 200.0 / max(num_classes, 2):
        warn(
            f"ID test accuracy {accuracy:.1f} % is near chance ({100 / num_classes:.1f} %): the ID labels' class order "
            "may not match the weights' head (scores that use the logits mean little then)"
        )
