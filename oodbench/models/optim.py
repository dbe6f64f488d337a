"""The trainer's optimiser and learning-rate schedule: torch's, configured by :class:`TrainConfig`."""

from __future__ import annotations

import torch
from torch import nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR

from oodbench.models.train_config import OPTIMIZERS, SCHEDULES, TrainConfig


def parameter_groups(model: nn.Module) -> list[dict]:
    """``model``'s parameters as optimiser groups: those ``model.no_weight_decay()`` names (timm's convention, e.g.
    G-ODIN's h) in a group without weight decay; the rest take the optimiser's own."""
    exempt = set(getattr(model, "no_weight_decay", lambda: ())())
    named = list(model.named_parameters())
    free = [p for n, p in named if n in exempt]
    return [{"params": [p for n, p in named if n not in exempt]}] + (
        [{"params": free, "weight_decay": 0.0}] if free else []
    )


def make_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, nesterov=True)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r} ({' | '.join(OPTIMIZERS)})")


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int) -> LRScheduler | None:
    """torch's learning-rate schedule for ``cfg.schedule``, stepped once per batch: ``cosine`` anneals
    ``lr`` to 0 over ``total_steps`` (CosineAnnealingLR), ``onecycle`` is OneCycleLR with peak ``lr``
    (torch's defaults otherwise, momentum cycled too), ``none`` keeps ``lr`` (no scheduler)."""
    if cfg.schedule == "cosine":
        return CosineAnnealingLR(opt, T_max=total_steps)
    if cfg.schedule == "onecycle":
        return OneCycleLR(opt, max_lr=cfg.lr, total_steps=total_steps)
    if cfg.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {cfg.schedule!r} ({' | '.join(SCHEDULES)})")
