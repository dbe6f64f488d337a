"""Backbones: classifiers with named feature layers, read in one forward pass.

A :class:`Backbone` wraps any ``nn.Module`` classifier. It normalises ``[0, 1]`` input
itself, returns logits from ``forward``, and ``forward_features(x, layers)`` returns the
logits plus the named intermediate outputs captured by forward hooks in the same pass
(timm's ``forward_intermediates`` idea, generalised to any module tree) — or, for a compiled model
(``torch.export``, TorchScript), by the graph taps of :mod:`oodbench.models.taps`. Convolutional
maps are reduced to per-channel means (Lee et al. 2018's convention, used by Mahalanobis
and FSSD) unless ``pool=False``. ``"penultimate"`` is the input of the classifier head.
"""

from __future__ import annotations

import difflib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import torch
from torch import nn

LOGITS = "logits"
PENULTIMATE = "penultimate"


def pool_feature(t: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → N×C (channel mean); token maps N×L×D → N×D (mean); N×D unchanged."""
    if t.ndim == 4:
        return t.mean(dim=(2, 3))
    if t.ndim == 3:
        return t.mean(dim=1)
    return t.flatten(1)


class Backbone(nn.Module):
    """A classifier with input normalisation and named feature layers.

    Args:
        net: the classifier (``net(x) -> logits``).
        layers: feature name → dotted module path inside ``net`` whose *output* is the feature,
            ordered shallow to deep. ``"penultimate"`` and ``"logits"`` are always available.
        head: dotted path of the final classifier module (its input is ``"penultimate"``).
        mean, std: per-channel normalisation applied to ``[0, 1]`` inputs.
        input_shape: C×H×W the network expects.
        data_config: how the network's own evaluation preprocessing resizes and crops (timm's
            ``resolve_data_config``: ``crop_pct``, ``interpolation``, ``crop_mode``); applied to streamed
            image sets (:mod:`oodbench.data.streams`), None = the ImageNet convention.
    """

    def __init__(
        self,
        net: nn.Module,
        layers: dict[str, str],
        head: str,
        mean: Sequence[float],
        std: Sequence[float],
        input_shape: tuple[int, int, int],
        arch: str = "",
        data_config: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.data_config = dict(data_config or {})
        self.net = net
        self.layer_paths = dict(layers)
        self.head_path = head
        self.input_shape = tuple(input_shape)
        self.arch = arch
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        known = net.tap_paths() if hasattr(net, "tap_paths") else [n for n, _ in net.named_modules() if n]
        for path in [*self.layer_paths.values(), head]:
            if path not in known:
                close = difflib.get_close_matches(path, known, n=3, cutoff=0.5)
                hint = f"closest: {', '.join(close)}" if close else f"it has: {', '.join(known[:12])}"
                raise ValueError(f"{arch}: no module {path!r} in the network; {hint}")

    @property
    def head(self) -> nn.Module:
        """The final classifier module: ``head(features["penultimate"]) == logits``."""
        return self.net.get_submodule(self.head_path)

    def dropout_modules(self) -> list[nn.Module]:
        return [m for m in self.net.modules() if isinstance(m, (nn.Dropout, nn.Dropout2d))]

    @property
    def feature_layers(self) -> list[str]:
        """All feature names, shallow to deep, ending with penultimate and logits."""
        return [*self.layer_paths, PENULTIMATE, LOGITS]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)

    def forward_features(
        self, x: torch.Tensor, layers: Sequence[str] | None = None, pool: bool = True
    ) -> dict[str, torch.Tensor]:
        """One forward pass → ``{name: feature}`` for ``layers`` (default: all) plus ``"logits"``."""
        wanted = list(self.feature_layers if layers is None else layers)
        unknown = [n for n in wanted if n not in self.feature_layers]
        if unknown:
            raise KeyError(f"{self.arch}: unknown feature layer(s) {unknown}; available: {self.feature_layers}")
        if hasattr(self.net, "forward_taps"):  # a compiled model (oodbench.models.taps): no hooks reach inside
            captured = self._tapped((x - self.mean) / self.std, wanted)
        else:
            captured = self._hooked(x, wanted)
        if pool:
            captured = {k: pool_feature(v) for k, v in captured.items()}
        return {k: captured[k] for k in [*wanted, LOGITS] if k in captured}

    def _tapped(self, x: torch.Tensor, wanted: Sequence[str]) -> dict[str, torch.Tensor]:
        outputs = [self.layer_paths[n] for n in wanted if n in self.layer_paths]
        inputs = [self.head_path] if PENULTIMATE in wanted else []
        logits, outs, ins = self.net.forward_taps(x, outputs, inputs)
        by_path = {path: name for name, path in self.layer_paths.items() if name in wanted}
        captured = {by_path[p]: v for p, v in outs.items()}
        if inputs:
            captured[PENULTIMATE] = ins[self.head_path]
        captured[LOGITS] = logits
        return captured

    def _hooked(self, x: torch.Tensor, wanted: Sequence[str]) -> dict[str, torch.Tensor]:
        modules = dict(self.net.named_modules())
        captured: dict[str, torch.Tensor] = {}
        handles = []
        for name in wanted:
            if name in self.layer_paths:
                handles.append(
                    modules[self.layer_paths[name]].register_forward_hook(
                        lambda m, i, o, name=name: captured.__setitem__(name, o)
                    )
                )
        if PENULTIMATE in wanted:
            handles.append(
                modules[self.head_path].register_forward_hook(lambda m, i, o: captured.__setitem__(PENULTIMATE, i[0]))
            )
        try:
            logits = self(x)
        finally:
            for h in handles:
                h.remove()
        captured[LOGITS] = logits
        return captured


class BackboneFactory(ABC):
    """A named way to build a :class:`Backbone` for a given input shape and class count."""

    name: str = ""
    description: str = ""

    #: the C×H×W it is built for, if it has one (``oodbench layers`` probes it there without ``--shape``)
    input_shape: ClassVar[tuple[int, int, int] | None] = None
    #: build options this factory understands (e.g. {"dropout"}); they are part of the cache key
    options: frozenset[str] = frozenset()
    #: how this architecture trains by default: keys are :class:`~oodbench.models.train.TrainConfig` fields
    #: (e.g. {"optimizer": "sgd", "lr": 0.1}); unset fields keep TrainConfig's defaults
    train_defaults: ClassVar[dict[str, Any]] = {}

    @abstractmethod
    def build(
        self, input_shape: tuple[int, int, int], num_classes: int, pretrained: bool = False, **options
    ) -> Backbone: ...

    def suits(self, input_shape: tuple[int, int, int]) -> bool:
        """Whether this backbone is a sensible default for inputs of this shape."""
        return False

    def __repr__(self) -> str:
        return f"<BackboneFactory {self.name}>"
