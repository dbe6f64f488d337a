"""pNML regret of the last layer (Bibas, Feder & Hassner, NeurIPS 2021, "Single Layer Predictive Normalized
Maximum Likelihood for Out-of-Distribution Detection").

The predictive normalised maximum likelihood (pNML) learner fits the last layer once more for every possible
label of the test sample; its regret — the log of the normaliser of those "genie" predictions — is large when a
label could be learnt easily, i.e. when the sample lies where the training data say little. For a single layer
on L2-normalised penultimate features the regret has a closed form (the paper's eq. 20, as its code's README
names it): with the N×D matrix X of normalised training features, the normalised test feature z, its class
probabilities p_c = softmax(W z + b)_c (the trained head applied to z) and C classes,

    xᵀg = zᵀ(XᵀX)⁺z / (1 + zᵀ(XᵀX)⁺z),
    Γ(z) = (1 / log C) · log Σ_c p_c / (p_c + (1 − p_c) p_c^{xᵀg}),

Γ ∈ [0, 1]; higher = more OOD, so S(x) = −Γ (the code's ``1 − regret``, the same order). Fit: (XᵀX)⁺ only,
accumulated in float64 over chunks of the ID training features. Hyperparameter-free.

As the authors' code (github.com/kobybibas/pnml_ood_detection, ``LitBaseline``) and pytorch-ood do, the
probabilities are those of the head on the *normalised* features, (XᵀX)⁺ is a pseudo-inverse (eigenvalues under
D·ε_float32 of the largest are left out: the features are float32, and directions of no training variance add
no regret, as in the code), and no orthogonal-complement term is added for directions outside the training span
(the code's older ``score_utils`` took the larger of ‖x_⊥‖² and xᵀg). Each summand is evaluated as
σ((1 − xᵀg) log p_c − log(1 − p_c)), the same number without the 0/0 of a probability that underflows
(pytorch-ood clamps p to [10⁻¹², 1 − 10⁻¹²] instead).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from oodbench import Detector
from oodbench.models.features import FeatureView

from ._common import head_weights


def pnml_regret(z: torch.Tensor, logits: torch.Tensor, projector: torch.Tensor) -> torch.Tensor:
    """Γ(z) for normalised features ``z`` (N×D), the head's ``logits`` on them and (XᵀX)⁺, in float64."""
    z, projector = z.double(), projector.double().to(z.device)
    quad = ((z @ projector) * z).sum(dim=1).clamp_min(0)  # ≥ 0 up to rounding (the code takes |·|)
    k = (quad / (1 + quad))[:, None]
    log_p = torch.log_softmax(logits.double(), dim=1)
    log_not_p = torch.log(-torch.expm1(log_p))  # log(1 − p), −inf where p = 1 (then the summand is 1)
    summands = torch.sigmoid((1 - k) * log_p - log_not_p)  # p / (p + (1 − p)·p^k)
    return torch.log(summands.sum(dim=1)) / math.log(logits.shape[1])


class PNML(Detector):
    name = "pnml"
    description = "negative pNML regret of the last layer on L2-normalised features (Bibas et al. 2021)"
    paper = "Bibas, Feder & Hassner 2021, Single Layer Predictive Normalized Maximum Likelihood for OOD Detection"
    criterion = "auroc"

    def required_layers(self, model) -> list[str]:
        return ["penultimate"]

    def fit(self, train: FeatureView) -> PNML:
        h = train.features(["penultimate"])["penultimate"]
        gram = torch.zeros(h.shape[1], h.shape[1], dtype=torch.float64, device=h.device)
        for chunk in h.split(8192):
            z = F.normalize(chunk.double(), dim=1)
            gram += z.T @ z
        rtol = h.shape[1] * torch.finfo(torch.float32).eps
        self.projector_ = torch.linalg.pinv(gram, rtol=rtol, hermitian=True)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        z = F.normalize(data.features(["penultimate"])["penultimate"].double(), dim=1)
        w, b = head_weights(data.model)
        logits = z @ w.double().T.to(z.device) + b.double().to(z.device)
        return -pnml_regret(z, logits, self.projector_)
