"""LeNet-5 for 28×28 greyscale inputs: the network of paper 003's benchmark A (FMNIST vs MNIST).

conv(1→6, 5×5) → ReLU → max-pool 2 → conv(6→16, 5×5) → ReLU → max-pool 2 → fc 256→120 → ReLU
→ fc 120→84 → ReLU → fc 84→classes. Feature layers: conv1, conv2, fc1, penultimate (fc2), logits.

Build option ``dropout`` (rate p) with ``dropout_at`` placing it (MC Dropout, paper 003 "MCD"):
``"conv-blocks"`` (default) after each convolution block (Ovadia et al. 2019); ``"layer-inputs"`` on the
input of every weight layer — the image, both conv blocks' outputs and both hidden fc outputs — as paper
003's official dropout LeNet places it (dropout before each of its conv and linear layers).
"""

from __future__ import annotations

from torch import nn

from oodbench import Backbone, BackboneFactory
from oodbench.core.errors import UsageError

DROPOUT_AT = ("conv-blocks", "layer-inputs")


class LeNet(nn.Module):
    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        size: int = 28,
        dropout: float = 0.0,
        dropout_at: str = "conv-blocks",
    ):
        super().__init__()
        if dropout_at not in DROPOUT_AT:
            raise ValueError(f"lenet: dropout_at must be one of {list(DROPOUT_AT)}, got {dropout_at!r}")
        flat = 16 * (((size - 4) // 2 - 4) // 2) ** 2
        every = dropout_at == "layer-inputs" and dropout > 0
        # dropout modules hold no weights: the state-dict keys are the same for every placement
        self.drop_in = nn.Dropout(dropout) if every else nn.Identity()

        def tail() -> list[nn.Module]:
            return [nn.Dropout(dropout)] if every else []

        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(flat, 120), nn.ReLU(), *tail())
        self.fc2 = nn.Sequential(nn.Linear(120, 84), nn.ReLU(), *tail())
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        return self.fc3(self.fc2(self.fc1(self.conv2(self.conv1(self.drop_in(x))))))


class LeNetFactory(BackboneFactory):
    name = "lenet"
    description = "LeNet-5 for 28×28 inputs (paper 003, benchmark A); trains in seconds on CPU"
    train_defaults = {"optimizer": "adam", "lr": 1e-3, "epochs": 10, "batch_size": 128}

    options = frozenset({"dropout", "dropout_at"})

    def build(self, input_shape, num_classes, pretrained=False, dropout: float = 0.0, dropout_at: str = "conv-blocks"):
        if pretrained:
            raise UsageError("lenet has no pretrained weights (--pretrained, --pretrained-file); it trains")
        c, h, w = input_shape
        if h != w or h < 16:
            raise ValueError(f"lenet needs square inputs of at least 16×16, got {h}×{w}")
        net = LeNet(c, num_classes, h, dropout, dropout_at)
        mean, std = ([0.5] * c, [0.5] * c)
        arch = "lenet"
        if dropout:
            arch += f"(dropout={dropout})" if dropout_at == "conv-blocks" else f"(dropout={dropout}, at={dropout_at})"
        return Backbone(net, {"conv1": "conv1", "conv2": "conv2", "fc1": "fc1"}, "fc3", mean, std, input_shape, arch)

    def suits(self, input_shape):
        return tuple(input_shape) == (1, 28, 28)
