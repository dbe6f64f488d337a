"""The one trainer. Every model oodbench trains goes through :func:`fit_model`.

Methods that train supply a :class:`TrainTask` (their loss, optionally extra data), never their own loop.
Data stays one uint8 tensor, on the GPU when training there; batches are shuffled with a seeded generator;
CUDA runs take the fast path of :mod:`oodbench.core.precision` (bf16 autocast, channels_last, cuDNN's autotuner).
Learning-rate schedules are torch's.
"""

from __future__ import annotations

import math
import time
import warnings
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from oodbench.core import precision
from oodbench.core.progress import say, track
from oodbench.data.imageset import ImageSet
from oodbench.models import augment
from oodbench.models.augment import augment_crop_flip, crop_flip, crop_flip_draws  # noqa: F401 - re-exported
from oodbench.models.estimate import check_training_time, probe_seconds_per_image
from oodbench.models.features import to_float
from oodbench.models.optim import make_optimizer, make_scheduler, parameter_groups
from oodbench.models.train_config import (
    SCHEDULES,  # noqa: F401 - re-exported
    TrainConfig,
    default_config,  # noqa: F401 - re-exported
    train_overrides,  # noqa: F401 - re-exported
)


class TrainTask:
    """What a training method supplies: its loss on one batch (``x`` float in [0, 1]); subclasses
    override what they need, and :func:`fit_model` reads these attributes directly:

    - ``aux`` and ``aux_batch_size`` — auxiliary (outlier) data; every step draws ``aux_batch_size``
      (None: the batch size) of its samples (seeded, with replacement) and passes them to ``loss`` as
      ``aux=`` (Outlier Exposure, ODM's seen out-of-distribution samples).
    - ``uses_index`` — the batch's indices into the training set are passed to ``loss`` as ``index=``
      (per-sample targets such as DEC's target distribution P).
    - ``refresh_every`` and ``refresh(model, images, labels)`` — called before the first step and then
      every ``refresh_every`` steps (0: never) with the whole training set (uint8, on the device); the
      task recomputes whatever it keeps per sample (paper 000 Algorithm 1's update interval T).
    - ``eval_loss(model, x, y)`` — the loss early stopping evaluates (default: ``loss``).
    - ``soft_targets`` — ``loss`` takes ``y`` as class probabilities too (needed by augment=mixup|cutmix|regmixup).
    """

    aux: ImageSet | None = None
    aux_batch_size: int | None = None
    uses_index: bool = False
    refresh_every: int = 0
    soft_targets: bool = False

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} must define loss(model, x, y)")

    def eval_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(model, x, y)

    def refresh(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> None:
        pass

    @staticmethod
    def adapt(task: Any) -> TrainTask:
        """``task`` itself if it is a :class:`TrainTask`; any other object with a ``loss`` is wrapped
        (deprecated: its optional attributes are looked up once, here)."""
        if isinstance(task, TrainTask):
            return task
        warnings.warn(
            f"{type(task).__name__} is not a TrainTask; subclass oodbench.models.train.TrainTask "
            "(duck-typed training tasks are deprecated)",
            DeprecationWarning,
            stacklevel=3,
        )
        return _DuckTypedTask(task)


class _DuckTypedTask(TrainTask):
    """A task object that does not subclass :class:`TrainTask`, behind its interface (looked up once)."""

    def __init__(self, task: Any):
        for name in ("aux", "aux_batch_size", "uses_index", "refresh_every", "soft_targets"):
            setattr(self, name, getattr(task, name, getattr(TrainTask, name)))
        self.refresh_every = int(self.refresh_every or 0)
        self.loss = task.loss  # type: ignore[method-assign]
        self.eval_loss = getattr(task, "eval_loss", task.loss)  # type: ignore[method-assign]
        self.refresh = getattr(task, "refresh", super().refresh)  # type: ignore[method-assign]


class Classification(TrainTask):
    """Cross-entropy on the backbone's logits (the default task); ``y`` labels or class probabilities."""

    soft_targets = True

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)


