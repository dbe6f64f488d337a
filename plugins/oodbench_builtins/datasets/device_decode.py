"""JPEG folders decoded on the run's device: torchvision's ``decode_jpeg`` takes a list of encoded files and a
``device`` (nvJPEG on CUDA; all 60,000 CIFAR-10 JPEGs in about 3 s on an H100). Image folders use it on CUDA and
fall back to the CPU decoder threads (one warning line) when it cannot: a file that is not a JPEG, a decoder
error, no CUDA. nvJPEG's and libjpeg's IDCTs may round differently, so the decoder is part of the folder's
cache key and of its notes.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from oodbench.data.streams import is_jpeg

BATCH = 4096


def decode_batched(paths: list[Path], device: str) -> list[torch.Tensor]:
    """Every file (all JPEGs) decoded on ``device`` in batches of :data:`BATCH`, returned as CPU uint8 C×H×W
    (grey JPEGs stay 1-channel, as the CPU decoder gives them). Raises whatever the decoder raises."""
    from torchvision.io import decode_jpeg, read_file

    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        encoded = list(pool.map(lambda p: read_file(str(p)), paths))
    out: list[torch.Tensor] = []
    for start in range(0, len(encoded), BATCH):
        images = decode_jpeg(encoded[start : start + BATCH], device=device)
        shapes = {tuple(im.shape) for im in images}
        out += list(torch.stack(images).cpu()) if len(shapes) == 1 else [im.cpu() for im in images]
    return out


def decode_on_device(paths: list[Path], device: str) -> tuple[list[torch.Tensor] | None, str]:
    """(images, "") from ``decode_batched`` on a CUDA device; (None, why) when the caller must decode on the
    CPU: another device, a folder that is not all JPEG, or a decoder failure (the caller warns in one line)."""
    if not device.startswith("cuda"):
        return None, ""
    if not all(map(is_jpeg, paths)):
        return None, ""
    from oodbench.core.errors import describe

    try:
        return decode_batched(paths, device), ""
    except Exception as exc:  # noqa: BLE001 - any device-decoder failure: the CPU decoder reads every file
        return None, f"decoding JPEGs on {device} failed ({describe(exc)}); decoding them on the CPU instead"
