"""Training-time augmentation on the model's device (vectorised, seeded by the trainer's generator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def crop_flip_draws(n: int, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """``n × 3`` int64 draws for :func:`crop_flip` — row offset, column offset (0 … 2·pad) and flip (0 | 1) —
    from a seeded CPU generator, so that every device augments alike."""
    rows = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    cols = torch.randint(0, 2 * pad + 1, (n,), generator=generator)
    flip = (torch.rand(n, generator=generator) < 0.5).long()
    return torch.stack([rows, cols, flip], 1)


def crop_flip(x: torch.Tensor, draws: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """Per-sample random crop (zero padding ``pad``) and horizontal flip, as ``draws`` (on ``x``'s device) say."""
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    rows = (draws[:, 0, None] + torch.arange(h, device=dev))[:, :, None]
    cols = (draws[:, 1, None] + torch.arange(w, device=dev))[:, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    return torch.where(draws[:, 2, None, None, None].bool(), out.flip(3), out)


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """:func:`crop_flip` with fresh draws from ``generator``."""
    return crop_flip(x, crop_flip_draws(len(x), generator, pad).to(x.device), pad)
