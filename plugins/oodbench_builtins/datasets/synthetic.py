"""Synthetic and derived OOD sets of SPEC.md, shaped like the ID data and seeded."""

from __future__ import annotations

import dataclasses
import math

import torch

from oodbench import Dataset, ImageSet
from oodbench.core.errors import UsageError
from oodbench.data.generated import GeneratedImages, TransformedImages, quantised
from oodbench.data.imageset import LoadContext, require_split
from oodbench.data.provenance import Provenance
from oodbench.data.streams import is_streamed

from .streamed import stream_above


class _Synthetic(Dataset):
    splits = ("test",)
    synthetic = True

    def load(self, split: str, ctx: LoadContext) -> ImageSet:
        """``ctx.size`` images of the ID shape ``ctx.shape``: drawn per sample in batches
        (:mod:`oodbench.data.generated`) when the ID streams or the set whole would be over the streaming threshold,
        else drawn whole in one call."""
        require_split(self, split)
        if ctx.shape is None:
            raise UsageError(f"{self.name} takes its image shape from the ID dataset; it cannot be loaded alone")
        seed, size, shape = ctx.seed + 7919, ctx.size, tuple(ctx.shape)
        if ctx.stream or size * math.prod(shape) > stream_above():
            images = GeneratedImages.of(self.sample, self.name, seed, size, shape)
            how = images.describe()
        else:  # the records of small sets (MNIST, CIFAR) keep the values of one seeded call
            g = torch.Generator().manual_seed(seed)
            images, how = quantised(self.sample((size, *shape), g)), f"seed {ctx.seed}"
        note = f"{self.name}: {size} samples of shape {shape}, {how}"
        origin = Provenance.origin(f"{self.name}/seed={ctx.seed}/{'×'.join(map(str, shape))}", size)
        return ImageSet(images, torch.full((size,), -1, dtype=torch.long), self.name, (), (note,), origin)

    def sample(self, shape, g: torch.Generator) -> torch.Tensor:  # pragma: no cover - abstract
        """Float pixels of ``shape`` (unclamped; a new tensor the caller may change in place)."""
        raise NotImplementedError


class Gaussian(_Synthetic):
    name = "gaussian"
    description = "N(0.5, 1) noise clipped to [0, 1] (paper 004), ID-shaped"

    def sample(self, shape, g):
        return torch.randn(shape, generator=g).add_(0.5)


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


def shuffle_patches(x: torch.Tensor, perm: torch.Tensor) -> torch.Tensor:
    """``x`` (float N×C×H×W) with its 4×4 grid of patches reordered per sample by ``perm`` (N×16); a remainder
    row or column of pixels (H, W not divisible by 4) stays where it is."""
    n, c, h, w = x.shape
    ph, pw = h // 4, w // 4
    core = x[:, :, : ph * 4, : pw * 4].reshape(n, c, 4, ph, 4, pw).permute(0, 2, 4, 1, 3, 5).reshape(n, 16, c, ph, pw)
    core = core[torch.arange(n)[:, None], perm]
    x = x.clone()
    back = core.reshape(n, 4, 4, c, ph, pw).permute(0, 3, 1, 4, 2, 5)
    x[:, :, : ph * 4, : pw * 4] = back.reshape(n, c, ph * 4, pw * 4)
    return x


def perturb_one(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One sample (1×C×H×W) of :class:`PerturbedID` from its own generator (the streamed path)."""
    x = shuffle_patches(x, torch.randperm(16, generator=g)[None])
    return x + 0.1 * torch.randn(x.shape, generator=g)


class PerturbedID(Dataset):
    """ID *training* images made OOD: each image cut into a 4×4 grid of patches shuffled by a seeded
    permutation, plus Gaussian pixel noise (σ = 0.1). Low-level statistics stay ID-like, semantics go.
    A ``--tune heldout`` source that needs no second dataset; no evaluated sample is ever used.
    A streamed ID gives a streamed set, each sample changed as its batch is decoded (:func:`perturb_one`)."""

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
        n = len(src)
        note = f"perturbed-id: {n} {ctx.id_name} train images, 4×4 patch shuffle + N(0, 0.1²) noise, seed {ctx.seed}"
        labels = torch.full((n,), -1, dtype=torch.long)
        if is_streamed(src.images):
            images = TransformedImages.of(src.images, perturb_one, "perturbed-id", ctx.seed + 31)
            out = src.derive(images, name=self.name, labels=labels)
            return dataclasses.replace(out, classes=(), notes=(f"{note}, {images.describe()}",))
        g = torch.Generator().manual_seed(ctx.seed + 31)
        perm = torch.stack([torch.randperm(16, generator=g) for _ in range(n)])
        x = shuffle_patches(src.images.float() / 255, perm)
        images = quantised(x.add_(0.1 * torch.randn(x.shape, generator=g)))
        return dataclasses.replace(src.derive(images, name=self.name, labels=labels), classes=(), notes=(note,))
