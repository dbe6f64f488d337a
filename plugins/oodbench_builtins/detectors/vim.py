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

CHUNK = 8192  # rows per chunk of the training features: memory stays O(chunk × N)


def default_dim(n: int) -> int:
    """The paper's principal-subspace dimension D for feature dimension N (the module docstring's rule)."""
    return 1000 if n >= 2048 else 512 if n >= 768 else n // 2


def principal_residual(x: torch.Tensor, model, dim: int | None) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(origin u = −W⁺b, orthonormal basis of the residual space P⊥ (N × (N − D)), D) from training features ``x``
    (float64) and the model's head (W, b): P spans the D leading eigenvectors of the covariance of x − u (the
    paper's x^{P⊥}, defined before eq. 6).
    Shared by :class:`ViM` and ``residual`` (:mod:`.residual`)."""
    w, b = head_weights(model)
    n = x.shape[1]
    dim = dim or default_dim(n)
    origin = -(torch.linalg.pinv(w.double()) @ b.double())
    cov = torch.zeros(n, n, dtype=torch.float64, device=x.device)
    for chunk in x.split(CHUNK):
        c = chunk - origin
        cov += c.T @ c
    eigvals, eigvecs = torch.linalg.eigh(cov / len(x))
    order = eigvals.argsort(descending=True)
    return origin, eigvecs[:, order[dim:]].contiguous(), dim


def residual_norm(x: torch.Tensor, origin: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """‖x^{P⊥}‖ = ‖(x − u) R‖ per row (float64), R the residual basis of :func:`principal_residual`."""
    return ((x.double() - origin) @ basis).norm(dim=1)


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
        self.origin_, self.residual_basis_, dim = principal_residual(x, train.model, self.dim)
        residual = torch.cat([residual_norm(c, self.origin_, self.residual_basis_) for c in x.split(CHUNK)])
        self.alpha_ = float(z.max(dim=1).values.sum() / residual.sum())
        self.dim_ = dim
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(["penultimate", "logits"])
        residual = residual_norm(feats["penultimate"], self.origin_, self.residual_basis_)
        energy = torch.logsumexp(feats["logits"].double(), dim=1)
        return energy - self.alpha_ * residual

    def describe_fit(self):
        return {"dim": self.dim_, "alpha": self.alpha_}
