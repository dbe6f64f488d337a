"""Synthetic and derived OOD sets of SPEC.md, shaped like the ID data and seeded."""

from __future__ import annotations

import dataclasses

import torch

from oodbench import Dataset, ImageSet
from oodbench.core.errors import UsageError
from oodbench.data.imageset import LoadContext, require_split
from oodbench.data.provenance import Provenance


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
        origin = Provenance.origin(f"{self.name}/seed={ctx.seed}/{'×'.join(map(str, ctx.shape))}", ctx.size)
        return ImageSet(images, torch.full((ctx.size,), -1, dtype=torch.long), self.name, (), (note,), origin)

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
        from oodbench.pipeline.planning import load_split
        from oodbench.plugins.manager import registries

        require_split(self, split)
        src = load_split(registries().datasets.get(self.source), "test", ctx)
        out = src.to_format((1, 28, 28))  # a per-sample copy (ImageSet.derive): the source's provenance kept
        return out.derive(out.images, name=self.name)


class PerturbedID(Dataset):
    """ID *training* images made OOD: each image cut into a 4×4 grid of patches shuffled by a seeded
    permutation, plus Gaussian pixel noise (σ = 0.1). Low-level statistics stay ID-like, semantics go.
    A ``--tune heldout`` source that needs no second dataset; no evaluated sample is ever used."""

    name = "perturbed-id"
    description = "ID training images with shuffled 4×4 patches + noise (a heldout tuning source)"
    splits = ("test",)
    synthetic = True

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        from oodbench.pipeline.planning import load_split
        from oodbench.plugins.manager import registries

        require_split(self, split)
        if ctx.id_name is None:
            raise UsageError("perturbed-id is derived from the run's ID dataset; use it as --tune-out")
        src = load_split(registries().datasets.get(ctx.id_name), "train", ctx).head(ctx.size, ctx.seed + 17)
        x = src.images.float() / 255
        n, c, h, w = x.shape
        g = torch.Generator().manual_seed(ctx.seed + 31)
        ph, pw = h // 4, w // 4
        core = (
            x[:, :, : ph * 4, : pw * 4].reshape(n, c, 4, ph, 4, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, 16, c, ph, pw)
        )
        perm = torch.stack([torch.randperm(16, generator=g) for _ in range(n)])
        core = core[torch.arange(n)[:, None], perm]
        x = x.clone()
        x[:, :, : ph * 4, : pw * 4] = (
            core.reshape(n, 4, 4, c, ph, pw).permute(0, 3, 1, 4, 2, 5).reshape(n, c, ph * 4, pw * 4)
        )
        x = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
        note = f"perturbed-id: {n} {ctx.id_name} train images, 4×4 patch shuffle + N(0, 0.1²) noise, seed {ctx.seed}"
        images, labels = (x * 255).round().to(torch.uint8), torch.full((n,), -1, dtype=torch.long)
        return dataclasses.replace(src.derive(images, name=self.name, labels=labels), classes=(), notes=(note,))
