"""Deep nearest neighbours (Sun, Ming, Zhu & Li, ICML 2022).

z = h/‖h‖ for penultimate features h; S(x) = −‖z(x) − z_(k)‖, the distance to the k-th nearest
normalised ID training feature (Algorithm 1). k = 50 (the paper's CIFAR-10 choice); grid k ∈ {1, 10,
20, 50, 100, 200, 500, 1000} (OpenOOD's sweep). The neighbour search runs in chunks of queries on
the model's device, so memory stays bounded; the top-k similarities are memoised per (view, k).
"""

from __future__ import annotations

import uuid

import torch
import torch.nn.functional as F

from oodbench import Detector
from oodbench.models.features import FeatureView

K_GRID = [1, 10, 20, 50, 100, 200, 500, 1000]


def topk_similarities(queries: torch.Tensor, bank: torch.Tensor, k: int, chunk: int = 2048) -> torch.Tensor:
    """The k largest cosine similarities of each (normalised) query to the (normalised) bank: chunked matrix
    products + ``topk`` on the queries' device, so memory stays O(chunk × bank)."""
    bank = bank.to(queries.device)
    k = min(k, bank.shape[0])
    return torch.cat([(q @ bank.T).topk(k, dim=1).values for q in queries.split(chunk)])


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
        self.bank_key_ = uuid.uuid4().hex  # names this fit's bank in memo keys (no host copy to hash it)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        z = F.normalize(data.features([self.layer])[self.layer], dim=1)
        k = min(self.k, len(self.bank_))
        sims = data.memo(("knn", self.bank_key_, self.layer, k), lambda: topk_similarities(z, self.bank_, k))
        s_k = sims[:, k - 1]
        return -torch.sqrt((2 - 2 * s_k).clamp_min(0))
