"""Rotation prediction as an auxiliary task (Hendrycks, Mazeika, Kadavath & Song, NeurIPS 2019, *Using
Self-Supervised Learning Can Improve Model Robustness and Uncertainty*, §4.1 multi-class out-of-distribution
detection; the ``rotpred`` trainer and postprocessor of OpenOOD v1.5).

The network is the run's backbone architecture with a final linear layer of K + 4 outputs: rows 1…K are the
classifier, rows K + 1…K + 4 the rotation head — a linear map of the penultimate features, as OpenOOD's ``RotNet``
(``rot_fc = nn.Linear(feature_size, 4)``) and the paper's code (``rot_head``). Each batch x is stacked with its
copies rotated by 90°, 180° and 270° (R_r(x), r = 0…3, ``torch.rot90`` over height and width) and trained with
    L = CE(y, p(·|x)) + w · (1/4) Σ_r CE(r, q(·|R_r(x))),
the classification term on the unrotated copy only, the rotation term over all four (w = 1, OpenOOD's trainer;
the paper's code weighs its rotation and translation heads together by 1/3). Score, as OpenOOD's
``RotPredPostprocessor`` (from the paper's ``test_auxiliary_ood.py``), higher = more in-distribution:
    S(x) = KL[U ‖ p(·|x)] − (1/4) Σ_r KL[onehot(r) ‖ q(·|R_r(x))]
         = −log₂ K − (1/K) Σ_k log₂ p_k(x) + (1/4) Σ_r log₂ q_r(R_r(x))   (in bits, as the reference),
computed from log-softmax (the reference divides softmax probabilities, which can underflow to 0).

Training goes through the one trainer with the backbone's own recipe (LeNet: Adam 1e-3, cosine), 5 epochs by
default; OpenOOD trains 100 epochs with SGD 0.1. Rotations need square images.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.core.errors import UsageError
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask
from oodbench.plugins.constraints import NON_NEGATIVE

from ._common import OwnNetwork, own_net_outputs

ROTATIONS = 4


def rotations(x: torch.Tensor) -> torch.Tensor:
    """N×C×H×W → 4N×C×H×W: x, then x rotated by 90°, 180° and 270° (rotation r is rows rN … rN + N − 1)."""
    return torch.cat([torch.rot90(x, r, dims=(2, 3)) for r in range(ROTATIONS)])


def rotation_loss(out: torch.Tensor, labels: torch.Tensor, classes: int, weight: float) -> torch.Tensor:
    """CE of the class logits of the unrotated copies + ``weight`` · CE of the rotation logits of all 4N copies,
    for the network's outputs ``out`` (4N × (K + 4)) on :func:`rotations` of the batch."""
    n = len(labels)
    targets = torch.arange(ROTATIONS, device=out.device).repeat_interleave(n)
    return F.cross_entropy(out[:n, :classes], labels) + weight * F.cross_entropy(out[:, classes:], targets)


def rotpred_score(out: torch.Tensor, classes: int) -> torch.Tensor:
    """KL[U ‖ p] − mean_r KL[onehot(r) ‖ q_r] in bits, for the outputs ``out`` (4N × (K + 4)) on rotations."""
    n = len(out) // ROTATIONS
    log_p = out[:n, :classes].float().log_softmax(dim=1)
    kl_uniform = -math.log(classes) - log_p.mean(dim=1)
    log_q = out[:, classes:].float().log_softmax(dim=1).view(ROTATIONS, n, ROTATIONS)
    own = torch.diagonal(log_q, dim1=0, dim2=2)  # n × 4: log q_r(R_r(x)), i.e. −KL[onehot(r) ‖ q_r]
    return (kl_uniform + own.mean(dim=1)) / math.log(2)


class RotationTask(TrainTask):
    """Classification of the unrotated batch + rotation prediction over the four rotated copies."""

    def __init__(self, classes: int, weight: float = 1.0):
        self.classes, self.weight = classes, weight

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return rotation_loss(model(rotations(x)).float(), y, self.classes, self.weight)


class RotPred(OwnNetwork, Detector):
    """Hendrycks et al., NeurIPS 2019, "Using Self-Supervised Learning Can Improve Model Robustness and
    Uncertainty" (§4.1): a 4-way rotation head trained jointly with the classifier; score KL[U ‖ p] minus the
    mean rotation KL over the four rotations."""

    name = "rotpred"
    description = "auxiliary 4-way rotation head, score KL(U‖p) − rotation loss (Hendrycks et al. 2019, RotPred)"
    paper = (
        "Hendrycks et al. 2019, Using Self-Supervised Learning Can Improve Model Robustness and Uncertainty (NeurIPS)"
    )
    criterion = "auroc"
    needs = Needs(trains=True)
    parameter_constraints = {"rotation_weight": [NON_NEGATIVE]}

    def __init__(
        self,
        rotation_weight: float = 1.0,
        epochs: int = 5,
        lr: float | None = None,
        batch_size: int = 128,
        seed: int = 0,
    ):
        self.rotation_weight = rotation_weight
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> RotPred:
        assert supplies is not None
        data = train.imageset
        _, h, w = data.shape
        if h != w:
            raise UsageError(f"rotpred rotates images by 90°, which needs square images; these are {h}×{w}")
        self.classes_ = data.num_classes
        identity = {"loss": "rotation", "rotation_weight": self.rotation_weight}
        self.train_own(
            supplies, RotationTask(self.classes_, self.rotation_weight), data, identity, self.classes_ + ROTATIONS
        )
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        k = self.classes_

        def score(net: nn.Module, x: torch.Tensor) -> torch.Tensor:
            return rotpred_score(net(rotations(x)), k)

        return own_net_outputs(data, self.net_, self.net_key_, "rotpred", score)
