"""Outlier Exposure (Hendrycks, Mazeika & Dietterich, ICLR 2019 — the follow-up in paper 004's
slides; the "OE" column of paper 003 Table 2, whose MNIST-family runs expose KMNIST).

The run's classifier is fine-tuned with
    L = E_(x,y)~D_in [CE(f(x), y)] + λ · E_x'~D_out^OE [ −(1/K) Σ_k log softmax(f(x'))_k ]
(cross-entropy from the outliers' posterior to the uniform distribution, λ = 0.5), then scored
with the maximum softmax probability. The outliers come from ``--train-out NAME`` or the
novelty ``seen:`` classes; the default for 28×28 greyscale is KMNIST, as in paper 003.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.core.errors import UsageError
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask

from ._common import own_backbone_logits


class OutlierExposureTask(TrainTask):
    """Cross-entropy on ID batches + λ · cross-entropy to the uniform posterior on outlier batches."""

    def __init__(self, aux, aux_batch_size: int, weight: float = 0.5):
        self.aux, self.aux_batch_size, self.weight = aux, aux_batch_size, weight

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        if aux is None:
            return F.cross_entropy(model(x), y)
        logits = model(torch.cat([x, aux])).float()
        ce = F.cross_entropy(logits[: len(x)], y)
        uniform = -logits[len(x) :].log_softmax(dim=1).mean(dim=1).mean()
        return ce + self.weight * uniform

    def eval_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(x), y)


class OutlierExposure(Detector):
    name = "outlier-exposure"
    description = (
        "classifier fine-tuned to a uniform posterior on auxiliary outliers, scored by MSP (OE; paper 003 'OE')"
    )
    paper = "Hendrycks, Mazeika & Dietterich 2019, Deep Anomaly Detection with Outlier Exposure (paper 004 slides)"
    criterion = "auroc"
    needs = Needs(trains=True, outliers="required")

    def __init__(
        self,
        weight: float = 0.5,
        epochs: int = 5,
        lr: float | None = None,
        batch_size: int = 128,
        outlier_batch_size: int = 256,
        seed: int = 0,
    ):
        self.weight = weight
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.outlier_batch_size = outlier_batch_size
        self.seed = seed

    def default_outliers(self, shape) -> str | None:
        return "kmnist" if tuple(shape) == (1, 28, 28) else None

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> OutlierExposure:
        assert supplies is not None
        outliers = supplies.outliers
        if outliers is None or not len(outliers):
            raise UsageError("outlier-exposure needs training outliers: --train-out NAME")
        task = OutlierExposureTask(outliers, self.outlier_batch_size, self.weight)
        trained = supplies.models.train_with(
            self.name,
            task,
            train.imageset,
            init=train.model,
            identity={
                "weight": self.weight,
                "outliers": outliers.name,
                "outliers_hash": outliers.fingerprint(),
                "per_batch": self.outlier_batch_size,
            },
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
        )
        self.net_, self.net_key_, self.train_log_ = trained.net, trained.key, trained.facts
        self.train_log_["outliers"] = {"name": outliers.name, "n": len(outliers)}
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return own_backbone_logits(data, self.net_, self.net_key_).softmax(dim=1).max(dim=1).values

    def describe_fit(self):
        return {"fine_tuned": self.train_log_}
