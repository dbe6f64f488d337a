"""ODIN (Liang, Li & Srikant, ICLR 2018): temperature scaling + input pre-processing.

S(x; T) = max_k softmax(f(x̃)/T)_k with x̃ = x − ε·sign(−∇_x log S_ŷ(x; T))   (eqs. 1–2),
i.e. x is pushed to *raise* the temperature-scaled max softmax. Grid (SPEC.md, paper 003):
T ∈ {1, 10, 100, 1000} × ε ∈ {0, 0.01, …, 0.2}, selected by TNR@95; named grids ``odin`` (the paper's §4.2),
``lee2018`` and ``openood`` (``--grid NAME``; :mod:`._common`). Defaults without tuning: T = 1000, ε = 0 (no OOD
data to choose ε; OpenOOD and pytorch-ood use ε = 0.0014, which ``--grid openood`` or ``--param
odin.epsilon=0.0014`` give — kept at 0 so that the untuned row is the paper-003 protocol's, whose grid is in pixel
units where 0.0014 is a fraction of one grey level). Reproduces paper 003 Table 2, column ODIN.
"""

from __future__ import annotations

import uuid

import torch

from oodbench import Detector, Needs
from oodbench.models.features import FeatureView
from oodbench.models.perturbation import gradient_sign, perturbed_scores

from ._common import EPSILONS, LEE2018_ODIN_EPSILONS, ODIN_PAPER_EPSILONS, ODIN_PAPER_T, T_GRID


class ODIN(Detector):
    name = "odin"
    description = "temperature-scaled softmax with input pre-processing (Liang et al. 2018)"
    paper = "Liang et al. 2018, Enhancing the Reliability of OOD Image Detection (ODIN)"
    criterion = "tnr95"
    needs = Needs(gradients="inputs")  # input pre-processing (eq. 2)

    def __init__(self, temperature: float = 1000.0, epsilon: float = 0.0):
        self.temperature = temperature
        self.epsilon = epsilon

    grids = {
        "paper003": {"temperature": T_GRID, "epsilon": EPSILONS},
        "odin": {"temperature": ODIN_PAPER_T, "epsilon": ODIN_PAPER_EPSILONS},
        "lee2018": {"temperature": T_GRID, "epsilon": LEE2018_ODIN_EPSILONS},
        "openood": {"temperature": [1000], "epsilon": [0.0014]},
    }

    def search_space(self):
        return self.grids["paper003"]

    def fit(self, train: FeatureView) -> ODIN:
        self.fit_id_ = uuid.uuid4().hex
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        t = float(self.temperature)
        if self.epsilon == 0:
            return torch.softmax(data.logits() / t, dim=1).max(dim=1).values
        model = data.model

        def log_msp(x: torch.Tensor) -> torch.Tensor:
            return torch.log_softmax(model(x) / t, dim=1).max(dim=1).values

        def msp(x: torch.Tensor) -> torch.Tensor:
            return torch.softmax(model(x) / t, dim=1).max(dim=1).values

        sign = gradient_sign(data, ("odin", self.fit_id_, t), log_msp)
        return perturbed_scores(data, ("odin", self.fit_id_, t), sign, self.epsilon, msp)
