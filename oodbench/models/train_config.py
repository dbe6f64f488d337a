"""What determines a trained model: :class:`TrainConfig` (part of the checkpoint cache key), a backbone's
defaults merged with a run's overrides (:func:`default_config`), and ``--train KEY=VALUE`` checked in one line
(:func:`train_overrides`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEDULES = ("cosine", "onecycle", "none")
OPTIMIZERS = ("adam", "sgd")
AUGMENTS = ("none", "crop-flip", "mixup", "cutmix", "regmixup", "augmix")  # see oodbench.models.augment


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a trained model (part of the checkpoint cache key)."""

    epochs: int = 5
    batch_size: int = 128
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | onecycle | none (per step; see make_scheduler)
    augment: str = "none"  # none | crop-flip | mixup | cutmix | regmixup | augmix (oodbench.models.augment)
    seed: int = 0

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


def default_config(factory_defaults: Mapping[str, Any], **overrides: Any) -> TrainConfig:
    """A backbone factory's training configuration: :class:`TrainConfig`'s defaults, then the
    factory's ``train_defaults``, then ``overrides`` (None = keep). Unknown keys raise ValueError."""
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    for source, keys in (("train_defaults", factory_defaults), ("overrides", overrides)):
        unknown = sorted(set(keys) - known)
        if unknown:
            raise ValueError(f"unknown TrainConfig field(s) in {source}: {', '.join(unknown)} (known: {sorted(known)})")
    return TrainConfig(**factory_defaults).replace(**overrides)


#: the values a text field takes (the trainer's make_optimizer / make_scheduler / augmentation)
CHOICES = {"optimizer": OPTIMIZERS, "schedule": SCHEDULES, "augment": AUGMENTS}
#: fields with an option of their own
OWN_OPTION = {"epochs": "--epochs", "seed": "--seed"}


def train_overrides(options: Mapping[str, Any]) -> dict[str, Any]:
    """``--train KEY=VALUE`` as :class:`TrainConfig` overrides: a known field (not epochs or seed, which have
    options of their own) of the default's type (an int is a float too) and, for text fields, a listed value.
    Raises ValueError with one line naming the key."""
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    out: dict[str, Any] = {}
    for key, value in options.items():
        if key in OWN_OPTION:
            raise ValueError(f"{key} has its own option: {OWN_OPTION[key]}")
        if key not in fields:
            known = ", ".join(k for k in fields if k not in OWN_OPTION)
            raise ValueError(f"unknown key {key!r} (one of {known})")
        default = fields[key]
        if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if type(value) is not type(default):
            kind = {int: "an integer", float: "a number", str: "text"}[type(default)]
            raise ValueError(f"{key} takes {kind} (default {default!r}), got {value!r}")
        if key in CHOICES and value not in CHOICES[key]:
            raise ValueError(f"{key} is one of {', '.join(CHOICES[key])}, got {value!r}")
        floor = 1 if key == "batch_size" else 0
        if isinstance(value, (int, float)) and value < floor:
            raise ValueError(f"{key} takes a number ≥ {floor}, got {value}")
        out[key] = value
    return out
