"""VRA: Variational Rectified Activation (Xu, Lian, Liu & Tao, NeurIPS 2023, "VRA: Variational Rectified
Activation for Out-of-distribution Detection"), the piecewise rectification of the penultimate features scored
by the energy of the re-computed logits.
"""

from __future__ import annotations

import torch

from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import NON_NEGATIVE, PERCENT

from .activation_shaping import _PenultimateEnergy


def column_percentiles(x: torch.Tensor, q: float) -> torch.Tensor:
    """The q-th percentile (0–100) of each column of ``x`` with numpy's linear interpolation (``np.quantile(x, q /
    100, axis=0)``, the official code's ``torch.quantile(feat, q, dim=0)``), by two ``kthvalue`` calls along the
    samples (``torch.quantile`` refuses inputs above 2**24 entries)."""
    pos = (x.shape[0] - 1) * q / 100.0
    lo, frac = int(pos), pos - int(pos)
    low = x.kthvalue(lo + 1, dim=0).values.double()
    if frac == 0:
        return low
    return low + frac * (x.kthvalue(lo + 2, dim=0).values.double() - low)


class VRA(_PenultimateEnergy):
    """VRA's piecewise rectification (Xu et al., NeurIPS 2023) of each penultimate unit z:

        g(z) = 0 if z < α;  z + γ if α ≤ z ≤ β;  β if z > β

    — abnormally low activations are suppressed to 0, high ones truncated at β (ReAct's clip), the intermediate
    ones amplified by γ; S(x) = energy of W g(h) + b. γ = 0 is the paper's VRA, γ > 0 the variant the official
    README calls VRA+ (CIFAR-10: q1 = 0.6, q2 = 0.95, γ = 0.6). α, β: as the official code (zeroQiaoba/VRA,
    ``ood_eval.py --case clip2 --q1 --q2`` and ``models/densenet.py``'s ``clip2`` branch, whose comparisons the
    piecewise g above follows), the ``lower_percentile``-th and ``upper_percentile``-th percentiles of each unit
    over the ID training features; defaults 60 / 90, γ = 0: the README's CIFAR-10 VRA command. For ImageNet the
    official README passes fixed scalars (``--featmin 0.5 --featmax 1``) instead. pytorch-ood's ``VRA`` differs on
    purpose: it clips below α to α (a two-sided ReAct) and has no γ (see the agreement test). Equation numbers:
    the paper's text was not reachable here to check them; g is written out above and checked against the code.
    """

    name = "vra"
    description = "piecewise rectification: 0 below a low percentile, +γ between, clip above; energy (Xu et al. 2023)"
    paper = "Xu et al. 2023, VRA: Variational Rectified Activation for Out-of-distribution Detection"
    parameter_constraints = {"lower_percentile": [PERCENT], "upper_percentile": [PERCENT], "gamma": [NON_NEGATIVE]}

    def __init__(self, lower_percentile: float = 60, upper_percentile: float = 90, gamma: float = 0.0):
        self.lower_percentile = lower_percentile
        self.upper_percentile = upper_percentile
        self.gamma = gamma

    def search_space(self) -> dict[str, list]:
        # the official README's CIFAR/ImageNet settings (q1 0.5–0.6, q2 0.85–0.95, γ 0 / 0.3 / 0.6), OpenOOD's
        # (and pytorch-ood's) low percentiles 1 and 10, and 99
        return {"lower_percentile": [60, 50, 10, 1], "upper_percentile": [90, 85, 95, 99], "gamma": [0.0, 0.3, 0.6]}

    def fit(self, train: FeatureView) -> VRA:
        self.activations_ = train.features(["penultimate"])["penultimate"]
        self.thresholds_: dict[float, torch.Tensor] = {}
        return self

    def threshold(self, q: float) -> torch.Tensor:
        """Per-unit q-th percentile of the ID training activations (cached per q: grid points share them)."""
        if q not in self.thresholds_:
            self.thresholds_[q] = column_percentiles(self.activations_, q)
        return self.thresholds_[q]

    def shape(self, h: torch.Tensor) -> torch.Tensor:
        if self.lower_percentile > self.upper_percentile:
            raise ValueError(f"vra: lower_percentile {self.lower_percentile} > upper {self.upper_percentile}")
        alpha = self.threshold(self.lower_percentile).to(h.device, h.dtype)
        beta = self.threshold(self.upper_percentile).to(h.device, h.dtype)
        out = torch.where(h < alpha, torch.zeros_like(h), h + self.gamma)
        return torch.where(h > beta, beta.expand_as(h), out)

    def describe_fit(self) -> dict:
        alpha, beta = self.threshold(self.lower_percentile), self.threshold(self.upper_percentile)
        return {"alpha_mean": float(alpha.mean()), "beta_mean": float(beta.mean())}
