"""LTS: Logit Scaling (Djurisic, Liu & Nikolić, Machine Vision and Applications 2025; arXiv 2409.01175, "Logit
Scaling for Out-of-Distribution Detection"): a per-sample scale computed from the penultimate activations
multiplies the logits, which are then scored by the energy. Needs no training statistics (nothing to fit).
"""

from __future__ import annotations

import torch

from oodbench import Detector
from oodbench.models.features import FeatureView

from ._common import PERCENTILES, energy


def scaling_factor(h: torch.Tensor, percentile: float) -> torch.Tensor:
    """S = (s1 / s2)² per sample: s1 the sum of the (ReLU'd) activations, s2 the sum of the top k of them,
    k = D − round(D · p / 100) (at least 1; the official code's count, as ASH's). All-zero activations: S = 1."""
    a = h.clamp_min(0)
    n = a.shape[1]
    keep = max(1, n - round(n * percentile / 100.0))
    s1 = a.sum(dim=1)
    s2 = a.topk(keep, dim=1).values.sum(dim=1)
    ratio = torch.where(s2 > 0, s1 / s2.clamp_min(torch.finfo(s2.dtype).tiny), torch.ones_like(s1))
    return ratio.square()


class LTS(Detector):
    """Logit Scaling (Djurisic et al., Machine Vision and Applications 2025): with the penultimate activations
    a and the logits f(x), S(x) = (Σ_i a_i / Σ_{i ∈ top p%} a_i)², the ratio of all activation mass to that of
    the activations above the p-th percentile, squared; the OOD score is the energy of the scaled logits,
    −E(x) = logsumexp_i S(x) f_i(x) (higher = ID).

    As the official code (andrijazz/lts, ``lts.py``'s ``lts``, followed by pytorch-ood): a ReLU is applied to a
    before the sums (pytorch-ood notes that the paper does not mention it; it only matters for features that
    can be negative, e.g. transformers); the logits are those of the unmodified features; k = D − round(D·p/100)
    activations form the top set. p = 65: the official code's default argument (``lts(x, percentile=65)``;
    pytorch-ood's default, a fraction 0.05 of top activations, is percentile 95, in the grid). oodbench's guard:
    a sample whose activations are all ≤ 0 (0/0) gets S = 1, its plain energy. Equation numbers: the paper's
    text was not reachable here to check them; S and the score are written out above and checked against the
    official code.
    """

    name = "lts"
    description = "energy of logits scaled by (total / top-p% activation mass)² (logit scaling, Djurisic et al. 2025)"
    paper = "Djurisic et al. 2025, Logit Scaling for Out-of-Distribution Detection"
    criterion = "auroc"

    def __init__(self, percentile: float = 65):
        self.percentile = percentile

    def required_layers(self, model) -> list[str]:
        return ["penultimate", "logits"]

    def search_space(self) -> dict[str, list]:
        return {"percentile": PERCENTILES}

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        feats = data.features(["penultimate", "logits"])
        h, logits = feats["penultimate"].double(), feats["logits"].double()
        return energy(logits * scaling_factor(h, self.percentile)[:, None])
