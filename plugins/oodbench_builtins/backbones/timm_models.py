"""``timm:NAME`` — any timm model (``timm.create_model``), feature layers from ``feature_info``."""

from __future__ import annotations

from pathlib import Path

from oodbench import Backbone, BackboneFactory
from oodbench.core.errors import UsageError


def module_path(net, target) -> str:
    for path, module in net.named_modules():
        if module is target:
            return path
    raise ValueError("classifier module not found in the network")


def file_head_size(model_name: str, path: Path) -> int | None:
    """Classes of the head in a weights file (its classifier's weight rows; the classifier named by timm's
    pretrained config); None when the file has no such tensor. A file that cannot be read is one line."""
    import timm

    from oodbench.core.errors import CorruptFileError

    try:
        state = timm.models.load_state_dict(str(path))
    except Exception as exc:  # noqa: BLE001 - any decoding error: not a (complete) weights file
        raise CorruptFileError("pretrained weights file", path, exc, "pass a state dict or .safetensors file") from None
    cfg = timm.models.get_pretrained_cfg(model_name)
    weight = state.get(f"{cfg.classifier}.weight") if cfg is not None and cfg.classifier else None
    return int(weight.shape[0]) if weight is not None else None


class TimmModel(BackboneFactory):
    train_defaults = {"optimizer": "sgd", "lr": 0.05, "weight_decay": 5e-4, "epochs": 10}

    def __init__(self, model_name: str):
        self.model_name = model_name
        self.name = f"timm:{model_name}"
        self.description = f"timm model {model_name}"

    def build(self, input_shape, num_classes, pretrained=False, **options):
        """``pretrained``: False, True (hub weights) or a local weights file, loaded by timm itself
        (``pretrained_cfg_overlay=dict(file=…)``: state dicts and safetensors, timm's checkpoint filters).
        ``num_classes=None`` with weights keeps the weights' own head; another count gets a new head."""
        import timm

        kwargs = {"num_classes": num_classes} if num_classes is not None else {}
        if isinstance(pretrained, (str, Path)):
            classes = file_head_size(self.model_name, Path(pretrained))
            overlay = {"file": str(pretrained), **({"num_classes": classes} if classes else {})}
            kwargs = {"pretrained_cfg_overlay": overlay, "num_classes": num_classes or classes, **kwargs}
            kwargs = {k: v for k, v in kwargs.items() if v is not None}
        try:
            net = timm.create_model(self.model_name, pretrained=bool(pretrained), in_chans=input_shape[0], **kwargs)
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
            from oodbench.core.errors import UnknownNameError

            raise UnknownNameError("backbone", f"timm:{model_name}", [f"timm:{m}" for m in timm.list_models()])
        return TimmModel(model_name)

    def build(self, input_shape, num_classes, pretrained=False, **options):  # pragma: no cover - prefix only
        raise UsageError("name a timm model: timm:NAME")
