"""LogitNorm (Wei, Xie, Cheng, Feng, An & Li, ICML 2022, *Mitigating Neural Network Overconfidence with Logit
Normalization*; the ``logitnorm`` trainer of OpenOOD v1.5).

A network of the run's backbone architecture is trained from scratch with the cross-entropy of the
normalised logits (§3.2, the LogitNorm loss):
    L(x, y) = −log softmax(f(x) / (τ‖f(x)‖₂))_y,
τ = 0.04 (the paper's CIFAR-10 value and OpenOOD's ``train_logitnorm.yml``). The normalisation is a training-time
device only: the score is the maximum softmax probability of the trained network's raw logits (§4; OpenOOD scores
LogitNorm networks with its MSP postprocessor). As in OpenOOD's ``LogitNormLoss``, 1e-7 is added to the norm.

Here the network trains through the one trainer with the backbone's own training recipe (LeNet: Adam 1e-3, cosine),
5 epochs by default; OpenOOD's ``train_logitnorm.yml`` trains 100 epochs with SGD (lr 0.1, momentum 0.9, weight decay
5e-4, cosine).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask
from oodbench.plugins.constraints import POSITIVE

from ._common import OwnNetwork, own_backbone_logits

NORM_EPS = 1e-7  # added to ‖f‖ (OpenOOD's LogitNormLoss, pytorch-ood's logit_norm_loss)


def logitnorm_loss(logits: torch.Tensor, labels: torch.Tensor, tau: float) -> torch.Tensor:
    """Mean cross-entropy of f / (τ(‖f‖₂ + 1e-7)) (Wei et al. 2022, §3.2), in float32."""
    z = logits.float()
    return F.cross_entropy(z / (tau * (z.norm(dim=1, keepdim=True) + NORM_EPS)), labels)


class LogitNormTask(TrainTask):
    """The LogitNorm loss on the network's logits."""

    def __init__(self, tau: float):
        self.tau = tau

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logitnorm_loss(model(x), y, self.tau)


class LogitNorm(OwnNetwork, Detector):
    """Wei et al., ICML 2022, "Mitigating Neural Network Overconfidence with Logit Normalization": a network of
    the run's architecture trained with the LogitNorm loss (§3.2), scored by the MSP of its raw logits."""

    name = "logitnorm"
    description = "network trained with cross-entropy on logits/(τ‖logits‖), scored by MSP (LogitNorm, Wei et al. 2022)"
    paper = "Wei et al. 2022, Mitigating Neural Network Overconfidence with Logit Normalization (ICML)"
    criterion = "auroc"
    needs = Needs(trains=True)
    parameter_constraints = {"tau": [POSITIVE]}

    def __init__(
        self,
        tau: float = 0.04,
        epochs: int = 5,
        lr: float | None = None,
        batch_size: int = 128,
        seed: int = 0,
    ):
        self.tau = tau
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> LogitNorm:
        assert supplies is not None
        self.train_own(supplies, LogitNormTask(self.tau), train.imageset, {"loss": "logitnorm", "tau": self.tau})
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return own_backbone_logits(data, self.net_, self.net_key_).softmax(dim=1).max(dim=1).values
