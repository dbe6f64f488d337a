"""What ``oodbench run`` takes (:class:`RunRequest`); :func:`oodbench.planning.resolve` looks its names up."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .errors import UsageError

TUNE_MODES = ("none", "oracle", "heldout")


@dataclass
class RunRequest:
    """Everything ``oodbench run`` takes (CLI options map one to one)."""

    detectors: list[str]
    id: str
    oods: list[str] = field(default_factory=list)
    backbone: str | None = None
    checkpoint: Path | None = None
    epochs: int | None = None
    tune: str = "none"
    tune_out: str | None = None
    seed: int = 0
    device: str = "auto"
    data_root: str | None = None
    download: bool = False
    train_limit: int | None = None
    test_limit: int | None = None
    n_tune: int = 1000
    pretrained: bool = False
    feature_cache: bool = True
    batch_size: int = 512
    results: str | None = None
    protocol: str = "anomaly"
    holdout: str | None = None
    corruptions: list[str] | None = None
    severities: list[int] | None = None
    corrupt_both: str | None = None
    train_out: str | None = None
    contaminate: float = 0.0
    contaminate_with: str | None = None
    detector_params: dict[str, dict[str, Any]] = field(default_factory=dict)


def describe_run(req: RunRequest) -> str:
    """One line naming a run: protocol, ID → OOD sets or held-out classes, seed, detectors."""
    return (
        f"{req.protocol} {req.id}→{','.join(req.oods) or req.holdout or ''} seed {req.seed}: {', '.join(req.detectors)}"
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r} (auto | cpu | cuda)")
    return torch.device(name)
