"""LeNet-5 for 28×28 greyscale inputs: the network of paper 003's benchmark A (FMNIST vs MNIST).

conv(1→6, 5×5) → ReLU → max-pool 2 → conv(6→16, 5×5) → ReLU → max-pool 2 → fc 256→120 → ReLU
→ fc 120→84 → ReLU → fc 84→classes. Feature layers: conv1, conv2, fc1, penultimate (fc2), logits.
"""

from __future__ import annotations

from torch import nn

from oodbench import Backbone, BackboneFactory


class LeNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, size: int = 28, dropout: float = 0.0):
        super().__init__()
        flat = 16 * (((size - 4) // 2 - 4) // 2) ** 2
        # dropout after each convolution block (Ovadia et al. 2019, as paper 003's MCD does); p=0 → identity
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout))
        self.conv2 = nn.Sequential(nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(dropout))
        self.fc1 = nn.Sequential(nn.Flatten(), nn.Linear(flat, 120), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Linear(120, 84), nn.ReLU())
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x):
        return self.fc3(self.fc2(self.fc1(self.conv2(self.conv1(x)))))


class LeNetFactory(BackboneFactory):
    name = "lenet"
    description = "LeNet-5 for 28×28 inputs (paper 003, benchmark A); trains in seconds on CPU"
    train_defaults = {"optimizer": "adam", "lr": 1e-3, "epochs": 10, "batch_size": 128}

    options = frozenset({"dropout"})

    def build(self, input_shape, num_classes, pretrained=False, dropout: float = 0.0):
        if pretrained:
            raise ValueError("lenet has no pretrained weights")
        c, h, w = input_shape
        if h != w or h < 16:
            raise ValueError(f"lenet needs square inputs of at least 16×16, got {h}×{w}")
        net = LeNet(c, num_classes, h, dropout)
        mean, std = ([0.5] * c, [0.5] * c)
        return Backbone(
            net,
            {"conv1": "conv1", "conv2": "conv2", "fc1": "fc1"},
            "fc3",
            mean,
            std,
            input_shape,
            arch="lenet" if not dropout else f"lenet(dropout={dropout})",
        )

    def suits(self, input_shape):
        return tuple(input_shape) == (1, 28, 28)
