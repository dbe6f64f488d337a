"""Feature Space Singularity Distance (paper 003: Huang et al., SafeAI 2021, Algorithm 1).

For each feature layer k:
  1. FSS  F*_k = mean of F_k(x_noise) over S samples x_noise ~ U[0, 1]       (Algorithm 1, step 1)
  2. input pre-processing  x̃ = x + ε · sign(∇_x ‖F_k(x) − F*_k‖)            (step 2)
  3. FSSD_k(x) = ‖F_k(x̃) − F*_k‖                                           (eq. 1, step 3)
FSSD-Ensem(x) = Σ_k α_k FSSD_k(x), with α from logistic regression on the tuning set
(Lee et al. 2018 / SPEC.md "Layer ensembles"); ε from {0, 0.01, …, 0.2} by TNR@95.
OOD samples sit near the FSS, so a *larger* distance means more in-distribution: the score
is FSSD itself (no negation).

Conventions (defaults first; the authors' code, github.com/megvii-research/FSSD_OoD_Detection, is the second):

- ``pooling``: ``mean`` — a convolutional map F_k is its per-channel means (``oodbench.models.backbones.pool_feature``);
  ``flatten`` — all C·H·W values, as the code's ``feature_list`` does (it scales with the map: ~800k values per
  image for a ResNet-50's first stage).
- ``noise``: ``pixel`` — x_noise uniform over the 256 pixel values, as Algorithm 1 states; ``normalized`` — the
  code's ``compute_fss``: integers uniform in {0..254}, mapped to (u − 127.5)/255 ∈ [−0.5, 0.5) and fed to the
  network *after* its input normalisation (here: pixels mean + std·z). The code uses S = ``n_noise`` = 100.
- ``step``: ``sign`` — step 2 as written; ``standardized`` — the code's ``get_FSS_score_process``: the gradient of
  −FSSD_k with respect to the normalised input, standardised (minus its mean, over its std), an ε step in pixel
  units. Two departures from the code: it standardises over the whole batch, so a sample's step depends on its
  batch mates (and ID and OOD batches are standardised separately); oodbench standardises each sample's gradient
  by its own mean and std. The code's step descends FSSD (towards the FSS), the opposite of step 2's sign; the
  option follows the code.

Reproduces paper 003 Table 2, column FSSD (row A: FMNIST vs MNIST with LeNet, AUROC 99.6).
With ``--tune none`` (no OOD data to weight layers) the score is the deepest layer's FSSD, ε = 0.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from functools import partial
from typing import Any

import torch

from oodbench import LayerwiseDetector, Needs
from oodbench.models.features import FeatureView
from oodbench.models.perturbation import gradient_sign, perturbed_scores
from oodbench.plugins.constraints import Options

from ._common import EPSILONS

CONVENTIONS = {
    "pooling": {"mean": "convolutional maps as per-channel means", "flatten": "flattened maps (C·H·W values)"},
    "noise": {
        "pixel": "uniform pixel noise U{0..255}/255",
        "normalized": "uniform noise (u − 127.5)/255, u ∈ {0..254}, in the normalised input space (authors' code)",
    },
    "step": {
        "sign": "x + ε·sign(∇x FSSD) (Algorithm 1)",
        "standardized": "x − ε·standardise(∇ FSSD w.r.t. the normalised input), per sample (authors' code)",
    },
}


def layer_feature(model, x: torch.Tensor, layers: Sequence[str], pooling: str) -> dict[str, torch.Tensor]:
    """{layer: N×D} features of ``x`` (float pixels): channel means, or every value flattened."""
    out = model.forward_features(x, list(layers), pool=pooling == "mean")
    return {k: out[k].flatten(1) for k in layers}


class FSSD(LayerwiseDetector):
    name = "fssd"
    parameter_constraints = {option: [Options(*values)] for option, values in CONVENTIONS.items()}
    description = "Feature Space Singularity Distance with layer ensemble + input pre-processing (paper 003)"
    paper = "Huang et al. 2021, Feature Space Singularity for Out-of-Distribution Detection"
    criterion = "tnr95"
    needs = Needs(gradients="inputs")  # input pre-processing where the grid picks ε > 0

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        epsilon: float = 0.0,
        n_noise: int = 1000,
        seed: int = 0,
        pooling: str = "mean",
        noise: str = "pixel",
        step: str = "sign",
    ):
        self.layers = layers
        self.epsilon = epsilon
        self.n_noise = n_noise
        self.seed = seed
        self.pooling = pooling
        self.noise = noise
        self.step = step

    def layer_names(self, model) -> list[str]:
        return list(self.layers) if self.layers else list(model.feature_layers)

    def search_space(self) -> dict[str, list]:
        return {"epsilon": EPSILONS}

    def _noise_pixels(self, model, shape: tuple[int, ...]) -> torch.Tensor:
        """The S noise inputs as float pixels (what the backbone normalises)."""
        g = torch.Generator().manual_seed(self.seed)  # drawn on the CPU: the same noise on every device
        size, cpu = (self.n_noise, *shape), torch.device("cpu")
        if self.noise == "pixel":
            return torch.randint(0, 256, size, generator=g, dtype=torch.uint8, device=cpu).float().div_(255.0)
        z = (torch.randint(0, 255, size, generator=g, dtype=torch.uint8, device=cpu).float() - 127.5) / 255
        return model.mean.to(cpu) + model.std.to(cpu) * z

    def fit(self, train: FeatureView) -> FSSD:
        for option, value in (("pooling", self.pooling), ("noise", self.noise), ("step", self.step)):
            if value not in CONVENTIONS[option]:
                raise ValueError(f"fssd: unknown {option} {value!r} (one of {', '.join(CONVENTIONS[option])})")
        layers = self.layer_names(train.model)
        model, noise = train.model.eval(), self._noise_pixels(train.model, tuple(train.imageset.shape))
        sums: dict[str, torch.Tensor] = {}
        with torch.inference_mode(), train.autocast():
            for x in noise.split(train.batch_size):
                feats = layer_feature(model, x.to(train.device), layers, self.pooling)
                for k in layers:
                    part = feats[k].double().sum(dim=0)
                    sums[k] = sums[k] + part if k in sums else part
        self.layers_, self.pooling_ = layers, self.pooling
        self.fss_ = {k: (sums[k] / self.n_noise).float() for k in layers}
        self.fit_id_ = uuid.uuid4().hex
        return self

    def _distance(self, feature: torch.Tensor, layer: str) -> torch.Tensor:
        return (feature - self.fss_[layer].to(feature.device)).norm(dim=1)

    def _fssd(self, model, x: torch.Tensor, layer: str) -> torch.Tensor:
        return self._distance(layer_feature(model, x, [layer], self.pooling_)[layer], layer)

    def _plain_scores(self, data: FeatureView) -> torch.Tensor:
        """N×K FSSD at ε = 0: from the shared cached features (means), or one own pass (flattened maps)."""
        if self.pooling_ == "mean":
            feats = data.features(self.layers_)
            return torch.stack([self._distance(feats[k], k) for k in self.layers_], dim=1)

        def batch(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                feats = layer_feature(data.model, x, self.layers_, "flatten")
            return torch.stack([self._distance(feats[k], k) for k in self.layers_], dim=1)

        return data.memo(("fssd-flat", self.fit_id_), lambda: data.map_inputs(batch))

    def _direction(self, data: FeatureView, layer: str) -> torch.Tensor:
        """The per-sample step direction of step 2 (memoised): the gradient's sign, or the code's standardised
        descent direction −(g − mean g)/std g with g = ∇ FSSD w.r.t. the normalised input (std·∇_x FSSD)."""
        model = data.model
        if self.step == "sign":
            return gradient_sign(data, ("fssd", self.fit_id_, layer), lambda x: self._fssd(model, x, layer))

        def batch(x: torch.Tensor) -> torch.Tensor:
            x = x.clone().requires_grad_(True)
            with torch.enable_grad():
                (grad,) = torch.autograd.grad(self._fssd(model, x, layer).sum(), x)
            g = (grad * model.std).flatten(1)
            g = (g - g.mean(dim=1, keepdim=True)) / g.std(dim=1, keepdim=True).clamp_min(1e-12)
            return -g.view_as(x)

        return data.memo(("fssd-standardized", self.fit_id_, layer), lambda: data.map_inputs(batch))

    def layer_scores(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        if self.epsilon == 0:
            return self._plain_scores(data)
        columns = []
        for k in self.layers_:
            key = ("fssd", self.fit_id_, k, self.step)
            direction = self._direction(data, k)
            fssd = partial(self._fssd, data.model, layer=k)
            columns.append(perturbed_scores(data, key, direction, self.epsilon, fssd))
        return torch.stack(columns, dim=1)

    def describe_fit(self) -> dict[str, Any]:
        conventions = {opt: f"{getattr(self, opt)}: {CONVENTIONS[opt][getattr(self, opt)]}" for opt in CONVENTIONS}
        return {**super().describe_fit(), "conventions": {**conventions, "n_noise": self.n_noise}}
