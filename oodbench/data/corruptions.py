"""Image corruptions in the style of ImageNet-C / CIFAR-10-C (Hendrycks & Dietterich 2019), five
severities each, vectorised over the batch in torch and deterministic given the seed.

Severity constants follow CIFAR-10-C (the 32×32 variant); they act on [0, 1] images of any channel
count and size. Implemented: gaussian_noise, shot_noise, impulse_noise, speckle_noise,
gaussian_blur, defocus_blur, contrast, brightness, pixelate, jpeg_compression, elastic_transform.
Not implemented: motion/zoom/glass blur, fog, frost, snow, spatter, saturate (they need image
assets or per-image loops). ``elastic_transform`` is a Gaussian-smoothed random displacement field,
a simplification of ImageNet-C's affine + elastic recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from oodbench.core.errors import UnknownNameError
from oodbench.data.generated import TransformedImages
from oodbench.data.imageset import ImageSet
from oodbench.data.streams import is_streamed

Corruption = Callable[[torch.Tensor, int, torch.Generator], torch.Tensor]
CORRUPTIONS: dict[str, Corruption] = {}


def corruption(fn: Corruption) -> Corruption:
    CORRUPTIONS[fn.__name__] = fn
    return fn


def _gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    return k / k.sum()


def _blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur, per channel, reflect padding."""
    k = _gaussian_kernel(sigma)
    c = x.shape[1]
    pad = len(k) // 2
    kx = k.view(1, 1, 1, -1).repeat(c, 1, 1, 1)
    ky = k.view(1, 1, -1, 1).repeat(c, 1, 1, 1)
    x = F.conv2d(F.pad(x, (pad, pad, 0, 0), mode="reflect"), kx, groups=c)
    return F.conv2d(F.pad(x, (0, 0, pad, pad), mode="reflect"), ky, groups=c)


@corruption
def gaussian_noise(x, s, g):
    return x + [0.04, 0.06, 0.08, 0.09, 0.10][s - 1] * torch.randn(x.shape, generator=g)


@corruption
def shot_noise(x, s, g):
    lam = [500, 250, 100, 75, 50][s - 1]
    return torch.poisson(x * lam, generator=g) / lam


@corruption
def impulse_noise(x, s, g):
    amount = [0.01, 0.02, 0.03, 0.05, 0.07][s - 1]
    u = torch.rand(x.shape, generator=g)
    x = torch.where(u < amount / 2, torch.zeros_like(x), x)
    return torch.where(u > 1 - amount / 2, torch.ones_like(x), x)


@corruption
def speckle_noise(x, s, g):
    return x + x * [0.06, 0.1, 0.12, 0.16, 0.2][s - 1] * torch.randn(x.shape, generator=g)


@corruption
def gaussian_blur(x, s, g):
    return _blur(x, [0.4, 0.6, 0.7, 0.8, 1.0][s - 1])


@corruption
def defocus_blur(x, s, g):
    radius, alias = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)][s - 1]
    r = max(1, int(round(radius)) + 1)
    yy, xx = torch.meshgrid(torch.arange(-r, r + 1.0), torch.arange(-r, r + 1.0), indexing="ij")
    disk = ((yy**2 + xx**2) <= radius**2 + 1e-6).float()
    disk = disk / disk.sum()
    k2 = _blur(disk[None, None], alias)[0, 0] if alias > 0 else disk
    k2 = k2 / k2.sum()
    c = x.shape[1]
    return F.conv2d(F.pad(x, (r, r, r, r), mode="reflect"), k2.expand(c, 1, -1, -1), groups=c)


@corruption
def contrast(x, s, g):
    c = [0.75, 0.5, 0.4, 0.3, 0.15][s - 1]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * c + mean


@corruption
def brightness(x, s, g):
    return x + [0.05, 0.1, 0.15, 0.2, 0.3][s - 1]


@corruption
def pixelate(x, s, g):
    c = [0.95, 0.9, 0.85, 0.75, 0.65][s - 1]
    h, w = x.shape[2:]
    small = F.interpolate(x, size=(max(1, int(h * c)), max(1, int(w * c))), mode="area")
    return F.interpolate(small, size=(h, w), mode="nearest")


@corruption
def jpeg_compression(x, s, g):
    from torchvision.io import decode_jpeg, encode_jpeg

    quality = [80, 65, 58, 50, 40][s - 1]
    u8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    encoded = encode_jpeg(list(u8), quality=quality)
    decoded = decode_jpeg(encoded)
    return torch.stack(decoded).float() / 255


@corruption
def elastic_transform(x, s, g):
    alpha, sigma = [(0.5, 1.5), (1.0, 1.5), (1.5, 1.5), (2.0, 1.5), (2.5, 1.5)][s - 1]
    n, _, h, w = x.shape
    field = torch.rand((n, 2, h, w), generator=g) * 2 - 1
    field = _blur(field, sigma) * alpha  # pixels
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    grid = torch.stack([xx, yy], dim=-1)[None] + torch.stack(
        [field[:, 0] * 2 / max(1, w - 1), field[:, 1] * 2 / max(1, h - 1)], dim=-1
    )
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=True)


def names() -> list[str]:
    return sorted(CORRUPTIONS)


def corrupt(data: ImageSet, kind: str, severity: int, seed: int = 0, chunk: int = 4096) -> ImageSet:
    """A corrupted copy of ``data`` (``kind`` at ``severity`` 1–5), deterministic given ``seed``."""
    if kind not in CORRUPTIONS:
        raise UnknownNameError("corruption", kind, CORRUPTIONS)
    if severity not in range(1, 6):
        raise ValueError(f"severity must be 1..5, got {severity}")
    mixed = seed * 1000 + severity * 37 + names().index(kind)
    note = f"{kind} severity {severity} (seed {seed})"
    if is_streamed(data.images):  # changed as its batches are produced (issue 31), per-sample seeds
        change = _AtSeverity(CORRUPTIONS[kind], severity)
        images = TransformedImages.of(data.images, change, f"{kind}@{severity}", mixed)
        return data.derive(images, name=f"{kind}@{severity}", note=f"{note}, {images.describe()}")
    g = torch.Generator().manual_seed(mixed)
    parts = []
    for part in data.images.split(chunk):
        y = CORRUPTIONS[kind](part.float() / 255, severity, g)
        parts.append((y.clamp(0, 1) * 255).round().to(torch.uint8))
    return data.derive(torch.cat(parts), name=f"{kind}@{severity}", note=note)


@dataclass(frozen=True)
class _AtSeverity:
    """A corruption at one severity, as :class:`~oodbench.data.generated.TransformedImages` applies it."""

    corruption: Corruption
    severity: int

    def __call__(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        return self.corruption(x, self.severity, g)
