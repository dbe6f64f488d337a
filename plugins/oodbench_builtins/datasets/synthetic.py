"""Synthetic and derived OOD sets of SPEC.md, shaped like the ID data and seeded."""

from __future__ import annotations

import torch

from oodbench import Dataset, ImageSet
from oodbench.data import LoadContext, require_split
from oodbench.errors import UsageError


class _Synthetic(Dataset):
    splits = ("test",)
    synthetic = True

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        require_split(self, split)
        if ctx.shape is None:
            raise UsageError(f"{self.name} takes its image shape from the ID dataset; it cannot be loaded alone")
        g = torch.Generator().manual_seed(ctx.seed + 7919)
        pixels = self.sample((ctx.size, *ctx.shape), g).clamp(0, 1)
        images = (pixels * 255).round().to(torch.uint8)
        note = f"{self.name}: {ctx.size} samples of shape {tuple(ctx.shape)}, seed {ctx.seed}"
        return ImageSet(images, torch.full((ctx.size,), -1, dtype=torch.long), self.name, (), (note,))

    def sample(self, shape, g: torch.Generator) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


class Gaussian(_Synthetic):
    name = "gaussian"
    description = "N(0.5, 1) noise clipped to [0, 1] (paper 004), ID-shaped"

    def sample(self, shape, g):
        return 0.5 + torch.randn(shape, generator=g)


class Uniform(_Synthetic):
    name = "uniform"
    description = "U[0, 1] noise, ID-shaped"

    def sample(self, shape, g):
        return torch.rand(shape, generator=g)


class Constant(_Synthetic):
    name = "constant"
    description = "constant images: every pixel (all channels) one value in {0..255}/255 (paper 002)"

    def sample(self, shape, g):
        values = torch.randint(0, 256, (shape[0], 1, 1, 1), generator=g).float() / 255
        return values.expand(shape).clone()


class GreyscaleDerived(Dataset):
    """Test split of another dataset, converted to greyscale 28×28 (``cifar10bw``)."""

    splits = ("test",)

    def __init__(self, name: str, source: str, description: str):
        self.name, self.source, self.description = name, source, description

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        from oodbench.plugins import registries

        require_split(self, split)
        src = registries().datasets.get(self.source).load("test", ctx)
        out = src.to_format((1, 28, 28))
        return ImageSet(out.images, out.labels, self.name, out.classes, out.notes)
