"""Neural relation graph (Kim, Yun & Song, NeurIPS 2023; OpenOOD v1.5's ``relation_postprocessor.py``)."""

from __future__ import annotations

import uuid

import torch
import torch.nn.functional as F

from oodbench import Detector
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import POSITIVE

POWERS = [1, 2, 4, 6, 8]  # OpenOOD's configs/postprocessors/relation.yml sweep (pow_list); 1 is its default
THRESHOLD = 0.03  # the official code's cut-off for negligible edges (get_relation's thres)
CELLS = 1 << 24  # query chunk × bank entries per kernel block: memory stays O(CELLS)


def relation_sums(
    z: torch.Tensor, p: torch.Tensor, bank: torch.Tensor, bank_p: torch.Tensor, powers: list[float]
) -> dict[float, torch.Tensor]:
    """{t: Σ_j k_t(x, x_j)} for each query (rows of normalised features ``z``, softmax ``p``) against the bank:
    k(x, x_j) = max(0, zᵀz_j) · pᵀp_j, kept where it exceeds :data:`THRESHOLD`, raised to the power t. One
    kernel block per chunk of queries (matrix products on the queries' device), every power read from it."""
    bank, bank_p = bank.to(z.device), bank_p.to(z.device)
    chunk = max(1, CELLS // max(1, len(bank)))
    parts: dict[float, list[torch.Tensor]] = {t: [] for t in powers}
    for zc, pc in zip(z.split(chunk), p.split(chunk)):
        k = (zc @ bank.T).clamp_min(0) * (pc @ bank_p.T)
        k = torch.where(k > THRESHOLD, k, torch.zeros_like(k))
        for t in powers:
            parts[t].append(k.pow(t).sum(dim=1))
    return {t: torch.cat(v) if v else z.new_zeros(0) for t, v in parts.items()}


class Relation(Detector):
    """Relation-graph outlier score (Kim, Yun & Song, NeurIPS 2023, "Neural Relation Graph: A Unified Framework for
    Identifying Label Noise and Outlier Data", §3).

    Each sample x is a node with its ℓ2-normalised penultimate feature z and its softmax probabilities p. The
    paper's kernel between two nodes is k(x_i, x_j) = (max(0, s(z_i, z_j)) · c(p_i, p_j))^t with the cosine
    similarity s = z_iᵀz_j, the prediction agreement c = p_iᵀp_j and the temperature t (``power``); a test sample
    is an outlier when its edges to the ID training nodes are weak, the paper's OOD score being 1 / Σ_j k(x, x_j)
    (higher = OOD). Here S(x) = Σ_j k(x, x_j): higher = ID, the same ranking (OpenOOD returns the same sum).
    No labels enter: the label-agreement sign of the relation function is for label-error detection only.

    Where the paper is silent this follows the official code (snu-mllab/Neural-Relation-Graph, ``relation.py``,
    which OpenOOD copies): edges with k ≤ 0.03 before the power are cut (``thres``), and the bank is every ID
    training sample (OpenOOD's setup; the official ImageNet script can subsample it with ``--hop``). t = 1 is the
    default of OpenOOD's ``relation.yml`` and of the official OOD script (which warns that t ≠ 1 is not optimal
    for OOD detection); the grid is OpenOOD's sweep {1, 2, 4, 6, 8}. The kernel is computed in chunks of test
    samples against the whole bank; a grid reads every power from the one pass (memoised per view and bank).
    """

    name = "relation"
    description = "sum of feature-cosine × probability-agreement edges to ID training samples (Kim et al. 2023)"
    paper = "Kim et al. 2023, Neural Relation Graph: A Unified Framework for Identifying Label Noise and Outlier Data"
    criterion = "auroc"
    parameter_constraints = {"power": [POSITIVE]}

    def __init__(self, power: float = 1):
        self.power = power

    def required_layers(self, model) -> list[str]:
        return ["penultimate", "logits"]

    def search_space(self) -> dict[str, list]:
        return {"power": POWERS}

    def fit(self, train: FeatureView) -> Relation:
        feats = train.features(["penultimate", "logits"])
        self.bank_ = F.normalize(feats["penultimate"], dim=1)
        self.bank_probs_ = torch.softmax(feats["logits"], dim=1)
        self.bank_key_ = uuid.uuid4().hex  # names this fit's bank in memo keys
        return self

    def tuned_copy(self, **params) -> Relation:
        """A grid point: its pass computes every power of the grid, so the grid shares one kernel pass per view."""
        other = super().tuned_copy(**params)
        other.grid_powers_ = POWERS
        return other

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        sums = data.memo(("relation", self.bank_key_), dict)  # power → Σ_j k(x, x_j)
        if self.power not in sums:
            feats = data.features(["penultimate", "logits"])
            z, p = F.normalize(feats["penultimate"], dim=1), torch.softmax(feats["logits"], dim=1)
            powers = sorted({self.power, *getattr(self, "grid_powers_", [])})
            sums.update(relation_sums(z, p, self.bank_, self.bank_probs_, powers))
        return sums[self.power]
