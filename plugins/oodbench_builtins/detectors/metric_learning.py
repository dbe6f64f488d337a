"""Metric learning for OOD detection (paper 001: Masana et al., *Metric Learning for Novelty and
Anomaly Detection*, BMVC 2018). Reproduces the "Ours - ML" and "Ours - ODM" rows of paper 001
Table 3 (supplementary: LeNet, MNIST in {2,6,7}, seen out {0,3,4,8}, unseen novelty {5,9,1}).

- ``metric-learning`` (§3.1): the run's backbone architecture with an ``embedding_dim``-wide last
  layer (5 in Table 3), trained from scratch with the contrastive loss of eq. 1 over every pair
  of a minibatch (one branch, pairs formed after the embedding, as §3.2 describes):
  L = ½(1−y)D² + ½y·max(0, m − D)², D = ‖f(x₁) − f(x₂)‖₂, y = 0 for same-class pairs, margin m.
- ``odm`` (§3.2, eq. 2): the same with seen out-of-distribution samples in every batch; their
  pairs with ID samples are "different" pairs (pushed at least m apart), and pairs of two
  outliers are never formed (z = 0), so outliers are not grouped into a class of their own.
  The outliers are the protocol's: the novelty ``seen:`` classes or ``--train-out NAME``.

Score (§3.3): minus the Euclidean distance to the nearest class centre, the centres being the
mean training embeddings of the ID classes. Training goes through the one trainer and is cached.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask

from ._common import class_means, euclidean, own_backbone_logits


class ContrastiveTask(TrainTask):
    """Paper 001 eq. 1 over all pairs of a minibatch; with ``aux`` outliers, eq. 2 (no outlier pairs)."""

    def __init__(self, margin: float, aux=None, aux_batch_size: int = 0):
        self.margin = margin
        self.aux, self.aux_batch_size = aux, aux_batch_size

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, aux: torch.Tensor | None = None) -> torch.Tensor:
        if aux is not None:
            x = torch.cat([x, aux])
            y = torch.cat([y, torch.full((len(aux),), -1, dtype=y.dtype, device=y.device)])
        e = model(x).float()
        sq = (e[:, None, :] - e[None, :, :]).pow(2).sum(-1)
        dist = sq.clamp_min(1e-12).sqrt()
        i, j = torch.triu_indices(len(x), len(x), offset=1, device=x.device)
        inlier_i, inlier_j = y[i] >= 0, y[j] >= 0
        keep = inlier_i | inlier_j  # z = 0 (two outliers): the pair is not formed
        same = (y[i] == y[j]) & inlier_i & inlier_j
        d2, d = sq[i, j], dist[i, j]
        per_pair = torch.where(same, 0.5 * d2, 0.5 * (self.margin - d).clamp_min(0).pow(2))
        return per_pair[keep].mean()

    def eval_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss(model, x, y)


class MetricLearning(Detector):
    name = "metric-learning"
    description = "contrastive-loss embedding, score = −distance to nearest class centre (paper 001 'ML', Table 3)"
    paper = "Masana et al. 2018, Metric Learning for Novelty and Anomaly Detection (paper 001)"
    criterion = "auroc"
    needs = Needs(trains=True, embedding=True)

    def __init__(
        self,
        embedding_dim: int = 5,
        margin: float = 10.0,
        epochs: int | None = None,
        lr: float = 1e-3,
        batch_size: int = 128,
        outlier_batch_size: int = 32,
        seed: int = 0,
    ):
        self.embedding_dim = embedding_dim
        self.margin = margin
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.outlier_batch_size = outlier_batch_size
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> MetricLearning:
        assert supplies is not None
        outliers = supplies.outliers if self.needs.outliers != "none" else None
        if self.needs.outliers == "required" and (outliers is None or not len(outliers)):
            from oodbench.core.errors import UsageError

            raise UsageError(
                f"{self.name} trains with seen outliers: use --holdout in:…/seen:…/unseen:… or --train-out NAME"
            )
        task = ContrastiveTask(self.margin, outliers, self.outlier_batch_size if outliers is not None else 0)
        extra = {"loss": "contrastive", "margin": self.margin}
        if outliers is not None:
            extra |= {
                "outliers": outliers.name,
                "outliers_hash": outliers.fingerprint(),
                "per_batch": self.outlier_batch_size,
            }
        trained = supplies.models.train_with(
            self.name,
            task,
            train.imageset,
            identity=extra,
            outputs=self.embedding_dim,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            seed=self.seed,
        )
        self.net_, self.net_key_, self.train_log_ = trained.net, trained.key, trained.facts
        emb = own_backbone_logits(train, self.net_, self.net_key_)
        labels = train.device_labels
        self.centres_ = class_means(emb, labels, int(labels.max()) + 1)[0]
        nearest = euclidean(emb, self.centres_).argmin(dim=1)
        self.train_log_["nearest_centre_train_accuracy"] = 100.0 * float((nearest == labels).float().mean())
        return self

    def embed(self, data: FeatureView) -> np.ndarray:
        """The learned embedding (paper 001 Fig. 1), for ``oodbench plot embedding``."""
        self.check_fitted()
        return own_backbone_logits(data, self.net_, self.net_key_).cpu().numpy()

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return -euclidean(own_backbone_logits(data, self.net_, self.net_key_), self.centres_).min(dim=1).values

    def describe_fit(self):
        return {"model": self.train_log_, "centres": len(self.centres_)}


class ODM(MetricLearning):
    name = "odm"
    description = (
        "metric learning with out-of-distribution mining: seen outliers pushed ≥ m from ID (paper 001 'ODM', eq. 2)"
    )
    needs = Needs(trains=True, outliers="required", embedding=True)
