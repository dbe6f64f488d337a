"""Learned confidence branch (DeVries & Taylor 2018, *Learning Confidence for Out-of-Distribution Detection in
Neural Networks*, arXiv 1802.04865; the ``conf_branch`` trainer and postprocessor of OpenOOD v1.5).

Beside the K class logits the network predicts one confidence logit s, c = sigmoid(s) (paper §3.1). The network
is the run's backbone architecture with a final linear layer of K + 1 outputs: rows 1…K are the classifier, row
K + 1 is the confidence branch — a linear map of the penultimate features, exactly OpenOOD's ``ConfBranchNet``
(``fc`` and ``confidence`` both ``nn.Linear(feature_size, ·)``). Training (paper §3.1–3.2):
    p = softmax(z), c = sigmoid(s), both clamped to [ε, 1 − ε] (ε = 1e-12, OpenOOD's ``eps``);
    p′ = c′·p + (1 − c′)·y, with c′ = c on a random half of the batch (the "hints", b ~ Bernoulli(1/2)) and c′ = 1
    on the other half; L_t = −log p′_y, L_c = −log c, L = L_t + λ·L_c (batch means);
    after every step the budget β adjusts λ: λ ← λ/1.01 when L_c < β, else λ ← λ/0.99 (OpenOOD's update, kept on
    the device so no step waits for the host). λ = 0.1 and β = 0.3 at the start, as OpenOOD's
    ``train_conf_branch.yml``.
Score: the confidence logit s (paper §3.3 thresholds c; s = log(c/(1 − c)) ranks identically and does not
saturate at float32's 1.0, as ``abnormality-module`` does). The paper's optional input preprocessing (§3.3, an
FGSM-style step towards higher c, ε tuned on out-of-distribution or misclassified samples) is not applied, as in
OpenOOD's ``ConfBranchPostprocessor``.

Training goes through the one trainer with the backbone's own recipe (LeNet: Adam 1e-3, cosine), 5 epochs by
default; OpenOOD's ``train_conf_branch.yml`` trains 200 epochs with SGD (lr 0.1, Nesterov momentum 0.9, weight decay
5e-4). The hint draws come from torch's generator on the training device (seeded by the trainer), so a CPU and a CUDA
run draw different hints.
"""

from __future__ import annotations

import torch
from torch import nn

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView
from oodbench.models.train import TrainTask
from oodbench.plugins.constraints import POSITIVE, Interval

from ._common import OwnNetwork, own_backbone_logits

CLAMP_EPS = 1e-12  # OpenOOD's trainer.eps


def confidence_loss(
    logits: torch.Tensor,
    conf_logit: torch.Tensor,
    labels: torch.Tensor,
    lmbda: float | torch.Tensor,
    hints: torch.Tensor,
    eps: float = CLAMP_EPS,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(L_t + λ·L_c, L_c) of DeVries & Taylor 2018 §3.1 for N×K ``logits``, N confidence logits and a boolean
    N-vector ``hints`` (True: p′ = c·p + (1 − c)·y; False: p′ = p), in float32. Only p′_y enters L_t, and
    p′_y = c′·p_y + (1 − c′)."""
    p_y = logits.float().softmax(dim=1).clamp(eps, 1 - eps).gather(1, labels[:, None]).squeeze(1)
    c = torch.sigmoid(conf_logit.float()).clamp(eps, 1 - eps)
    c_hint = torch.where(hints, c, torch.ones_like(c))
    task = -(c_hint * p_y + (1 - c_hint)).log().mean()
    conf = -c.log().mean()
    return task + lmbda * conf, conf


class ConfBranchTask(TrainTask):
    """L = L_t + λ·L_c with hints on a random ``hint_rate`` of each batch and λ adjusted to the budget β after
    every step; the last output column is the confidence logit."""

    def __init__(self, lmbda: float, beta: float, hint_rate: float = 0.5):
        self.lmbda0, self.beta, self.hint_rate = lmbda, beta, hint_rate
        self.lmbda: torch.Tensor | None = None  # the adjusted λ, on the training device after the first step

    def current_lambda(self, device: torch.device) -> torch.Tensor:
        if self.lmbda is None:
            self.lmbda = torch.tensor(float(self.lmbda0), device=device)
        return self.lmbda

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = model(x).float()
        hints = torch.rand(len(x), device=x.device) < self.hint_rate
        lam = self.current_lambda(x.device)
        total, conf = confidence_loss(out[:, :-1], out[:, -1], y, lam, hints)
        self.lmbda = torch.where(conf.detach() < self.beta, lam / 1.01, lam / 0.99)
        return total

    def eval_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The loss with hints on every sample and the current λ, leaving λ as it is."""
        out = model(x).float()
        hints = torch.ones(len(x), dtype=torch.bool, device=x.device)
        return confidence_loss(out[:, :-1], out[:, -1], y, self.current_lambda(x.device), hints)[0]


class ConfBranch(OwnNetwork, Detector):
    """DeVries & Taylor 2018, "Learning Confidence for Out-of-Distribution Detection in Neural Networks" (arXiv):
    a confidence branch c = sigmoid(s) trained with the interpolated prediction p′ = c·p + (1 − c)·y, the loss
    L_t + λ·(−log c) and the budget β (§3.1–3.2); score s, the logit of c."""

    name = "conf-branch"
    description = "learned confidence branch c beside the classifier (hints, −log c, budget β), score c (DeVries 2018)"
    paper = "DeVries & Taylor 2018, Learning Confidence for Out-of-Distribution Detection in Neural Networks (arXiv)"
    criterion = "auroc"
    needs = Needs(trains=True)
    parameter_constraints = {"lmbda": [POSITIVE], "hint_rate": [Interval(float, 0, 1)]}

    def __init__(
        self,
        lmbda: float = 0.1,
        beta: float = 0.3,
        hint_rate: float = 0.5,
        epochs: int = 5,
        lr: float | None = None,
        batch_size: int = 128,
        seed: int = 0,
    ):
        self.lmbda = lmbda
        self.beta = beta
        self.hint_rate = hint_rate
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> ConfBranch:
        assert supplies is not None
        task = ConfBranchTask(self.lmbda, self.beta, self.hint_rate)
        identity = {"loss": "confidence", "lmbda": self.lmbda, "beta": self.beta, "hint_rate": self.hint_rate}
        self.train_own(supplies, task, train.imageset, identity, train.imageset.num_classes + 1)
        if task.lmbda is not None:  # trained here (not loaded): the budget's λ at the end
            self.train_log_["final_lambda"] = float(task.lmbda)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return own_backbone_logits(data, self.net_, self.net_key_)[:, -1]
