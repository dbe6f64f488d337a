"""The layer ensemble of Lee et al. 2018, used by paper 003 (FSSD-Ensem) and Mahalanobis.

Per-layer scores s_1..s_K → standardised → ``LogisticRegressionCV`` (seeded, CV over C)
fitted on ID (1) vs OOD (0) tuning samples; the ensemble score is its decision function,
so higher = more in-distribution (SPEC.md, "Layer ensembles"). The regression is fitted on the CPU
(N×K scores, K layers); the fitted linear map is applied in torch wherever the scores are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.linear_model import LogisticRegressionCV
from sklearn.preprocessing import StandardScaler


class LayerEnsemble:
    """Standardise per-layer scores, then weight them by cross-validated logistic regression."""

    def __init__(self, seed: int = 0, cv: int = 5):
        self.seed, self.cv = seed, cv

    def fit(self, scores: np.ndarray, y: np.ndarray) -> LayerEnsemble:
        self.scaler_ = StandardScaler().fit(scores)
        # L2 penalty, C chosen by CV accuracy: the defaults of Lee et al.'s code, spelled out.
        self.lr_ = LogisticRegressionCV(
            cv=self.cv,
            Cs=10,
            l1_ratios=(0.0,),
            scoring="accuracy",
            use_legacy_attributes=False,
            random_state=self.seed,
            max_iter=2000,
        )
        self.lr_.fit(self.scaler_.transform(scores), y)
        return self

    def decision_function(self, scores: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        """w · (s − mean)/scale + b per sample; a tensor stays a tensor on its device (float64)."""
        if not isinstance(scores, torch.Tensor):
            return self.lr_.decision_function(self.scaler_.transform(scores))
        device = scores.device
        mean, scale, coef = (
            torch.as_tensor(a, dtype=torch.float64, device=device)
            for a in (self.scaler_.mean_, self.scaler_.scale_, self.lr_.coef_.ravel())
        )
        return ((scores.double() - mean) / scale) @ coef + float(self.lr_.intercept_[0])

    def describe(self, layers: list[str]) -> dict[str, Any]:
        weights = self.lr_.coef_.ravel().tolist()
        return {
            "weights": dict(zip(layers, weights)) if len(layers) == len(weights) else weights,
            "intercept": float(self.lr_.intercept_[0]),
            "C": float(np.ravel(self.lr_.C_)[0]),
            "scoring": "accuracy",
            "fitted_on": "tuning set",
        }
