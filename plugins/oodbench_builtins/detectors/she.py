"""Simplified Hopfield Energy (Zhang et al., ICLR 2023, eq. 6): stored patterns m_k = mean
penultimate feature of the correctly classified ID training samples of class k;
S(x) = h(x) · m_ŷ(x), the inner product with the pattern of the predicted class."""

from __future__ import annotations

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView

from ._common import class_means


class SHE(Detector):
    name = "she"
    description = "inner product with the predicted class's mean training feature (Zhang et al. 2023)"
    paper = "Zhang et al. 2023, Out-of-Distribution Detection based on In-Distribution Data Patterns Memorization"
    criterion = "auroc"

    def required_layers(self, model):
        return ["penultimate", "logits"]

    def fit(self, train: FeatureView) -> SHE:
        feats = train.features(["penultimate", "logits"])
        h, pred = feats["penultimate"], feats["logits"].argmax(dim=1)
        correct = pred == train.device_labels
        self.patterns_ = class_means(h[correct], pred[correct], feats["logits"].shape[1])[0]  # no sample: zeros
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(["penultimate", "logits"])
        pattern = self.patterns_[feats["logits"].argmax(dim=1)]
        return (feats["penultimate"] * pattern).sum(dim=1)
