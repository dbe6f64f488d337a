"""The one trainer. Every model oodbench trains goes through :func:`fit_model`.

Methods that train (classifiers, later autoencoders, Outlier Exposure, …) supply a
:class:`TrainTask` (their loss, and optionally extra data) — never their own loop. Data
stays as one uint8 tensor, on the GPU when training there (no DataLoader workers);
batches are shuffled with a seeded generator; CUDA runs use bf16 autocast and
channels_last.
"""

from __future__ import annotations

import dataclasses
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .data import ImageSet
from .features import to_float
from .progress import say, track


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (part of the checkpoint cache key)."""

    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | none
    augment: str = "none"  # none | crop-flip (pad-4 random crop + horizontal flip)
    seed: int = 0

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


class TrainTask(Protocol):
    """What a training method supplies: its loss on one batch (``x`` float in [0, 1]).

    Optional extensions, each read with ``getattr`` by :func:`fit_model`:

    - ``aux: ImageSet`` and ``aux_batch_size: int`` — auxiliary (outlier) data; every step draws
      ``aux_batch_size`` of its samples (seeded, with replacement) and passes them as ``aux=``
      (Outlier Exposure, ODM's seen out-of-distribution samples).
    - ``uses_index = True`` — the batch's indices into the training set are passed as ``index=``
      (per-sample targets such as DEC's target distribution P).
    - ``refresh_every: int`` and ``refresh(model, images, labels)`` — called before the first step
      and then every ``refresh_every`` steps with the whole training set (uint8, on the device);
      the task recomputes whatever it keeps per sample (paper 000 Algorithm 1's update interval T).
    - ``eval_loss(model, x, y)`` — the loss early stopping evaluates (default: ``loss``).
    """

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...


class Classification:
    """Cross-entropy on the backbone's logits (the default task)."""

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)


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


def _optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} (adam | sgd)")


@torch.no_grad()
def task_loss(model: nn.Module, data: ImageSet, task: TrainTask, device: torch.device, batch_size: int = 1024) -> float:
    """Mean task loss over ``data`` in eval mode (early-stopping criterion)."""
    model.eval()
    total = 0.0
    loss = getattr(task, "eval_loss", task.loss)
    for xb, yb in zip(data.images.split(batch_size), data.labels.split(batch_size)):
        total += loss(model, to_float(xb, device), yb.to(device)).item() * len(xb)
    model.train()
    return total / max(1, len(data))


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: ImageSet, device: torch.device, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for xb, yb in zip(data.images.split(batch_size), data.labels.split(batch_size)):
        correct += (model(to_float(xb, device)).argmax(1).cpu() == yb).sum().item()
    return 100.0 * correct / max(1, len(data))


def fit_model(
    model: nn.Module,
    data: ImageSet,
    cfg: TrainConfig,
    device: torch.device | str = "cpu",
    task: TrainTask | None = None,
    val: ImageSet | None = None,
    val_name: str = "validation",
    select_on: ImageSet | None = None,
    patience: int | None = None,
) -> dict:
    """Train ``model`` on ``data`` with ``task`` (default: classification). Returns a log dict
    (seconds, images/s, loss per epoch, accuracy on ``val`` if given).

    ``select_on``: early stopping — the task's loss on these (ID) samples after every epoch; the
    weights of the best epoch are kept, and training stops after ``patience`` epochs without
    improvement (paper 002's 10 % ID validation split).
    """
    device = torch.device(device)
    task = task or Classification()
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    cuda = device.type == "cuda"
    model.to(device)
    if cuda:
        model.to(memory_format=torch.channels_last)
    images = data.images.to(device)
    labels = data.labels.to(device)
    opt = _optimizer(model.parameters(), cfg)
    steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
    total = max(1, cfg.epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, (lambda s: 0.5 * (1 + math.cos(math.pi * s / total))) if cfg.schedule == "cosine" else (lambda s: 1.0)
    )
    aux = getattr(task, "aux", None)
    aux_images = aux.images.to(device) if aux is not None and len(aux) else None
    aux_batch = int(getattr(task, "aux_batch_size", cfg.batch_size))
    uses_index = bool(getattr(task, "uses_index", False))
    refresh_every = int(getattr(task, "refresh_every", 0) or 0)
    log: dict = {"epoch_loss": []}
    best: tuple[float, int, dict | None] = (float("inf"), -1, None)
    start = time.perf_counter()
    step = 0
    for epoch in range(cfg.epochs):
        model.train()
        order = torch.randperm(len(data), generator=g).to(device)
        running, seen = 0.0, 0
        for idx in track(order.split(cfg.batch_size), f"epoch {epoch + 1}/{cfg.epochs}", total=steps_per_epoch):
            if refresh_every and step % refresh_every == 0:
                task.refresh(model, images, labels)  # type: ignore[attr-defined]
                model.train()
            step += 1
            x = images[idx].float().div_(255.0)
            y = labels[idx]
            extra: dict = {}
            if uses_index:
                extra["index"] = idx
            if aux_images is not None:
                pick = torch.randint(0, len(aux_images), (aux_batch,), generator=g).to(device)
                extra["aux"] = aux_images[pick].float().div_(255.0)
            if cfg.augment == "crop-flip":
                x = augment_crop_flip(x, g)
                if "aux" in extra:
                    extra["aux"] = augment_crop_flip(extra["aux"], g)
            if cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16) if cuda else nullcontext():
                loss = task.loss(model, x, y, **extra)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            running += loss.item() * len(idx)
            seen += len(idx)
        log["epoch_loss"].append(running / max(1, seen))
        msg = f"  epoch {epoch + 1}/{cfg.epochs}: loss {log['epoch_loss'][-1]:.4f}"
        if select_on is not None:
            vl = task_loss(model, select_on, task, device)
            log.setdefault("select_loss", []).append(vl)
            msg += f", validation loss {vl:.4f}"
            if vl < best[0]:
                best = (vl, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
            elif patience is not None and epoch - best[1] >= patience:
                say(msg + " (early stop)")
                break
        say(msg)
    if select_on is not None and best[2] is not None:
        model.load_state_dict(best[2])
        log["best_epoch"] = best[1] + 1
    seconds = time.perf_counter() - start
    log["seconds"] = seconds
    log["images_per_second"] = cfg.epochs * len(data) / max(seconds, 1e-9)
    if val is not None:
        log["val_acc"] = evaluate_accuracy(model, val, device)
        say(f"  {val_name} accuracy: {log['val_acc']:.2f}% ({seconds:.1f}s, {log['images_per_second']:.0f} img/s)")
    model.eval()
    return log
