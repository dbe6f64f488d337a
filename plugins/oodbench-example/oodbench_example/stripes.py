"""``example-stripes``: a dataset generated in code (no files), seeded and deterministic.

Each image is a sinusoidal grating; its class is the stripes' orientation (horizontal, vertical,
diagonal, anti-diagonal). Frequency, phase, contrast, tint and pixel noise vary per image. The shape
is ``ctx.shape`` when the run asks for one (as an OOD set it takes the ID set's shape), else 1×28×28;
each split has ``ctx.size`` images, and train and test are drawn from different seeds.
"""

from __future__ import annotations

import math

import torch

from oodbench import Dataset, ImageSet, LoadContext
from oodbench.data import require_split

ANGLES = {"horizontal": 90.0, "vertical": 0.0, "diagonal": 45.0, "anti-diagonal": 135.0}


class Stripes(Dataset):
    name = "example-stripes"
    description = "sinusoidal stripes, 4 orientation classes, generated in code (example third-party plugin)"
    splits = ("train", "test")
    synthetic = True  # honours ctx.shape and ctx.size (oodbench.testing.check_dataset checks that)

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)  # UsageError for a split this dataset does not have
        c, h, w = ctx.shape or (1, 28, 28)
        n = ctx.size
        g = torch.Generator().manual_seed(1000 * ctx.seed + self.splits.index(split))
        labels = torch.randint(0, len(ANGLES), (n,), generator=g)
        theta = torch.tensor([math.radians(a) for a in ANGLES.values()])[labels]
        cycles = 2 + 4 * torch.rand(n, generator=g)  # stripes across the image
        phase = 2 * math.pi * torch.rand(n, generator=g)
        contrast = 0.5 + 0.5 * torch.rand(n, generator=g)
        yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
        along = xx[None] * theta.cos()[:, None, None] + yy[None] * theta.sin()[:, None, None]
        wave = torch.sin(2 * math.pi * cycles[:, None, None] * along + phase[:, None, None])
        grey = 0.5 + 0.45 * contrast[:, None, None] * wave  # N×H×W in [0.05, 0.95]
        tint = 0.6 + 0.4 * torch.rand(n, c, 1, 1, generator=g) if c > 1 else torch.ones(n, 1, 1, 1)
        pixels = grey[:, None] * tint + 0.03 * torch.randn(n, c, h, w, generator=g)
        images = (pixels.clamp(0, 1) * 255).round().to(torch.uint8)
        note = f"{self.name} {split}: {n} generated images of {c}×{h}×{w}, seed {ctx.seed}"
        return ImageSet(images, labels, self.name, tuple(ANGLES), (note,))
