"""What ``oodbench run`` takes (:class:`RunRequest`) and its names resolved before any work (:func:`resolve`)."""

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


@dataclass(frozen=True)
class Resolved:
    """The request's names looked up in the registries: detectors built, datasets and backbone found."""

    detectors: tuple[Any, ...]  # Detector instances, parameters set
    owners: dict[str, str]  # detector name → plugin that registered it
    id_dataset: Any
    ood_datasets: tuple[Any, ...]
    tune_out: Any | None
    device: torch.device


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UsageError("--device cuda requested but no CUDA device is available")
    if name != "cpu" and not name.startswith("cuda"):
        raise UsageError(f"unknown device {name!r} (auto | cpu | cuda)")
    return torch.device(name)


def make_detector(cls: type, seed: int, params: dict[str, Any]):
    det = cls()
    if "seed" in det.get_params():
        det.set_params(seed=seed)
    bad = [k for k in params if k not in det.get_params()]
    if bad:
        raise UsageError(f"detector {cls.name!r} has no parameter(s) {bad}; it has {sorted(det.get_params())}")
    return det.set_params(**params)


def resolve(req: RunRequest) -> Resolved:
    """Check the request and resolve every name (unknown names fail here, before any work)."""
    from . import protocols
    from .plugins import registries

    regs = registries()
    protocol = protocols.get(req.protocol)
    if req.tune not in TUNE_MODES:
        raise UsageError(f"unknown tuning mode {req.tune!r} ({' | '.join(TUNE_MODES)})")
    classes = [regs.detectors.get(name) for name in req.detectors]  # names first, then option combinations
    protocol.check(req)
    detectors = tuple(make_detector(cls, req.seed, req.detector_params.get(cls.name, {})) for cls in classes)
    tune_out = None
    if req.tune == "heldout":
        name = req.tune_out or "uniform"
        if name in req.oods:
            raise UsageError(f"--tune heldout must not tune on a test OOD set ({name!r}); pick another --tune-out")
        tune_out = regs.datasets.get(name)
    elif req.tune_out:
        raise UsageError("--tune-out only applies to --tune heldout")
    if req.backbone:
        regs.backbones.get(req.backbone)
    owners = {d.name: regs.detectors.entry(d.name).plugin for d in detectors}
    return Resolved(
        detectors,
        owners,
        regs.datasets.get(req.id),
        tuple(regs.datasets.get(n) for n in req.oods),
        tune_out,
        resolve_device(req.device),
    )
