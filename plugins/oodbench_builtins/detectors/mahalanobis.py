"""Mahalanobis detector (Lee, Lee, Lee & Shin, NeurIPS 2018) with its layer ensemble.

Per layer ℓ: class means μ_c and one tied covariance Σ from ID train features (eq. 1);
M_ℓ(x) = max_c −(f_ℓ(x) − μ_c)ᵀ Σ⁻¹ (f_ℓ(x) − μ_c) (eq. 2); input pre-processing
x̃ = x + ε·sign(∇_x M_ℓ(x)) (eq. 4, moving towards the closest class); the layer scores are
combined by logistic regression on the tuning set (SPEC.md "Layer ensembles"). Feature maps are
channel means (Lee et al.'s code). Grid ε ∈ {0, 0.01, …, 0.2}, selected by TNR@95, as paper 003
does for its "Maha" column (Table 2). Without tuning: the deepest layer (penultimate), ε = 0.
Statistics are accumulated in chunks (bounded memory for large training sets).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import torch

from oodbench import LayerwiseDetector, Needs
from oodbench.models.backbones import LOGITS
from oodbench.models.features import FeatureView
from oodbench.models.perturbation import gradient_sign, perturbed_scores

from ._common import EPSILONS, LEE2018_MAHALANOBIS_EPSILONS, ODIN_PAPER_EPSILONS, class_gaussians, mahalanobis_sq


class Mahalanobis(LayerwiseDetector):
    name = "mahalanobis"
    description = (
        "class-conditional Gaussians, tied covariance per layer, pre-processing + LR layer ensemble (Lee et al. 2018)"
    )
    paper = "Lee et al. 2018, A Simple Unified Framework for Detecting OOD Samples and Adversarial Attacks"
    criterion = "tnr95"
    needs = Needs(gradients="inputs")  # input pre-processing where the grid picks ε > 0

    def __init__(self, layers: Sequence[str] | None = None, epsilon: float = 0.0):
        self.layers = layers
        self.epsilon = epsilon

    def layer_names(self, model) -> list[str]:
        return list(self.layers) if self.layers else [n for n in model.feature_layers if n != LOGITS]

    grids = {
        "paper003": {"epsilon": EPSILONS},
        "odin": {"epsilon": ODIN_PAPER_EPSILONS},
        "lee2018": {"epsilon": LEE2018_MAHALANOBIS_EPSILONS},
        "openood": {"epsilon": [0.0014]},
    }

    def search_space(self):
        return self.grids["paper003"]

    def fit(self, train: FeatureView) -> Mahalanobis:
        layers = self.layer_names(train.model)
        feats = train.features(layers)
        num_classes = int(train.labels.max()) + 1
        self.means_, self.precision_ = {}, {}
        for k in layers:
            means, cov = class_gaussians(feats[k], train.labels, num_classes)
            self.means_[k] = means
            self.precision_[k] = torch.linalg.pinv(cov, hermitian=True).float()
        self.layers_ = layers
        self.fit_id_ = uuid.uuid4().hex
        return self

    def _score(self, f: torch.Tensor, k: str) -> torch.Tensor:
        d = mahalanobis_sq(f, self.means_[k].to(f.device), self.precision_[k].to(f.device))
        return -d.min(dim=1).values

    def layer_scores(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        if self.epsilon == 0:
            feats = data.features(self.layers_)
            return torch.stack([self._score(feats[k], k) for k in self.layers_], dim=1)
        model = data.model
        columns = []
        for k in self.layers_:

            def score(x: torch.Tensor, k: str = k) -> torch.Tensor:
                return self._score(model.forward_features(x, [k])[k], k)

            sign = gradient_sign(data, ("maha", self.fit_id_, k), score)
            columns.append(perturbed_scores(data, ("maha", self.fit_id_, k), sign, self.epsilon, score))
        return torch.stack(columns, dim=1)


class RelativeMahalanobis(LayerwiseDetector):
    """Relative Mahalanobis distance (Ren et al. 2021, eq. 3): RMD_c(x) = MD_c(x) − MD_0(x), with
    MD_0 the distance under one Gaussian fitted to all ID training features; S(x) = −min_c RMD_c(x).
    Penultimate features by default."""

    name = "rmd"
    description = "relative Mahalanobis distance: class Gaussians minus a background Gaussian (Ren et al. 2021)"
    paper = "Ren et al. 2021, A Simple Fix to Mahalanobis Distance for Improving Near-OOD Detection"
    criterion = "auroc"

    def __init__(self, layers: Sequence[str] | None = None):
        self.layers = layers

    def layer_names(self, model) -> list[str]:
        return list(self.layers) if self.layers else ["penultimate"]

    def fit(self, train: FeatureView) -> RelativeMahalanobis:
        from ._common import global_gaussian

        layers = self.layer_names(train.model)
        feats = train.features(layers)
        num_classes = int(train.labels.max()) + 1
        self.stats_ = {}
        for k in layers:
            means, cov = class_gaussians(feats[k], train.labels, num_classes)
            mean0, cov0 = global_gaussian(feats[k])
            self.stats_[k] = (
                means,
                torch.linalg.pinv(cov, hermitian=True).float(),
                mean0[None],
                torch.linalg.pinv(cov0, hermitian=True).float(),
            )
        self.layers_ = layers
        return self

    def layer_scores(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(self.layers_)
        cols = []
        for k in self.layers_:
            means, prec, mean0, prec0 = self.stats_[k]
            rmd = mahalanobis_sq(feats[k], means, prec) - mahalanobis_sq(feats[k], mean0, prec0)
            cols.append(-rmd.min(dim=1).values)
        return torch.stack(cols, dim=1)
