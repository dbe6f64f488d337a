"""fDBD: fast decision-boundary distance (Liu & Qin, ICML 2024, "Fast Decision Boundary based Out-of-Distribution
Detector").

With penultimate features z, the linear head f_c(z) = w_cᵀz + b_c and the predicted class ŷ, the distance from z
to the decision boundary between ŷ and c is |f_ŷ(z) − f_c(z)| / ‖w_ŷ − w_c‖ (the paper's eq. 3, closed form). The
score averages it over the classes c ≠ ŷ and divides by ‖z − μ‖, the distance to the mean μ of the ID training
features (eq. 5, the regularised score the paper's tables report): ID samples sit farther from the boundaries
relative to their distance from the training mean. Higher = ID. Hyperparameter-free; fit computes μ only.
"""

from __future__ import annotations

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView

from ._common import head_weights


class FDBD(Detector):
    name = "fdbd"
    description = "mean distance to the decision boundaries / distance to the ID feature mean (Liu & Qin 2024)"
    paper = "Liu & Qin 2024, Fast Decision Boundary based Out-of-Distribution Detector"
    criterion = "auroc"

    def required_layers(self, model):
        return ["penultimate", "logits"]

    def fit(self, train: FeatureView) -> FDBD:
        self.mean_ = train.features(["penultimate"])["penultimate"].double().mean(dim=0)
        w, _ = head_weights(train.model)
        w = w.double().to(self.mean_.device)
        self.pair_norms_ = torch.cdist(w, w)  # ‖w_p − w_c‖ for every pair of classes
        self.pair_norms_.fill_diagonal_(1.0)  # c = ŷ adds |f_ŷ − f_ŷ| = 0: any non-zero divisor
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(["penultimate", "logits"])
        z, logits = feats["penultimate"].double(), feats["logits"].double()
        top, pred = logits.max(dim=1)
        distances = (top[:, None] - logits) / self.pair_norms_.to(z.device)[pred]  # N × C, 0 at c = ŷ
        mean_distance = distances.sum(dim=1) / (logits.shape[1] - 1)
        return mean_distance / (z - self.mean_.to(z.device)).norm(dim=1).clamp_min(1e-12)
