"""Deep nearest neighbours (Sun, Ming, Zhu & Li, ICML 2022).

z = h/‖h‖ for penultimate features h; S(x) = −‖z(x) − z_(k)‖, the distance to the k-th nearest
normalised ID training feature (Algorithm 1). k = 50 (the paper's CIFAR-10 choice); grid k ∈ {1, 10,
20, 50, 100, 200, 500, 1000} (OpenOOD's sweep). The neighbour search runs in chunks of queries on
the model's device, so memory stays bounded; the top-k similarities are memoised per (view, k).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from oodbench import Detector
from oodbench.detector import state_key
from oodbench.features import FeatureView

K_GRID = [1, 10, 20, 50, 100, 200, 500, 1000]


def topk_similarities(queries: torch.Tensor, bank: torch.Tensor, k: int, device, chunk: int = 2048) -> torch.Tensor:
    """The k largest cosine similarities of each (normalised) query to the (normalised) bank."""
    bank = bank.to(device)
    out = []
    for q in queries.split(chunk):
        sims = q.to(device) @ bank.T
        out.append(sims.topk(min(k, bank.shape[0]), dim=1).values.cpu())
    return torch.cat(out)


class KNN(Detector):
    name = "knn"
    description = "distance to the k-th nearest normalised training feature (Sun et al. 2022)"
    paper = "Sun et al. 2022, Out-of-Distribution Detection with Deep Nearest Neighbors"
    criterion = "auroc"

    def __init__(self, k: int = 50, layer: str = "penultimate"):
        self.k = k
        self.layer = layer

    def required_layers(self, model):
        return [self.layer]

    def search_space(self):
        return {"k": K_GRID}

    def fit(self, train: FeatureView) -> KNN:
        self.bank_ = F.normalize(train.features([self.layer])[self.layer], dim=1)
        self.bank_key_ = state_key(self.bank_)
        self.device_ = train.device
        return self

    def score_samples(self, data: FeatureView) -> np.ndarray:
        self.check_fitted()
        z = F.normalize(data.features([self.layer])[self.layer], dim=1)
        k = min(self.k, len(self.bank_))
        sims = data.memo(
            ("knn", self.bank_key_, self.layer, k), lambda: topk_similarities(z, self.bank_, k, self.device_)
        )
        s_k = sims[:, k - 1]
        return -torch.sqrt((2 - 2 * s_k).clamp_min(0)).numpy()
