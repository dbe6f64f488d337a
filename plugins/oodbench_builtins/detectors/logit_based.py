"""Detectors that read only the logits. Each reads ``data.logits()`` from the shared feature cache."""

from __future__ import annotations

import torch

from oodbench import Detector, Needs
from oodbench.models.features import FeatureView

from ._common import T_GRID, class_means, energy


class Energy(Detector):
    """Energy score (Liu et al., NeurIPS 2020, eq. 5): S(x) = T·logsumexp(f(x)/T); T = 1 in the paper."""

    name = "energy"
    description = "negative free energy T·logsumexp(logits/T) (Liu et al. 2020)"
    paper = "Liu et al. 2020, Energy-based Out-of-distribution Detection"
    criterion = "auroc"

    def __init__(self, temperature: float = 1.0):
        self.temperature = temperature

    def search_space(self):
        return {"temperature": T_GRID}

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        return energy(data.logits(), self.temperature)


class MaxLogit(Detector):
    """Maximum logit (Hendrycks et al., ICML 2022, "Scaling OOD detection…"): S(x) = max_k f_k(x)."""

    name = "maxlogit"
    description = "maximum logit (Hendrycks et al. 2022)"
    paper = "Hendrycks et al. 2022, Scaling Out-of-Distribution Detection for Real-World Settings"
    criterion = "auroc"

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        return data.logits().max(dim=1).values


class Entropy(Detector):
    """Predictive entropy: S(x) = −H(softmax(f(x))) = Σ_k p_k log p_k (higher = more confident = ID)."""

    name = "entropy"
    description = "negative predictive entropy of the softmax"
    paper = "e.g. Hendrycks & Gimpel 2017 (baseline family); Shannon entropy of the posterior"
    criterion = "auroc"

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        logp = torch.log_softmax(data.logits(), dim=1)
        return (logp.exp() * logp).sum(dim=1)


class TemperatureScaling(Detector):
    """Temperature-scaled MSP (Guo et al., ICML 2017): S(x) = max_k softmax(f(x)/T)_k.

    ``fit`` chooses T by minimising the NLL on the ID *validation* split (Guo et al. §4.2: T is optimised on a
    validation set; ``Needs.fits_on``): the ID samples held out for tuning, which the classifier never fitted —
    on its own training logits a classifier that fits them well gets T < 1, which sharpens instead of
    calibrating. With ``--tune`` T is searched over SPEC.md's grid instead.
    """

    name = "temperature-scaling"
    description = "max softmax of logits/T, T fitted by NLL on ID validation (Guo et al. 2017)"
    needs = Needs(fits_on="validation")
    paper = "Guo et al. 2017, On Calibration of Modern Neural Networks"
    criterion = "auroc"

    def __init__(self, temperature: float | None = None):
        self.temperature = temperature

    def search_space(self):
        return {"temperature": T_GRID}

    def fit(self, train: FeatureView) -> TemperatureScaling:
        logits, labels = train.logits(), train.device_labels
        log_t = torch.zeros(1, device=logits.device, requires_grad=True)
        opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
            loss.backward()
            return loss

        opt.step(closure)
        self.fitted_temperature_ = float(log_t.detach().exp())
        self.fitted_on_ = len(labels)
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        t = self.temperature if self.temperature is not None else self.fitted_temperature_
        return torch.softmax(data.logits() / t, dim=1).max(dim=1).values

    def describe_fit(self):
        return {"fitted_temperature": self.fitted_temperature_, "fitted_on": f"ID validation, {self.fitted_on_}"}


class GEN(Detector):
    """Generalized entropy (Liu, Lochman & Zach, CVPR 2023, eq. 7):
    S(x) = −Σ_{k ∈ top-M} p_k^γ (1 − p_k)^γ, γ = 0.1, M = min(100, classes)."""

    name = "gen"
    description = "generalized entropy of the top-M softmax probabilities (Liu et al. 2023)"
    paper = "Liu et al. 2023, GEN: Pushing the Limits of Softmax-Based OOD Detection"
    criterion = "auroc"

    def __init__(self, gamma: float = 0.1, m: int = 100):
        self.gamma = gamma
        self.m = m

    def search_space(self):
        return {"gamma": [0.01, 0.05, 0.1, 0.5, 1.0]}

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        p = torch.softmax(data.logits(), dim=1)
        top = p.topk(min(self.m, p.shape[1]), dim=1).values
        return -(top.pow(self.gamma) * (1 - top).pow(self.gamma)).sum(dim=1)


class KLMatching(Detector):
    """KL matching (Hendrycks et al., ICML 2022, §4): class templates d_k = mean softmax of the ID
    *validation* samples predicted as k (the paper's held-out validation data, as OpenOOD's postprocessor
    takes its ID val split; ``Needs.fits_on``: training posteriors are sharper than unseen ones);
    S(x) = −min_k KL[p(·|x) ‖ d_k]."""

    name = "klm"
    description = "KL divergence to the closest class-mean posterior template of ID validation (Hendrycks 2022)"
    needs = Needs(fits_on="validation")
    paper = "Hendrycks et al. 2022, Scaling Out-of-Distribution Detection for Real-World Settings"
    criterion = "auroc"

    def fit(self, train: FeatureView) -> KLMatching:
        p = torch.softmax(train.logits(), dim=1)
        k = p.shape[1]
        means, counts = class_means(p, p.argmax(dim=1), k)
        self.templates_ = means[counts > 0]  # a class no validation sample is predicted as has no template
        self.fitted_on_ = len(p)
        return self

    def describe_fit(self):
        return {"fitted_on": f"ID validation, {self.fitted_on_}"}

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        logp = torch.log_softmax(data.logits(), dim=1)
        p = logp.exp()
        log_d = self.templates_.clamp_min(1e-12).log()
        kl = (p * logp).sum(1, keepdim=True) - p @ log_d.T  # KL[p ‖ d_k] for every k
        return -kl.min(dim=1).values
