"""``timm:NAME`` — any timm model (``timm.create_model``), feature layers from ``feature_info``."""

from __future__ import annotations

from oodbench import Backbone, BackboneFactory
from oodbench.errors import UsageError


def module_path(net, target) -> str:
    for path, module in net.named_modules():
        if module is target:
            return path
    raise ValueError("classifier module not found in the network")


class TimmModel(BackboneFactory):
    train_defaults = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "epochs": 10}

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.name = f"timm:{model_name}"
        self.description = f"timm model {model_name}"

    def build(self, input_shape, num_classes, pretrained=False, **options):
        import timm

        try:
            net = timm.create_model(
                self.model_name, pretrained=pretrained, num_classes=num_classes, in_chans=input_shape[0]
            )
        except RuntimeError as exc:
            raise UsageError(f"timm cannot create {self.model_name!r}: {str(exc).splitlines()[0]}") from None
        info = getattr(net, "feature_info", None) or []
        layers = {}
        for i, item in enumerate(info):
            module = item.get("module") if isinstance(item, dict) else None
            if module:
                layers[module.replace(".", "_") or f"stage{i}"] = module
        head = module_path(net, net.get_classifier())
        cfg = getattr(net, "pretrained_cfg", {}) or {}
        mean = list(cfg.get("mean", (0.5,) * input_shape[0]))[: input_shape[0]]
        std = list(cfg.get("std", (0.5,) * input_shape[0]))[: input_shape[0]]
        if len(mean) != input_shape[0]:
            mean, std = [0.5] * input_shape[0], [0.5] * input_shape[0]
        from timm.data import resolve_data_config

        data_config = resolve_data_config({"input_size": tuple(input_shape)}, model=net)
        return Backbone(net, layers, head, mean, std, input_shape, arch=self.name, data_config=data_config)


class TimmPrefix(BackboneFactory):
    name = "timm:"
    description = "any timm model: timm:NAME (e.g. timm:resnet18, timm:test_vit); --pretrained loads hub weights"

    def resolve(self, model_name: str) -> TimmModel:
        import timm

        if model_name not in timm.list_models(model_name):
            from oodbench.errors import UnknownNameError

            raise UnknownNameError("backbone", f"timm:{model_name}", [f"timm:{m}" for m in timm.list_models()])
        return TimmModel(model_name)

    def build(self, input_shape, num_classes, pretrained=False, **options):  # pragma: no cover - prefix only
        raise UsageError("name a timm model: timm:NAME")
