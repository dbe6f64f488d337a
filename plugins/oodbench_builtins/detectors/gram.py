"""Gram matrices (Sastry & Oore, ICML 2020, §3).

For each convolutional layer ℓ and order p = 1..P: G_ℓ^p = (F^p F^pᵀ)^{1/p} for the C×HW feature map F
(signed p-th root), reduced to its C row sums. Fit: per predicted class c, the elementwise min and max
of these values over ID training samples. Deviation of x: δ_ℓ(x) = Σ_{p, i} [(min − v)/|min| if v < min;
(v − max)/|max| if v > max; 0 otherwise], with the class of x its prediction; each layer's deviation is
divided by its mean on held-out ID training samples (the paper's validation normalisation);
S(x) = −Σ_ℓ δ_ℓ(x)/E_ℓ. Needs full feature maps, so it runs its own forward pass (memoised per view).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from oodbench import Detector
from oodbench.features import FeatureView


class Gram(Detector):
    name = "gram"
    description = "deviation of feature-map Gram matrices from class-wise training ranges (Sastry & Oore 2020)"
    paper = "Sastry & Oore 2020, Detecting OOD Examples with Gram Matrices"
    criterion = "auroc"

    def __init__(self, layers: Sequence[str] | None = None, max_power: int = 10, n_fit: int = 5000, seed: int = 0):
        self.layers = layers
        self.max_power = max_power
        self.n_fit = n_fit
        self.seed = seed

    def required_layers(self, model):
        return ["logits"]

    def _spatial_layers(self, model, shape) -> list[str]:
        if self.layers:
            return list(self.layers)
        with torch.no_grad():
            probe = model.forward_features(torch.zeros(1, *shape, device=next(model.parameters()).device), pool=False)
        return [k for k, v in probe.items() if v.ndim == 4]

    def _gram_features(self, data: FeatureView) -> dict[str, torch.Tensor]:
        """{layer: N × P × C} Gram row sums for every power, one pass over the data."""
        model, layers, powers = data.model, self.layers_, range(1, self.max_power + 1)

        def batch(x: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode():
                maps = model.forward_features(x, layers, pool=False)
            out = []
            for name in layers:
                f = maps[name].flatten(2).double()  # N×C×HW
                for p in powers:
                    fp = f.pow(p)
                    g = fp @ fp.transpose(1, 2)
                    g = g.sign() * g.abs().pow(1.0 / p)
                    out.append(g.sum(dim=2))
            return torch.cat(out, dim=1)

        flat = data.memo(("gram", self.fit_id_), lambda: data.map_inputs(batch))
        return flat.view(len(flat), len(layers), len(powers), -1)

    def fit(self, train: FeatureView) -> Gram:
        import uuid

        self.fit_id_ = uuid.uuid4().hex
        self.layers_ = self._spatial_layers(train.model, train.imageset.shape)
        if not self.layers_:
            raise ValueError("gram needs convolutional feature maps; the backbone has none among its named layers")
        n = len(train)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed))[: min(n, self.n_fit)]
        cut = int(0.9 * len(perm))
        fit_view, val_view = train.subset(perm[:cut].sort().values), train.subset(perm[cut:].sort().values)
        g = self._gram_features(fit_view)
        pred = fit_view.logits().argmax(dim=1)
        k = int(train.logits().shape[1])
        self.mins_ = torch.full((k, *g.shape[1:]), float("inf"), dtype=torch.float64)
        self.maxs_ = torch.full((k, *g.shape[1:]), float("-inf"), dtype=torch.float64)
        for c in range(k):
            sel = g[pred == c]
            if len(sel):
                self.mins_[c], self.maxs_[c] = sel.min(dim=0).values, sel.max(dim=0).values
        self.layer_scale_ = self._layer_deviation(val_view).mean(dim=0).clamp_min(1e-12)
        return self

    def _layer_deviation(self, data: FeatureView) -> torch.Tensor:
        g = self._gram_features(data)
        pred = data.logits().argmax(dim=1)
        lo, hi = self.mins_[pred], self.maxs_[pred]
        below = torch.where(torch.isfinite(lo), (lo - g).clamp_min(0) / (lo.abs() + 1e-6), torch.zeros_like(g))
        above = torch.where(torch.isfinite(hi), (g - hi).clamp_min(0) / (hi.abs() + 1e-6), torch.zeros_like(g))
        return (below + above).sum(dim=(2, 3))  # N × layers

    def score_samples(self, data: FeatureView) -> np.ndarray:
        self.check_fitted()
        return -(self._layer_deviation(data) / self.layer_scale_).sum(dim=1).numpy()
