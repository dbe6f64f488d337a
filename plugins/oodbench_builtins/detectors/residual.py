"""Residual: ViM's virtual logit alone (Wang, Li, Feng & Zhang, CVPR 2022, "ViM: Out-Of-Distribution with
Virtual-logit Matching"; OpenOOD v1.5's ``residual_postprocessor.py``).
"""

from __future__ import annotations

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView

from .vim import principal_residual, residual_norm


class Residual(Detector):
    """Residual score (Wang, Li, Feng & Zhang, CVPR 2022, "ViM: Out-Of-Distribution with Virtual-logit Matching").

    With the origin u = −W⁺b of the classifier head (W, b) and the principal subspace P spanned by the D leading
    eigenvectors of the covariance of the ID training features x − u, the residual x^{P⊥} is the part of x − u off
    P; S(x) = −‖x^{P⊥}‖ (the norm that eq. 6 and eq. 8 scale by α, without eq. 8's energy term and without α,
    which does not change the ranking; negated so that higher = ID). It is the paper's "Residual" baseline.

    The subspace is the very one :class:`~.vim.ViM` fits (shared :func:`~.vim.principal_residual`), with the
    paper's D: 1000 if the feature dimension N ≥ 2048, 512 if N ≥ 768, else N/2. Two departures from OpenOOD's
    ``residual_postprocessor.py``, both towards the paper: OpenOOD's ``configs/postprocessors/residual.yml`` fixes
    D = 512 whatever N (it would leave no residual at all for N ≤ 512, e.g. the LeNet's 84 features), and it fits
    the subspace on its ID *validation* loader where the paper (and OpenOOD's own ViM) use the training features.
    OpenOOD sweeps nothing for it: no grid here either (``dim`` is a fit-time choice, settable with ``--param``).
    """

    name = "residual"
    description = "norm of the feature residual off the principal subspace, ViM without energy (Wang et al. 2022)"
    paper = "Wang et al. 2022, ViM: Out-Of-Distribution with Virtual-logit Matching (Residual baseline)"
    criterion = "auroc"

    def __init__(self, dim: int | None = None):
        self.dim = dim

    def required_layers(self, model) -> list[str]:
        return ["penultimate"]

    def fit(self, train: FeatureView) -> Residual:
        x = train.features(["penultimate"])["penultimate"].double()
        if self.dim is not None and self.dim >= x.shape[1]:
            raise ValueError(f"residual: dim {self.dim} leaves no residual of {x.shape[1]}-d features (dim < N)")
        self.origin_, self.residual_basis_, self.dim_ = principal_residual(x, train.model, self.dim)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return -residual_norm(data.features(["penultimate"])["penultimate"], self.origin_, self.residual_basis_)

    def describe_fit(self) -> dict:
        return {"dim": self.dim_}
