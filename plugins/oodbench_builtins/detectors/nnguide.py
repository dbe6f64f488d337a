"""Nearest Neighbor Guidance (Park, Jung & Teoh, ICCV 2023, eq. 4–6).

Bank: normalised ID training features, each scaled by its own confidence (energy);
guidance G(x) = mean of the k largest similarities between the normalised feature of x and the bank;
S(x) = energy(x) · G(x). ``bank_fraction`` subsamples the bank (seeded). Defaults k = 100 and a bank of 1 % of
ID train, as OpenOOD v1.5 runs it (configs/postprocessors/nnguide.yml: ``K: 100``, ``alpha: 0.01``, the first 1 %
of a shuffled train loader) and as the paper subsamples its ImageNet bank; the paper's own code is not among the
shared papers, so OpenOOD's configuration is the source. ``--tune`` searches k.
"""

from __future__ import annotations

import uuid

import torch
import torch.nn.functional as F

from oodbench import Detector
from oodbench.models.features import FeatureView

from ._common import energy
from .knn import topk_similarities


class NNGuide(Detector):
    name = "nnguide"
    description = "energy × similarity to confidence-scaled nearest training features (Park et al. 2023)"
    paper = "Park et al. 2023, Nearest Neighbor Guidance for Out-of-Distribution Detection"
    criterion = "auroc"

    def __init__(self, k: int = 100, bank_fraction: float = 0.01, seed: int = 0):
        self.k = k
        self.bank_fraction = bank_fraction
        self.seed = seed

    def required_layers(self, model):
        return ["penultimate", "logits"]

    def search_space(self):
        return {"k": [1, 10, 50, 100, 500]}

    def fit(self, train: FeatureView) -> NNGuide:
        feats = train.features(["penultimate", "logits"])
        n = len(train)
        keep = max(1, int(round(n * self.bank_fraction)))
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed), device="cpu")  # same on any device
        idx = perm[:keep].to(train.device)
        self.bank_ = F.normalize(feats["penultimate"][idx], dim=1) * energy(feats["logits"][idx])[:, None]
        self.bank_key_ = uuid.uuid4().hex  # names this fit's bank in memo keys (no host copy to hash it)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(["penultimate", "logits"])
        z = F.normalize(feats["penultimate"], dim=1)
        k = min(self.k, len(self.bank_))
        sims = data.memo(("nnguide", self.bank_key_, k), lambda: topk_similarities(z, self.bank_, k))
        guidance = sims.mean(dim=1)
        return energy(feats["logits"]) * guidance
