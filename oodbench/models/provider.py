"""The one path by which a detector gets a trained network: :class:`ModelProvider`.

Every network a detector trains — autoencoders, DEC, the abnormality module, metric-learning and
ODM embeddings, Outlier Exposure's fine-tuned classifier, MC Dropout's dropout backbones, Deep
Ensemble members — goes through :meth:`ModelProvider.train` (or its two conveniences,
:meth:`~ModelProvider.train_with` for the run's architecture under another objective and
:meth:`~ModelProvider.backbone` for variants of the run's backbone). It builds nothing twice: the
checkpoint is keyed by everything that determines the weights, trained through the one trainer
(:func:`oodbench.models.train.fit_model`) on a miss, and loaded on a hit. No detector opens a cache file.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from oodbench.core.errors import UsageError
from oodbench.data.imageset import ImageSet
from oodbench.models.backbones import Backbone, BackboneFactory
from oodbench.models.checkpoints import ModelSpec, cached_model_path, load_or_train, state_hash, train_cached
from oodbench.models.train import TrainConfig, TrainTask, default_config


@dataclass
class TrainedModel:
    """A network from the provider: ``key`` identifies its weights (use it in memo keys)."""

    net: nn.Module
    key: str
    facts: dict[str, Any] = field(default_factory=dict)  # source (cache | trained), seconds, epoch losses, …


class ModelProvider:
    """Trains (or loads from the cache) the networks of one run's detectors, on the run's device."""

    def __init__(
        self,
        spec: ModelSpec,
        factory: BackboneFactory,
        train_set: ImageSet,
        val_set: ImageSet | None,
        device: torch.device | str,
        owner: str = "?",
    ):
        self.spec, self.factory, self.train_set, self.val_set = spec, factory, train_set, val_set
        self.owner = owner  # the plugin of the backbone factory (named when its build fails)
        self.device = torch.device(device)
        self.records: list[dict[str, Any]] = []  # every model handed out (for the result record)

    def train(
        self,
        kind: str,
        net: nn.Module,
        data: ImageSet,
        config: TrainConfig,
        *,
        identity: dict[str, Any],
        task: TrainTask | None = None,
        before_training: Callable[[nn.Module], None] | None = None,
        **fit_kwargs: Any,
    ) -> TrainedModel:
        """``net`` trained on ``data`` with ``task`` under ``config``, cached by (kind, data content, shape,
        config, ``identity``). ``identity`` must name everything else that changes the weights (the detector's
        parameters, outlier data, the weights it starts from). ``before_training(net)`` runs only when training
        happens (e.g. DEC's k-means initialisation); ``fit_kwargs`` go to the trainer (select_on, patience)."""
        ident = {
            "kind": kind,
            "data": data.fingerprint(),
            "shape": list(data.shape),
            "train": dataclasses.asdict(config),
            **identity,
        }
        path, key = cached_model_path(f"{kind}-{data.name}", ident)
        net, info = train_cached(
            path,
            key,
            ident,
            net,
            data,
            config,
            self.device,
            f"{kind} on {data.name}",
            before_training,
            task=task,
            **fit_kwargs,
        )
        log = info.get("train", {})
        facts = {
            "source": info["source"],
            "hash": key,
            "epochs": config.epochs,
            "seconds": log.get("wall_seconds"),
            "epoch_loss": log.get("epoch_loss"),
            "best_epoch": log.get("best_epoch"),
        }
        self.records.append({"kind": kind, "hash": key, "source": info["source"]})
        return TrainedModel(net, key, facts)

    def config(self, **changes: Any) -> TrainConfig:
        """The backbone's training defaults with ``changes`` (None keeps a default)."""
        return default_config(self.factory.train_defaults, **changes)

    def fresh(self, data: ImageSet, outputs: int | None = None, seed: int = 0) -> nn.Module:
        """A new network of the run's backbone architecture for ``data`` (``outputs`` wide, default its classes;
        the hub's weights for a pretrained run), seeded: what :meth:`train_with` trains, for a detector that wraps
        it in pieces of its own before :meth:`train` (G-ODIN's h/g head, VOS's energy weights)."""
        torch.manual_seed(seed)
        return self.factory.build(data.shape, outputs or data.num_classes, pretrained=self.spec.pretrained)

    def train_with(
        self,
        kind: str,
        task: TrainTask,
        data: ImageSet,
        *,
        identity: dict[str, Any],
        outputs: int | None = None,
        init: nn.Module | None = None,
        **train_changes: Any,
    ) -> TrainedModel:
        """A network of the run's backbone architecture trained on ``data`` with another objective.
        ``outputs``: width of the last layer (default: the number of classes); ``init``: start from these
        weights (fine-tuning, constant learning rate); ``train_changes``: overrides of the backbone's
        training defaults (epochs, lr, batch_size, seed, …; None keeps the default)."""
        outputs = outputs or data.num_classes
        cfg = self.config(**train_changes)
        if init is not None:
            cfg = cfg.replace(schedule="none")
        torch.manual_seed(cfg.seed)  # also for a fine-tune from ``init``: the same global RNG state as before
        net = copy.deepcopy(init).cpu() if init is not None else self.fresh(data, outputs, cfg.seed)
        ident = {
            "backbone": self.spec.backbone,
            "outputs": outputs,
            "init": state_hash(init) if init is not None else None,
            **identity,
        }
        return self.train(f"{kind}-{self.spec.backbone}", net, data, cfg, identity=ident, task=task)

    def backbone(self, seed: int | None = None, **options: Any) -> TrainedModel:
        """The run's backbone trained with another seed (Deep Ensembles) or build options such as dropout
        (MC Dropout): the same cache as the run's own backbone. Refused in one line for a pretrained run: its
        backbone comes from weights (the hub or a file), and retraining it from scratch would not be the same
        network."""
        if self.spec.pretrained:
            raise UsageError(
                f"a detector of this run retrains its backbone ({self.spec.backbone}) with another seed or dropout "
                "(Deep Ensembles, MC Dropout), which a run on pretrained weights (--pretrained / --pretrained-file) "
                "cannot do: run that detector with a backbone oodbench trains, or choose a post-hoc detector"
            )
        train = self.spec.train if seed is None else dataclasses.replace(self.spec.train, seed=seed)
        merged = tuple(sorted({**dict(self.spec.options), **options}.items()))
        spec = dataclasses.replace(self.spec, train=train, options=merged)
        model, info = load_or_train(spec, self.factory, self.train_set, self.val_set, self.device, owner=self.owner)
        self.records.append(
            {"seed": train.seed, "options": dict(spec.options), "hash": info["hash"], "source": info["source"]}
        )
        return TrainedModel(model, info["hash"], {"source": info["source"], "hash": info["hash"]})

    def get(self, seed: int | None = None, **options: Any) -> Backbone:
        """Deprecated: ``backbone(...).net``."""
        import warnings

        warnings.warn(
            "ModelProvider.get is deprecated; use ModelProvider.backbone(...).net", DeprecationWarning, stacklevel=2
        )
        return self.backbone(seed, **options).net  # type: ignore[return-value]
