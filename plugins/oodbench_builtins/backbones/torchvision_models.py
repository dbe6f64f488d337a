"""``torchvision:NAME`` — any torchvision classification model, feature layers from its top-level stages."""

from __future__ import annotations

from torch import nn

from oodbench import Backbone, BackboneFactory
from oodbench.errors import UnknownNameError, UsageError

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


class TorchvisionModel(BackboneFactory):
    train_defaults = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "epochs": 10}

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.name = f"torchvision:{model_name}"
        self.description = f"torchvision model {model_name}"

    def build(self, input_shape, num_classes, pretrained=False, **options):
        import torchvision

        if pretrained:
            net = torchvision.models.get_model(self.model_name, weights="DEFAULT")
        else:
            net = torchvision.models.get_model(self.model_name, weights=None, num_classes=num_classes)
        head = [name for name, m in net.named_modules() if isinstance(m, nn.Linear)][-1]
        old = net.get_submodule(head)
        if old.out_features != num_classes:
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
