"""Training-time augmentation on the model's device (vectorised, seeded by the trainer's generator)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def augment_crop_flip(x: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Vectorised per-sample random crop (zero padding ``pad``) and horizontal flip."""
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (pad, pad, pad, pad))
    oy = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    ox = torch.randint(0, 2 * pad + 1, (b,), generator=generator).to(dev)
    rows = (oy[:, None] + torch.arange(h, device=dev))[:, :, None]
    cols = (ox[:, None] + torch.arange(w, device=dev))[:, None, :]
    out = padded[torch.arange(b, device=dev)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)[:, None, None, None]
    return torch.where(flip, out.flip(3), out)
