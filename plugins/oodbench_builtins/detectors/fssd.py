"""Feature Space Singularity Distance (paper 003: Huang et al., SafeAI 2021, Algorithm 1).

For each feature layer k:
  1. FSS  F*_k = mean of F_k(x_noise) over S samples x_noise ~ U[0, 1]       (Algorithm 1, step 1)
  2. input pre-processing  x̃ = x + ε · sign(∇_x ‖F_k(x) − F*_k‖)            (step 2)
  3. FSSD_k(x) = ‖F_k(x̃) − F*_k‖                                           (eq. 1, step 3)
FSSD-Ensem(x) = Σ_k α_k FSSD_k(x), with α from logistic regression on the tuning set
(Lee et al. 2018 / SPEC.md "Layer ensembles"); ε from {0, 0.01, …, 0.2} by TNR@95.
OOD samples sit near the FSS, so a *larger* distance means more in-distribution: the score
is FSSD itself (no negation). Convolutional maps are channel means (see ``oodbench.backbones``).

Reproduces paper 003 Table 2, column FSSD (row A: FMNIST vs MNIST with LeNet, AUROC 99.6).
With ``--tune none`` (no OOD data to weight layers) the score is the deepest layer's FSSD, ε = 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import numpy as np
import torch

from oodbench import ImageSet, LayerwiseDetector
from oodbench.features import FeatureView
from oodbench.perturbation import gradient_sign, perturbed_scores

from ._common import EPSILONS


class FSSD(LayerwiseDetector):
    name = "fssd"
    description = "Feature Space Singularity Distance with layer ensemble + input pre-processing (paper 003)"
    paper = "Huang et al. 2021, Feature Space Singularity for Out-of-Distribution Detection"
    criterion = "tnr95"

    def __init__(self, layers: Sequence[str] | None = None, epsilon: float = 0.0, n_noise: int = 1000, seed: int = 0):
        self.layers = layers
        self.epsilon = epsilon
        self.n_noise = n_noise
        self.seed = seed

    def layer_names(self, model) -> list[str]:
        return list(self.layers) if self.layers else list(model.feature_layers)

    def search_space(self) -> dict[str, list]:
        return {"epsilon": EPSILONS}

    def fit(self, train: FeatureView) -> FSSD:
        layers = self.layer_names(train.model)
        shape = tuple(train.imageset.shape)
        g = torch.Generator().manual_seed(self.seed)
        noise = torch.randint(0, 256, (self.n_noise, *shape), generator=g, dtype=torch.uint8)
        noise_set = ImageSet(noise, torch.full((self.n_noise,), -1), "uniform-noise")
        feats = FeatureView(noise_set, train.model, train.device, train.batch_size, train.amp).features(layers)
        self.layers_ = layers
        self.fss_ = {k: feats[k].mean(dim=0) for k in layers}
        self.fit_id_ = uuid.uuid4().hex
        return self

    def _distance(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        return (feature - self.fss_[layer].to(feature.device)).norm(dim=1)

    def layer_scores(self, data: FeatureView) -> np.ndarray:
        self.check_fitted()
        if self.epsilon == 0:
            feats = data.features(self.layers_)
            return torch.stack([self._distance(feats[k], k) for k in self.layers_], dim=1).numpy()
        model = data.model
        columns = []
        for k in self.layers_:

            def fssd(x: torch.Tensor, k: str = k) -> torch.Tensor:
                return self._distance(model.forward_features(x, [k])[k], k)

            sign = gradient_sign(data, ("fssd", self.fit_id_, k), fssd)  # step 2: ascend FSSD
            columns.append(perturbed_scores(data, ("fssd", self.fit_id_, k), sign, self.epsilon, fssd))
        return torch.stack(columns, dim=1).numpy()
