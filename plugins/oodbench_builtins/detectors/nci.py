"""NCI: the Neural-Collapse-inspired detector (Liu & Qin, CVPR 2025, "Detecting Out-of-distribution through the
Lens of Neural Collapse", arXiv:2311.01479).

Neural collapse predicts that ID penultimate features h, centred on the global mean μ_G of the ID training
features, align with the classifier's weight vector of their class, and that ID features lie farther from the
origin than OOD features. NCI scores both: the proximity of h − μ_G to the weight vector w_ŷ of the predicted
class (the paper's pScore) plus α times the L1 norm of h (its norm filter):

    S(x) = ⟨w_ŷ, h − μ_G⟩ / ‖h − μ_G‖₂ + α‖h‖₁,    ŷ = argmax_c (w_cᵀh + b_c).

Higher = more ID. Fit: μ_G only. The proximity is computed as the authors' code does
(github.com/litianliu/NCI-OOD, ``nci_postprocessor.py``, the same in OpenOOD v1.5 and pytorch-ood): divided by
‖h − μ_G‖ alone — a cosine up to the factor ‖w_ŷ‖, the same for every class under neural collapse's equinorm
weights. Default α = 10⁻⁴ and grid {10⁻⁴, 10⁻³, 10⁻², 10⁻¹}: the code's ``configs/postprocessors/nci.yml``.
"""

from __future__ import annotations

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import NON_NEGATIVE

from ._common import head_weights


class NCI(Detector):
    name = "nci"
    description = "alignment of centred features with the predicted class's weights + α·L1 norm (Liu & Qin 2025)"
    paper = "Liu & Qin 2025, Detecting Out-of-distribution through the Lens of Neural Collapse"
    criterion = "auroc"
    parameter_constraints = {"alpha": [NON_NEGATIVE]}  # α = 0: the proximity term alone

    def __init__(self, alpha: float = 1e-4):
        self.alpha = alpha

    def search_space(self):
        return {"alpha": [1e-4, 1e-3, 1e-2, 1e-1]}

    def required_layers(self, model) -> list[str]:
        return ["penultimate", "logits"]

    def fit(self, train: FeatureView) -> NCI:
        self.mean_ = train.features(["penultimate"])["penultimate"].double().mean(dim=0)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        feats = data.features(["penultimate", "logits"])
        h = feats["penultimate"].double()
        w, _ = head_weights(data.model)
        w_pred = w.double().to(h.device)[feats["logits"].argmax(dim=1)]
        centred = h - self.mean_.to(h.device)
        proximity = (centred * w_pred).sum(dim=1) / centred.norm(dim=1).clamp_min(1e-12)
        return proximity + self.alpha * h.abs().sum(dim=1)
