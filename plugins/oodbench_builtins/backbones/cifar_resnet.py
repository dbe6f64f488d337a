"""ResNet-18/34 with the CIFAR stem (3×3 stride-1 first conv, no max-pool) for 32×32 inputs.

The architecture of paper 003's benchmark B (ResNet-34, after Lee et al. 2018) built from
torchvision's ResNet with the stem replaced. Feature layers: stem, layer1–layer4, penultimate, logits.
"""

from __future__ import annotations

from torch import nn

from oodbench import Backbone, BackboneFactory
from oodbench.core.errors import UsageError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def cifar_resnet(depth: int, in_channels: int, num_classes: int) -> nn.Module:
    import torchvision

    net = getattr(torchvision.models, f"resnet{depth}")(num_classes=num_classes)
    net.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Identity()
    return net


class _CifarResNet(BackboneFactory):
    """Trained by default with SGD (Nesterov, momentum 0.9, weight decay 5e-4) and pad-4 crop + flip, as Lee et al.
    2018 train the ResNet-34 of paper 003's benchmark B, but for 30 epochs at batch 512 under a one-cycle schedule
    peaking at lr 0.4 (0.1 at batch 128 scaled linearly): a quarter of the optimiser steps of batch 128, for issue
    12's ≤ 45 s training window on a GPU (docs/gpu.md). ``--train batch_size=128 --train lr=0.1`` and
    ``--train schedule=cosine`` give the batch-128 recipe back."""

    depth = 18
    train_defaults = {
        "optimizer": "sgd",
        "lr": 0.4,
        "momentum": 0.9,
        "weight_decay": 5e-4,
        "epochs": 30,
        "batch_size": 512,
        "schedule": "onecycle",
        "augment": "crop-flip",
    }

    def build(self, input_shape, num_classes, pretrained=False, **options):
        if pretrained:
            raise UsageError(f"{self.name} (CIFAR stem) has no pretrained weights; try torchvision:resnet{self.depth}")
        c = input_shape[0]
        net = cifar_resnet(self.depth, c, num_classes)
        mean = CIFAR_MEAN if c == 3 else (0.5,) * c
        std = CIFAR_STD if c == 3 else (0.5,) * c
        layers = {"stem": "relu", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"}
        return Backbone(net, layers, "fc", mean, std, input_shape, arch=self.name)

    def suits(self, input_shape):
        return tuple(input_shape) == (3, 32, 32) and self.depth == 18


class ResNet18(_CifarResNet):
    name = "resnet18"
    description = "ResNet-18 with CIFAR stem for 32×32 inputs (GPU recommended)"
    depth = 18


class ResNet34(_CifarResNet):
    name = "resnet34"
    description = "ResNet-34 with CIFAR stem (paper 003, benchmark B; GPU recommended)"
    depth = 34
