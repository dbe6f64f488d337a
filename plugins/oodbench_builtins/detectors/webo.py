"""Weighted energy score of VOS (Du, Wang, Cai & Li, ICLR 2022, "VOS: Learning What You Don't Know by Virtual
Outlier Synthesis"): the energy with one non-negative weight per class.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView


@dataclass(frozen=True)
class ClassWeights:
    """A non-empty list of finite numbers with at least one above zero (the others are clipped to 0)."""

    def allows(self, value: Any) -> bool:
        if not isinstance(value, (list, tuple)) or not value:
            return False
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        return numbers and max(value) > 0

    def __str__(self) -> str:
        return "a list of finite per-class weights, at least one > 0"


class WeightedEBO(Detector):
    """Weighted energy (VOS, Du et al., ICLR 2022, the energy of its uncertainty loss):
    E(x) = −log Σ_k w_k exp f_k(x), w_k = max(0, ŵ_k); S(x) = −E(x) = logsumexp_k (f_k(x) + log w_k) (higher = ID;
    a class with w_k = 0 drops out). Equation numbers: the paper's text was not reachable here to check them; the
    form is the official code's (deeplearning-wisc/vos, ``classification/CIFAR/train_virtual.py``, ``log_sum_exp``).

    VOS learns ŵ (the code's ``weight_energy``, a ``Linear(K, 1)`` whose weight goes through a ReLU) jointly with
    the network, through its uncertainty loss on virtual outliers sampled from class-conditional Gaussians; that
    loss exists to shape the network's energies. A post-hoc detector has the network frozen: fitting ŵ alone
    would only reweight classes (on the test LeNet, virtual outliers sampled as VOS does have the same
    logsumexp as ID training samples, mean 2.87 vs 2.82). So, as pytorch-ood's ``WeightedEBO``, the weights are
    a parameter: pass VOS-trained ones (``weights=[...]``, one per class). The default ``None`` is w_k = 1 for
    every class, which makes the score exactly the energy score (Liu et al. 2020, eq. 5, T = 1).
    """

    name = "webo"
    description = "energy with per-class weights, −log Σ w_k exp f_k (VOS, Du et al. 2022); default w = 1: energy"
    paper = "Du et al. 2022, VOS: Learning What You Don't Know by Virtual Outlier Synthesis"
    criterion = "auroc"
    parameter_constraints = {"weights": [ClassWeights(), None]}

    def __init__(self, weights: Sequence[float] | None = None):
        self.weights = weights

    def log_weights(self, logits: torch.Tensor) -> torch.Tensor:
        """log max(0, w_k) on the logits' device (−inf for a clipped class); zeros when no weights are given."""
        k = logits.shape[1]
        if self.weights is None:
            return torch.zeros(k, dtype=logits.dtype, device=logits.device)
        if len(self.weights) != k:
            raise ValueError(f"webo: {len(self.weights)} class weights for a model with {k} classes")
        w = torch.as_tensor(self.weights, dtype=torch.float64, device=logits.device)
        return w.clamp_min(0).log().to(logits.dtype)

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        logits = data.logits().double()
        return torch.logsumexp(logits + self.log_weights(logits), dim=1)
