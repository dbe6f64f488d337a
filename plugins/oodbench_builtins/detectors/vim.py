"""Virtual-logit matching (Wang, Li, Feng & Zhang, CVPR 2022).

From ID train penultimate features x and the head (W, b): origin u = −W⁺b; principal subspace P of
dimension D of the (x − u) covariance; residual ‖x^{P⊥}‖; α = Σ_i max_k z_ik / Σ_i ‖x_i^{P⊥}‖ over
the training set (eq. 6). S(x) = logsumexp(z) − α‖x^{P⊥}‖ (negated ViM score of eq. 8, so higher = ID).
D: 1000 if the feature dimension N ≥ 2048, 512 if N ≥ 768, else N/2 (the paper's choices).
"""

from __future__ import annotations

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView

from ._common import head_weights


class ViM(Detector):
    name = "vim"
    description = "virtual logit from the residual off the principal subspace (Wang et al. 2022)"
    paper = "Wang et al. 2022, ViM: Out-Of-Distribution with Virtual-logit Matching"
    criterion = "auroc"

    def __init__(self, dim: int | None = None):
        self.dim = dim

    def required_layers(self, model):
        return ["penultimate", "logits"]

    def fit(self, train: FeatureView) -> ViM:
        feats = train.features(["penultimate", "logits"])
        x, z = feats["penultimate"].double(), feats["logits"].double()
        w, b = head_weights(train.model)
        n = x.shape[1]
        dim = self.dim or (1000 if n >= 2048 else 512 if n >= 768 else n // 2)
        self.origin_ = -(torch.linalg.pinv(w.double()) @ b.double())
        cov = torch.zeros(n, n, dtype=torch.float64, device=x.device)
        for chunk in x.split(8192):  # chunked: memory stays O(chunk × N)
            c = chunk - self.origin_
            cov += c.T @ c
        eigvals, eigvecs = torch.linalg.eigh(cov / len(x))
        order = eigvals.argsort(descending=True)
        self.residual_basis_ = eigvecs[:, order[dim:]].contiguous()
        residual = torch.cat([((c - self.origin_) @ self.residual_basis_).norm(dim=1) for c in x.split(8192)])
        self.alpha_ = float(z.max(dim=1).values.sum() / residual.sum())
        self.dim_ = dim
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(["penultimate", "logits"])
        residual = ((feats["penultimate"].double() - self.origin_) @ self.residual_basis_).norm(dim=1)
        energy = torch.logsumexp(feats["logits"].double(), dim=1)
        return energy - self.alpha_ * residual

    def describe_fit(self):
        return {"dim": self.dim_, "alpha": self.alpha_}
