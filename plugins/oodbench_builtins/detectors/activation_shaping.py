"""Post-hoc activation and weight shaping of the penultimate layer, scored by the energy of the
re-computed logits. Each shapes the penultimate feature vector h (the input of the classifier
head); for CNNs with global pooling that is the pooled feature map.
"""

from __future__ import annotations

import numpy as np
import torch

from oodbench import Detector
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import Options

from ._common import PERCENTILES, energy, head_logits, head_weights, percentile


class _PenultimateEnergy(Detector):
    criterion = "auroc"

    def required_layers(self, model):
        return ["penultimate"]

    def shape(self, h: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        h = data.features(["penultimate"])["penultimate"]
        return energy(head_logits(data.model, self.shape(h)))


class ReAct(_PenultimateEnergy):
    """ReAct (Sun, Guo & Li, NeurIPS 2021, eq. 2): h̄ = min(h, c), c = the p-th percentile of ID
    training activations (p = 90); S(x) = energy of W h̄ + b."""

    name = "react"
    description = "clip penultimate activations at a training percentile, then energy (Sun et al. 2021)"
    paper = "Sun et al. 2021, ReAct: Out-of-distribution Detection With Rectified Activations"

    def __init__(self, percentile: float = 90):
        self.percentile = percentile

    def search_space(self):
        return {"percentile": [85, 90, 95, 99]}

    def fit(self, train: FeatureView) -> ReAct:
        self.activations_ = train.features(["penultimate"])["penultimate"]
        self.thresholds_ = {}
        return self

    def threshold(self) -> float:
        if self.percentile not in self.thresholds_:
            self.thresholds_[self.percentile] = percentile(self.activations_, self.percentile)
        return self.thresholds_[self.percentile]

    def shape(self, h):
        return h.clamp(max=self.threshold())

    def describe_fit(self):
        return {"threshold": self.threshold()}


def _prune(h: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep each sample's top (100 − p)% activations; returns (pruned h, keep mask)."""
    n = h.shape[1]
    keep = max(1, n - int(np.round(n * p / 100.0)))  # the official ASH code's count
    idx = h.topk(keep, dim=1).indices
    mask = torch.zeros_like(h, dtype=torch.bool).scatter_(1, idx, True)
    return torch.where(mask, h, torch.zeros_like(h)), mask


class ASH(_PenultimateEnergy):
    """Activation shaping (Djurisic et al., ICLR 2023, §3): prune all but the top (100−p)% of each
    sample's activations, then ASH-P keeps them, ASH-B sets them to s1/K, ASH-S scales them by
    exp(s1/s2) (s1, s2: sums before/after pruning, K: number kept); S(x) = energy."""

    name = "ash"
    parameter_constraints = {"variant": [Options("s", "p", "b")]}
    description = "activation shaping ASH-S/-P/-B of the penultimate features, then energy (Djurisic et al. 2023)"
    paper = "Djurisic et al. 2023, Extremely Simple Activation Shaping for OOD Detection"

    def __init__(self, variant: str = "s", percentile: float = 90):
        self.variant = variant
        self.percentile = percentile

    def search_space(self):
        return {"percentile": PERCENTILES}

    def shape(self, h):
        if self.variant not in ("s", "p", "b"):
            raise ValueError(f"ash variant must be s, p or b, got {self.variant!r}")
        s1 = h.sum(dim=1, keepdim=True)
        pruned, mask = _prune(h, self.percentile)
        if self.variant == "p":
            return pruned
        if self.variant == "b":
            k = mask.sum(dim=1, keepdim=True).clamp_min(1)
            return mask.to(h.dtype) * (s1 / k)
        s2 = pruned.sum(dim=1, keepdim=True)
        return pruned * torch.exp(s1 / s2.clamp_min(1e-12))


class SCALE(_PenultimateEnergy):
    """SCALE (Xu, Lian, Zhang & Cheng, ICLR 2024, eq. 4): h' = h·exp(s1/s2), s1 = Σ h, s2 = the sum of
    the top (100−p)% activations — ASH-S's scaling without its pruning; S(x) = energy."""

    name = "scale"
    description = "scale penultimate features by exp(total/top-k sum), no pruning, then energy (Xu et al. 2024)"
    paper = "Xu et al. 2024, Scaling for Training Time and Post-hoc Out-of-distribution Detection Enhancement"

    def __init__(self, percentile: float = 85):
        self.percentile = percentile

    def search_space(self):
        return {"percentile": PERCENTILES}

    def shape(self, h):
        s1 = h.sum(dim=1, keepdim=True)
        pruned, _ = _prune(h, self.percentile)
        return h * torch.exp(s1 / pruned.sum(dim=1, keepdim=True).clamp_min(1e-12))


class DICE(Detector):
    """DICE (Sun & Li, ECCV 2022, eq. 3–4): contribution matrix V = W ⊙ h̄ (h̄: mean ID training
    feature); keep the weights whose contribution is above the p-th percentile (sparsity p = 90);
    S(x) = energy of (W ⊙ M) h + b."""

    name = "dice"
    description = "sparsify classifier weights by their mean contribution, then energy (Sun & Li 2022)"
    paper = "Sun & Li 2022, DICE: Leveraging Sparsification for Out-of-Distribution Detection"
    criterion = "auroc"

    def __init__(self, sparsity: float = 90):
        self.sparsity = sparsity

    def required_layers(self, model):
        return ["penultimate"]

    def search_space(self):
        return {"sparsity": [10, 30, 50, 70, 90, 99]}

    def fit(self, train: FeatureView) -> DICE:
        w, b = head_weights(train.model)
        self.weight_, self.bias_ = w, b
        self.contribution_ = w * train.features(["penultimate"])["penultimate"].mean(dim=0)[None, :]
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        thresh = percentile(self.contribution_, self.sparsity)
        masked = self.weight_ * (self.contribution_ > thresh)
        h = data.features(["penultimate"])["penultimate"]
        return energy(h @ masked.T + self.bias_)
