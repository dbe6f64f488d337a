"""``torchvision:NAME`` — any torchvision classification model, feature layers from its top-level stages."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from oodbench import Backbone, BackboneFactory
from oodbench.core.errors import UnknownNameError, UsageError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _set_module(net: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, leaf = path.rpartition(".")
    setattr(net.get_submodule(parent) if parent else net, leaf, module)


def stage_layers(net: nn.Module, head: str) -> dict[str, str]:
    """Named stages: children of ``features`` (VGG, MobileNet, EfficientNet) or the top-level
    children with parameters (ResNet: conv1 … layer4), excluding the head."""
    features = getattr(net, "features", None)
    if isinstance(features, nn.Sequential):
        return {f"features_{name}": f"features.{name}" for name, _ in features.named_children()}
    head_root = head.split(".")[0]
    return {
        name: name
        for name, child in net.named_children()
        if name != head_root and any(True for _ in child.parameters()) and not isinstance(child, nn.BatchNorm2d)
    }


def _from_file(model_name: str, path: Path) -> nn.Module:
    """A torchvision model with the weights of a state-dict file, its head sized as the file's."""
    import torch
    import torchvision

    from oodbench.core.errors import CorruptFileError

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    except Exception as exc:  # noqa: BLE001 - any decoding error: not a (complete) weights file
        raise CorruptFileError("pretrained weights file", path, exc, "pass a torch.save(state_dict) file") from None
    probe = torchvision.models.get_model(model_name, weights=None)
    head = [name for name, m in probe.named_modules() if isinstance(m, nn.Linear)][-1]
    classes = state[f"{head}.weight"].shape[0] if f"{head}.weight" in state else 1000
    net = torchvision.models.get_model(model_name, weights=None, num_classes=classes)
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"weights file {str(path)!r} does not fit torchvision:{model_name}: {first}") from None
    return net


class TorchvisionModel(BackboneFactory):
    train_defaults = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "epochs": 10}

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.name = f"torchvision:{model_name}"
        self.description = f"torchvision model {model_name}"

    def build(self, input_shape, num_classes, pretrained=False, **options):
        """``pretrained``: False, True (torchvision's DEFAULT hub weights) or a local state-dict file.
        ``num_classes=None`` with weights keeps the weights' own head; another count gets a new head."""
        import torchvision

        if isinstance(pretrained, (str, Path)):
            net = _from_file(self.model_name, Path(pretrained))
        elif pretrained:
            net = torchvision.models.get_model(self.model_name, weights="DEFAULT")
        else:
            net = torchvision.models.get_model(self.model_name, weights=None, num_classes=num_classes)
        head = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
        old = net.get_submodule(head)
        if num_classes is not None and old.out_features != num_classes:
            _set_module(net, head, nn.Linear(old.in_features, num_classes))
        if input_shape[0] != 3:
            raise UsageError(f"{self.name} expects 3-channel input; the ID data has {input_shape[0]}")
        return Backbone(net, stage_layers(net, head), head, IMAGENET_MEAN, IMAGENET_STD, input_shape, arch=self.name)


class TorchvisionPrefix(BackboneFactory):
    name = "torchvision:"
    description = "any torchvision classifier: torchvision:NAME (e.g. torchvision:resnet18); --pretrained for weights"

    def resolve(self, model_name: str) -> TorchvisionModel:
        import torchvision

        names = torchvision.models.list_models(module=torchvision.models)
        if model_name not in names:
            raise UnknownNameError("backbone", f"torchvision:{model_name}", [f"torchvision:{n}" for n in names])
        return TorchvisionModel(model_name)

    def build(self, input_shape, num_classes, pretrained=False, **options):  # pragma: no cover - prefix only
        raise UsageError("name a torchvision model: torchvision:NAME")
