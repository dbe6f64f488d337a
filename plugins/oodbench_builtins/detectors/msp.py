"""Maximum softmax probability (paper 004: Hendrycks & Gimpel, ICLR 2017, the "Base" column
of paper 003 Table 2).

score(x) = max_y softmax(f(x))_y — higher = more in-distribution. No hyperparameters.
"""

from __future__ import annotations

import numpy as np
import torch

from oodbench import Detector, Needs
from oodbench.models.features import FeatureView


class MSP(Detector):
    name = "msp"
    description = "maximum softmax probability baseline (paper 004; paper 003 Table 2 'Base')"
    paper = "Hendrycks & Gimpel 2017, A Baseline for Detecting Misclassified and OOD Examples"
    needs = Needs(embedding=True)

    def embed(self, data: FeatureView) -> np.ndarray:
        """The softmax posterior: the cross-entropy "embedding" of paper 001 Fig. 1 (row CE)."""
        return data.logits().softmax(dim=1).cpu().numpy()

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        return data.logits().softmax(dim=1).max(dim=1).values