@torch.no_grad()
def task_loss(model: nn.Module, data: ImageSet, task: TrainTask, device: torch.device, batch_size: int = 1024) -> float:
    """Mean task loss (``task.eval_loss``) over ``data`` in eval mode (early-stopping criterion)."""
    task = TrainTask.adapt(task)
    model.eval()
    total = 0.0
    for xb, yb in zip(data.images.split(batch_size), data.labels.split(batch_size)):
        total += task.eval_loss(model, to_float(xb, device), yb.to(device)).item() * len(xb)
    model.train()
    return total / max(1, len(data))


@torch.no_grad()
def evaluate_accuracy(model: nn.Module, data: ImageSet, device: torch.device, batch_size: int = 1024) -> float:
    model.eval()
    correct = 0
    for xb, yb in zip(data.images.split(batch_size), data.labels.split(batch_size)):
        correct += (model(to_float(xb, device)).argmax(1).cpu() == yb).sum().item()
    return 100.0 * correct / max(1, len(data))


class _Trainer:
    """One :func:`fit_model` run: data on the device, optimiser, schedule, seeded generator, and the
    training window (start of the first step to end of the last; 0 if none ran)."""

    def __init__(self, model: nn.Module, data: ImageSet, cfg: TrainConfig, device: torch.device, task: TrainTask):
        self.model, self.cfg, self.device, self.task = model, cfg, device, task
        self.generator = torch.Generator().manual_seed(cfg.seed)
        precision.prepare_model(model.to(device), device)
        self.images, self.labels = data.images.to(device), data.labels.to(device)
        self.aux_images = task.aux.images.to(device) if task.aux is not None and len(task.aux) else None
        self.aux_batch = cfg.batch_size if task.aux_batch_size is None else int(task.aux_batch_size)
        self.mixer = augment.batch_mixer(cfg.augment, data.num_classes)  # mixup | cutmix | regmixup: soft targets
        if self.mixer is not None and not task.soft_targets:
            raise ValueError(f"augment={cfg.augment} gives soft targets, which {type(task).__name__} does not take")
        self.opt = make_optimizer(parameter_groups(model), cfg)
        self.steps_per_epoch = math.ceil(len(data) / cfg.batch_size)
        self.scheduler = make_scheduler(self.opt, cfg, max(1, cfg.epochs * self.steps_per_epoch))
        self.step, self.images_seen = 0, 0
        self.first_step_at = self.last_step_at = 0.0  # the training window (perf_counter)

    def epoch(self, epoch: int) -> float:
        """One shuffled pass; the mean batch loss, summed on the device and read once (no step waits)."""
        self.model.train()
        order = torch.randperm(len(self.images), generator=self.generator).to(self.device)
        draws = self.epoch_draws()
        running = torch.zeros((), dtype=torch.float64, device=self.device)
        seen_before = self.images_seen
        batches = order.split(self.cfg.batch_size)
        for i, idx in enumerate(track(batches, f"epoch {epoch + 1}/{self.cfg.epochs}", total=len(batches))):
            running += self.train_step(idx, i, draws).double() * len(idx)
        total = running.item()  # waits for the device: the epoch's steps are done
        self.last_step_at = time.perf_counter()
        return total / max(1, self.images_seen - seen_before)

    def epoch_draws(self) -> dict[str, torch.Tensor]:
        """The epoch's outlier picks and augmentation draws, from the seeded CPU generator (the same on every
        device) and copied to the device once: a copy from pageable host memory synchronises the CUDA stream, so
        one per step would make every step wait for the one before it."""
        steps, bs, g = self.steps_per_epoch, self.cfg.batch_size, self.generator
        draws: dict[str, torch.Tensor] = {}
        if self.aux_images is not None:
            draws["aux"] = torch.randint(0, len(self.aux_images), (steps, self.aux_batch), generator=g)
        if self.cfg.augment in augment.PER_SAMPLE:  # crop-flip, augmix
            draw = augment.PER_SAMPLE[self.cfg.augment][0]
            draws["aug"] = draw(steps * bs, g).view(steps, bs, -1)
            if self.aux_images is not None:
                draws["aux_aug"] = draw(steps * self.aux_batch, g).view(steps, self.aux_batch, -1)
        return {k: v.to(self.device) for k, v in draws.items()}

    def train_step(self, idx: torch.Tensor, i: int, draws: dict[str, torch.Tensor]) -> torch.Tensor:
        """Step ``i`` of the epoch on the training samples at ``idx``; the loss, on the device."""
        if self.step == 0:
            self.first_step_at = time.perf_counter()
        if self.task.refresh_every and self.step % self.task.refresh_every == 0:
            self.task.refresh(self.model, self.images, self.labels)
            self.model.train()
        self.step += 1
        x, y, extra = self.batch(idx, i, draws)
        with precision.autocast(self.device):
            loss = self.task.loss(self.model, x, y, **extra)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.scheduler is not None:
            self.scheduler.step()
        self.images_seen += len(idx)
        return loss.detach()

    def batch(
        self, idx: torch.Tensor, i: int, draws: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        """(x, y, keyword arguments of the task's loss) for the samples at ``idx``, step ``i`` of the epoch."""
        x, y = self.images[idx].float().div_(255.0), self.labels[idx]
        extra: dict[str, torch.Tensor] = {}
        if self.task.uses_index:
            extra["index"] = idx
        if "aux" in draws:
            extra["aux"] = self.aux_images[draws["aux"][i]].float().div_(255.0)
        if "aug" in draws:
            apply = augment.PER_SAMPLE[self.cfg.augment][1]
            x = apply(x, draws["aug"][i, : len(idx)])
            if "aux" in extra:
                extra["aux"] = apply(extra["aux"], draws["aux_aug"][i])
        if self.mixer is not None:  # draws Python numbers from the generator here: no copy to the device
            x, y = augment.augment_mix(self.cfg.augment, self.mixer, x, y, self.generator)
        return precision.prepare_input(x, self.device), y, extra


class _EarlyStopping:
    """Keeps the weights of the epoch with the lowest selection loss; says when ``patience`` ran out."""

    def __init__(self, patience: int | None):
        self.patience, self.best_loss, self.best_epoch = patience, float("inf"), -1
        self.best_state: dict[str, torch.Tensor] | None = None

    def should_stop(self, model: nn.Module, epoch: int, loss: float) -> bool:
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, epoch
            self.best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            return False
        return self.patience is not None and epoch - self.best_epoch >= self.patience

    def restore_best(self, model: nn.Module, log: dict) -> None:
        if self.best_state is not None:
            model.load_state_dict(self.best_state)
            log["best_epoch"] = self.best_epoch + 1


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
    (``seconds`` of the training window — first step to last step, data already on the device —,
    ``images_per_second``, loss per epoch, accuracy on ``val`` if given).

    ``select_on``: early stopping — the task's loss on these (ID) samples after every epoch; the
    weights of the best epoch are kept, and training stops after ``patience`` epochs without
    improvement (paper 002's 10 % ID validation split).
    """
    device = torch.device(device)
    task = Classification() if task is None else TrainTask.adapt(task)
    torch.manual_seed(cfg.seed)
    if device.type == "cpu":
        check_training_time(probe_seconds_per_image(model, data.images) * len(data) * cfg.epochs)
    trainer = _Trainer(model, data, cfg, device, task)
    stopping = _EarlyStopping(patience)
    log: dict = {"epoch_loss": []}
    for epoch in range(cfg.epochs):
        log["epoch_loss"].append(trainer.epoch(epoch))
        msg = f"  epoch {epoch + 1}/{cfg.epochs}: loss {log['epoch_loss'][-1]:.4f}"
        if select_on is not None:
            vl = task_loss(model, select_on, task, device)
            log.setdefault("select_loss", []).append(vl)
            msg += f", validation loss {vl:.4f}"
            if stopping.should_stop(model, epoch, vl):
                say(msg + " (early stop)")
                break
        say(msg)
    stopping.restore_best(model, log)
    log["seconds"] = seconds = trainer.last_step_at - trainer.first_step_at
    log["images_per_second"] = trainer.images_seen / max(seconds, 1e-9)
    timing = f"{seconds:.1f}s training, {log['images_per_second']:.0f} img/s"
    if val is not None:
        log["val_acc"] = evaluate_accuracy(model, val, device)
    say(f"  {val_name} accuracy: {log['val_acc']:.2f}% ({timing})" if val is not None else f"  {timing}")
    model.eval()
    return log
