"""Trained backbones, cached by everything that determines them.

The cache key hashes the architecture, ID dataset, class subset, sample limit, input shape,
pretrained flag and the full :class:`~oodbench.models.train.TrainConfig` (epochs and seed included);
a second run with the same configuration loads the checkpoint instead of training. Detectors get
their networks through :class:`oodbench.models.ModelProvider`, which uses :func:`train_cached`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from oodbench.core.atomic import atomic_torch_save, hash_path, load_checked
from oodbench.core.errors import CorruptFileError, UsageError, describe, plugin_code
from oodbench.core.progress import pause_point, say, warn
from oodbench.data.imageset import ImageSet, cache_dir
from oodbench.data.streams import refuse_streamed
from oodbench.models.backbones import Backbone, BackboneFactory
from oodbench.models.state_layouts import adapt
from oodbench.models.train import TrainConfig, fit_model


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
    weights: str = ""  # pretrained weights fine-tuned from: "" (none or hub), else the local file's hash

    def identity(self) -> dict:
        """What keys the cache (``weights`` only when set, so earlier keys stay valid)."""
        out = dataclasses.asdict(self)
        return out if self.weights else {k: v for k, v in out.items() if k != "weights"}

    def key(self) -> str:
        return cached_model_path(f"{self.backbone}-{self.dataset}", self.identity())[1]

    def path(self) -> Path:
        return cached_model_path(f"{self.backbone}-{self.dataset}", self.identity())[0]


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
    owner: str = "?",
    check: Callable[[Backbone], None] | None = None,
) -> tuple[Backbone, dict]:
    """Return the backbone for ``spec`` and facts for the record (source, path, hash, training log).
    ``owner`` names the factory's plugin when its ``build`` fails; ``check(model)`` runs on the built model
    before any training or loading (e.g. that the requested feature layers exist)."""
    torch.manual_seed(spec.train.seed)  # the initial weights are part of what the seed determines
    unknown = [k for k, _ in spec.options if k not in factory.options]
    if unknown:
        raise UsageError(f"backbone {spec.backbone!r} has no option(s) {unknown}")
    with plugin_code("backbone", spec.backbone, owner):
        model = factory.build(spec.input_shape, spec.num_classes, pretrained=spec.pretrained, **dict(spec.options))
    if check is not None:
        check(model)
    if checkpoint is not None:
        return load_file(model, Path(checkpoint), spec.backbone, device)
    what = f"{spec.backbone} on {spec.dataset}"
    identity = json.loads(json.dumps(dataclasses.asdict(spec), default=str))
    return train_cached(
        spec.path(),
        spec.key(),
        identity,
        model,
        train_set,
        spec.train,
        device,
        what,
        val=val_set,
        val_name=f"{spec.dataset} test",
    )


def load_file(model: Backbone, checkpoint: Path, backbone: str, device: torch.device) -> tuple[Backbone, dict]:
    """``--checkpoint FILE``: weights saved by ``torch.save`` (a state dict, or a dict with ``state_dict``), in
    oodbench's layout or another tool's (:mod:`oodbench.models.state_layouts`: a bare network, OpenOOD v1.5)."""
    if not checkpoint.is_file():
        raise UsageError(f"checkpoint {str(checkpoint)!r} does not exist")
    hint = "pass a file written by torch.save(model.state_dict(), PATH) or by `oodbench train`"
    try:
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any decoding error: not a (complete) torch file
        raise CorruptFileError("checkpoint", checkpoint, f"torch.load: {describe(exc)}", hint) from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise CorruptFileError("checkpoint", checkpoint, f"holds a {type(state).__name__}, not a state dict", hint)
    state, note = adapt(state, model.state_dict())
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(f"checkpoint {str(checkpoint)!r} does not fit backbone {backbone!r}: {first}") from None
    say(f"loaded checkpoint {checkpoint}" + (f" ({note})" if note else ""))
    return model.to(device).eval(), {"source": "file", "path": str(checkpoint), "hash": file_hash(checkpoint)}


def _cached(path: Path, model: nn.Module) -> dict | None:
    """The cached checkpoint's blob, loaded into ``model``; None when absent or damaged (warned, removed)."""
    blob = load_checked(path, "checkpoint")
    if blob is None:
        return None
    try:
        model.load_state_dict(blob["state_dict"])
    except (KeyError, TypeError, RuntimeError) as exc:
        warn(f"checkpoint cache entry {path} does not fit the model ({describe(exc)}); retraining it")
        path.unlink(missing_ok=True)
        hash_path(path).unlink(missing_ok=True)
        return None
    return blob


def train_cached(
    path: Path,
    key: str,
    identity: dict,
    model: nn.Module,
    train_set: ImageSet,
    cfg: TrainConfig,
    device: torch.device,
    what: str,
    before_training: Callable[[nn.Module], None] | None = None,
    **fit_kwargs,
) -> tuple[nn.Module, dict]:
    """Load ``model``'s weights from ``path`` if that checkpoint exists, else run ``before_training(model)``
    (e.g. an initialisation that needs the data), train it with the one trainer (``fit_kwargs``: task, val,
    select_on, patience, …) and save it there atomically. Every trained model oodbench caches — backbones and
    trained detectors — goes through here."""
    blob = _cached(path, model)
    if blob is not None:
        say(f"reusing cached checkpoint {path} (no training)")
        return model.to(device).eval(), {
            "source": "cache",
            "path": str(path),
            "hash": key,
            "train": blob.get("log", {}),
        }
    refuse_streamed(train_set.images, f"training on {train_set.name}")
    say(f"training {what} ({len(train_set)} images, {cfg.epochs} epochs, {device})")
    start = time.perf_counter()
    if before_training is not None:
        before_training(model)
    pause_point("train")
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


def training_summary(info: dict, wall: float) -> str:
    """One line: the training window (first step to last, data already on the device), its throughput and the
    test accuracy from the checkpoint's log, beside this command's wall time (data loading included)."""
    log = info.get("train") or {}
    if "seconds" not in log:
        return f"command wall time {wall:.1f} s (no training log in this checkpoint)"
    when = "training window" if info.get("source") == "trained" else "cached; its training window was"
    acc = f", test accuracy {log['val_acc']:.2f} %" if "val_acc" in log else ""
    return (
        f"{when} {log['seconds']:.2f} s (first step to last, data on the device; "
        f"{log.get('images_per_second', 0):,.0f} img/s){acc}; command wall time {wall:.2f} s"
    )
