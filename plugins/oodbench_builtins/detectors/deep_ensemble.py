"""Deep Ensembles (Lakshminarayanan, Pritzel & Blundell, NeurIPS 2017), as paper 003 evaluates it ("DE").

K = 5 backbones trained independently (seeds s, s+1, …, s+K−1, the first being the run's own
backbone) through the one trainer and the checkpoint cache; S(x) = max_k of the averaged softmax.
Reproduces paper 003 Table 2, column DE.
"""

from __future__ import annotations

import torch

from oodbench import Detector, Needs, Supplies
from oodbench.models.features import FeatureView


class DeepEnsemble(Detector):
    name = "deep-ensemble"
    description = "max of the softmax averaged over K independently trained backbones (paper 003 'DE')"
    paper = "Lakshminarayanan et al. 2017, Simple and Scalable Predictive Uncertainty Estimation using Deep Ensembles"
    criterion = "tnr95"
    needs = Needs(trains=True)

    def __init__(self, members: int = 5, seed: int = 0):
        self.members = members
        self.seed = seed

    def fit(self, train: FeatureView, supplies: Supplies | None = None) -> DeepEnsemble:
        assert supplies is not None
        members = [supplies.models.backbone(seed=self.seed + i) for i in range(1, self.members)]
        self.models_ = [train.model] + [m.net for m in members]
        self.keys_ = ["run"] + [m.key for m in members]
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        probs = []
        for i, (model, key) in enumerate(zip(self.models_, self.keys_)):
            view = data if i == 0 else data.memo(("member", key), lambda m=model: data.with_model(m))
            probs.append(torch.softmax(view.logits(), dim=1))
        return torch.stack(probs).mean(0).max(dim=1).values
