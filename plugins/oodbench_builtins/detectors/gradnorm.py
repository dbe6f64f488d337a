"""GradNorm (Huang, Geng & Li, NeurIPS 2021, eq. 4): the L1 norm of the gradient of
KL(u ‖ softmax(f(x)/T)) with respect to the last layer's weights, T = 1.

For a linear head z = W h + b the gradient w.r.t. W is the outer product (softmax(z/T) − u) hᵀ / T,
so its L1 norm is ‖softmax(z/T) − u‖₁ · ‖h‖₁ / T: computed in closed form for the whole batch,
no per-sample backward passes (the paper's implementation does one backward pass per sample).
"""

from __future__ import annotations

import torch

from oodbench import Detector, Needs
from oodbench.models.features import FeatureView


class GradNorm(Detector):
    name = "gradnorm"
    description = "L1 norm of the last-layer gradient of KL(uniform ‖ softmax) (Huang et al. 2021)"
    paper = "Huang et al. 2021, On the Importance of Gradients for Detecting Distributional Shifts in the Wild"
    criterion = "auroc"
    needs = Needs(gradients="network")  # of the head's weights, in closed form

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def required_layers(self, model):
        return ["penultimate", "logits"]

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        feats = data.features(["penultimate", "logits"])
        t = self.temperature
        p = torch.softmax(feats["logits"] / t, dim=1)
        u = 1.0 / p.shape[1]
        return (p - u).abs().sum(dim=1) * feats["penultimate"].abs().sum(dim=1) / t
