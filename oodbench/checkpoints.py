"""Trained backbones, cached by everything that determines them.

The cache key hashes the architecture, ID dataset, class subset, sample limit, input shape,
pretrained flag and the full :class:`~oodbench.train.TrainConfig` (epochs and seed included);
a second run with the same configuration loads the checkpoint instead of training.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_path
from .backbones import Backbone, BackboneFactory
from .data import ImageSet, cache_dir
from .errors import UsageError
from .progress import say
from .train import TrainConfig, fit_model


@dataclass(frozen=True)
class ModelSpec:
    """What a trained backbone depends on."""

    backbone: str
    dataset: str
    input_shape: tuple[int, int, int]
    num_classes: int
    train: TrainConfig
    classes: tuple[int, ...] | None = None
    train_limit: int | None = None
    pretrained: bool = False
    options: tuple[tuple[str, object], ...] = ()  # build options, e.g. (("dropout", 0.1),)

    def key(self) -> str:
        return cached_model_path(f"{self.backbone}-{self.dataset}", dataclasses.asdict(self))[1]

    def path(self) -> Path:
        return cached_model_path(f"{self.backbone}-{self.dataset}", dataclasses.asdict(self))[0]


def atomic_torch_save(obj, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def load_or_train(
    spec: ModelSpec,
    factory: BackboneFactory,
    train_set: ImageSet,
    val_set: ImageSet | None,
    device: torch.device,
    checkpoint: Path | None = None,
) -> tuple[Backbone, dict]:
    """Return the backbone for ``spec`` and facts for the record (source, path, hash, training log)."""
    torch.manual_seed(spec.train.seed)  # the initial weights are part of what the seed determines
    unknown = [k for k, _ in spec.options if k not in factory.options]
    if unknown:
        raise UsageError(f"backbone {spec.backbone!r} has no option(s) {unknown}")
    model = factory.build(spec.input_shape, spec.num_classes, pretrained=spec.pretrained, **dict(spec.options))
    if checkpoint is not None:
        if not checkpoint.is_file():
            raise UsageError(f"checkpoint {str(checkpoint)!r} does not exist")
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UsageError(f"checkpoint {str(checkpoint)!r} does not fit backbone {spec.backbone!r}: {first}") from None
        say(f"loaded checkpoint {checkpoint}")
        return model.to(device).eval(), {"source": "file", "path": str(checkpoint), "hash": file_hash(checkpoint)}
    what = f"{spec.backbone} on {spec.dataset}"
    identity = json.loads(json.dumps(dataclasses.asdict(spec), default=str))
    return train_cached(spec.path(), spec.key(), identity, model, train_set, spec.train, device, what,
                        val=val_set, val_name=f"{spec.dataset} test")


def train_cached(
    path: Path,
    key: str,
    identity: dict,
    model: nn.Module,
    train_set: ImageSet,
    cfg: TrainConfig,
    device: torch.device,
    what: str,
    **fit_kwargs,
) -> tuple[nn.Module, dict]:
    """Load ``model``'s weights from ``path`` if that checkpoint exists, else train it with the one
    trainer (``fit_kwargs``: task, val, select_on, patience, …) and save it there atomically.
    Every trained model oodbench caches — backbones and trained detectors — goes through here."""
    if path.is_file():
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(blob["state_dict"])
        say(f"reusing cached checkpoint {path} (no training)")
        return model.to(device).eval(), {"source": "cache", "path": str(path), "hash": key, "train": blob.get("log", {})}
    say(f"training {what} ({len(train_set)} images, {cfg.epochs} epochs, {device})")
    start = time.perf_counter()
    log = fit_model(model, train_set, cfg, device, **fit_kwargs)
    log["wall_seconds"] = time.perf_counter() - start
    model.to("cpu")
    atomic_torch_save({"state_dict": model.state_dict(), "spec": identity, "log": log}, path)
    say(f"saved checkpoint {path}")
    return model.to(device).eval(), {"source": "trained", "path": str(path), "hash": key, "train": log}


def state_hash(model: nn.Module) -> str:
    """Content hash of a model's weights (keys models derived from it, e.g. by fine-tuning)."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def cached_model_path(kind: str, identity: dict) -> tuple[Path, str]:
    """(checkpoint path, key) for a trained non-backbone model described by ``identity``."""
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:16]
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in kind)
    return cache_dir() / "checkpoints" / f"{safe}-{key}.pt", key


class ModelProvider:
    """Trains (or loads from the cache) variants of the run's backbone for detectors that need
    their own models: other seeds (Deep Ensembles), build options such as dropout (MC Dropout).
    Every variant goes through :func:`load_or_train`, so it is trained once and cached."""

    def __init__(self, spec: ModelSpec, factory: BackboneFactory, train_set: ImageSet, val_set: ImageSet | None, device):
        self.spec, self.factory, self.train_set, self.val_set, self.device = spec, factory, train_set, val_set, device
        self.records: list[dict] = []

    def train_with(self, kind: str, task, data: ImageSet, *, identity: dict, outputs: int | None = None,
                   init: nn.Module | None = None, **train_changes) -> tuple[Backbone, dict]:
        """A network of the run's backbone architecture trained on ``data`` with another objective
        (``task``, e.g. a contrastive loss) through the one trainer, cached by everything that
        determines it. ``outputs``: width of the last layer (default: the number of classes);
        ``init``: start from these weights (fine-tuning, constant learning rate); ``train_changes``:
        overrides of the backbone's training defaults (epochs, lr, batch_size, seed, …; None = keep).
        Returns (model, facts for the record)."""
        import copy

        outputs = outputs or data.num_classes
        cfg = TrainConfig(**dict(getattr(self.factory, "train_defaults", {}))).replace(**train_changes)
        if init is not None:
            cfg = cfg.replace(schedule="none")
        ident = {"kind": kind, "backbone": self.spec.backbone, "data": data.fingerprint(), "shape": data.shape,
                 "outputs": outputs, "train": cfg.__dict__, "init": state_hash(init) if init is not None else None,
                 **identity}
        path, key = cached_model_path(f"{kind}-{self.spec.backbone}-{data.name}", ident)
        torch.manual_seed(cfg.seed)
        if init is not None:
            net = copy.deepcopy(init).cpu()
        else:
            net = self.factory.build(data.shape, outputs, pretrained=self.spec.pretrained)
        net, info = train_cached(path, key, ident, net, data, cfg, self.device,
                                 f"{kind} ({self.spec.backbone}) on {data.name}", task=task)
        log = info.get("train", {})
        return net, {"source": info["source"], "hash": info["hash"], "epochs": cfg.epochs,
                     "seconds": log.get("wall_seconds"), "epoch_loss": log.get("epoch_loss")}

    def get(self, seed: int | None = None, **options) -> Backbone:
        train = self.spec.train if seed is None else dataclasses.replace(self.spec.train, seed=seed)
        spec = dataclasses.replace(self.spec, train=train, options=tuple(sorted({**dict(self.spec.options), **options}.items())))
        model, info = load_or_train(spec, self.factory, self.train_set, self.val_set, self.device)
        self.records.append({"seed": train.seed, "options": dict(spec.options), "hash": info["hash"], "source": info["source"]})
        return model
