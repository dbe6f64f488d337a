"""The fast path on an accelerator: bf16 autocast, channels_last tensors and cuDNN's autotuner.

One switch, :func:`accelerated`, decides it for the trainer and for feature extraction. It is true on CUDA
only; the CPU runs the same code with it switched on (``tests/test_fast_path.py``), which is how dtype and
memory-layout errors that only the GPU path would meet (a ``.view`` of a channels_last map, a float32 buffer
written with bf16 values) are found without a GPU.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch
from torch import nn


def accelerated(device: torch.device) -> bool:
    """Whether work on ``device`` takes the fast path (CUDA)."""
    return device.type == "cuda"


def autocast(device: torch.device, enabled: bool = True) -> AbstractContextManager:
    """bf16 autocast on the fast path (``enabled`` and :func:`accelerated`), else nothing."""
    if enabled and accelerated(device):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return nullcontext()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """On the fast path: 4-d weights in channels_last (what cuDNN's tensor-core kernels read) and cuDNN's
    autotuner on (fixed batch shapes, so it chooses once per shape)."""
    if accelerated(device):
        model.to(memory_format=torch.channels_last)
        if device.type == "cuda":
            torch.backends.cudnn.benchmark = True
    return model


def prepare_input(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """An image batch in channels_last on the fast path (4-d batches only)."""
    if accelerated(device) and x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x
