"""Gram matrices (Sastry & Oore, ICML 2020, §3), computed as the authors' code does (github.com/VectorInstitute/
gram-ood-detection, the notebooks' ``G_p``, ``get_min_max``, ``get_deviations`` and ``detect``).

For each convolutional layer ℓ with feature map F (C×HW) and order p = 1..P, the rows of the p-th order Gram
matrix are summed first and the signed p-th root is taken of the sums (``G_p``: sum, then root):
    v_{ℓ,p,i} = sgn(s)·|s|^{1/p},   s = Σ_j (F^p F^pᵀ)_{ij} = Σ_k F^p_{ik} · Σ_j F^p_{jk}
(the second form never builds the C×C matrix; float64). Fit: per predicted class c, the elementwise min and
max of v over the ID training images (``get_min_max``). Deviation of x at layer ℓ (``get_deviations``):
    δ_ℓ(x) = Σ_{p,i} [relu(min − v)/|min + 10⁻⁶| + relu(v − max)/|max + 10⁻⁶|] / conf(x)
with the range of x's predicted class and conf(x) its maximum softmax probability (the code divides by it).
Normaliser (``detect``): E_ℓ = mean of δ_ℓ over an ID validation split + 10⁻⁷; score S(x) = −Σ_ℓ δ_ℓ(x)/E_ℓ.

Where oodbench departs from the code:

- Validation split: the code takes E_ℓ on a random 10 % of the ID *test* set and evaluates the other 90 %.
  oodbench never fits on samples it evaluates, so E_ℓ comes from ``n_val`` (1,000) seeded ID *training*
  images held out from the min/max, which come from all other training images (``n_fit`` caps them).
  The network has seen those images in training, so E_ℓ may be smaller than on test images.
- The code averages its metrics over 10 random validation splits; oodbench uses one seeded split.
- Layers: the code records every convolution, batch-norm, shortcut and ReLU output of every block; oodbench
  uses the backbone's named feature maps (``layers``).
- A class that no training image is predicted as has no range: it adds no deviation (the code would fail).

OpenOOD's port (``gram_postprocessor.py``) bins training images by label rather than prediction and drops
the division by the confidence; where it differs, the authors' code is followed.
Needs full feature maps, so Gram runs its own forward pass (memoised per view).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import torch

from oodbench import Detector, Needs
from oodbench.models.features import FeatureView


def gram_row_sums(f: torch.Tensor, p: int) -> torch.Tensor:
    """N×C×HW feature maps → N×C: signed p-th root of the row sums of F^p F^pᵀ (the code's ``G_p``)."""
    fp = f.double().pow(p)
    s = (fp * fp.sum(dim=1, keepdim=True)).sum(dim=2)
    return s.sign() * s.abs().pow(1.0 / p)


class Gram(Detector):
    name = "gram"
    description = "deviation of feature-map Gram matrices from class-wise training ranges (Sastry & Oore 2020)"
    paper = "Sastry & Oore 2020, Detecting OOD Examples with Gram Matrices"
    criterion = "auroc"
    needs = Needs(feature_maps=True)  # Gram matrices of every conv feature map, per batch

    def __init__(
        self,
        layers: Sequence[str] | None = None,
        max_power: int = 10,
        n_fit: int | None = None,
        n_val: int = 1000,
        seed: int = 0,
    ):
        self.layers = layers
        self.max_power = max_power
        self.n_fit = n_fit
        self.n_val = n_val
        self.seed = seed

    def required_layers(self, model):
        return ["logits"]

    def _spatial_layers(self, model, shape) -> dict[str, int]:
        """{layer: channels} of the chosen (default: every named) convolutional feature map."""
        with torch.no_grad():
            x = torch.zeros(1, *shape, device=next(model.parameters()).device)
            probe = model.forward_features(x, self.layers, pool=False)
        names = list(self.layers) if self.layers else [k for k, v in probe.items() if v.ndim == 4]
        flat = [k for k in names if probe[k].ndim != 4]
        if flat:
            raise ValueError(f"gram needs convolutional feature maps; {flat} are not N×C×H×W")
        return {k: probe[k].shape[1] for k in names}

    def _values(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N×D Gram values of every layer, power and row, in that order; N×K logits), one forward pass."""
        with torch.inference_mode():
            maps = model.forward_features(x, self.layers_, pool=False)
            rows = [gram_row_sums(maps[k].flatten(2), p) for k in self.layers_ for p in range(1, self.max_power + 1)]
        return torch.cat(rows, dim=1), maps["logits"].float()

    def fit(self, train: FeatureView) -> Gram:
        channels = self._spatial_layers(train.model, train.imageset.shape)
        self.layers_, self.widths_ = list(channels), [self.max_power * c for c in channels.values()]
        if not self.layers_:
            raise ValueError("gram needs convolutional feature maps; the backbone has none among its named layers")
        n = len(train)
        perm = torch.randperm(n, generator=torch.Generator().manual_seed(self.seed), device="cpu")  # indices
        n_val = min(self.n_val, max(1, n // 10))
        val_index, fit_index = perm[:n_val], perm[n_val:]
        if self.n_fit is not None:
            fit_index = fit_index[: self.n_fit]
        self.fit_id_ = uuid.uuid4().hex
        self._fit_ranges(train.subset(fit_index.sort().values), int(train.logits().shape[1]))
        self.n_fit_, self.n_val_ = len(fit_index), n_val
        self.layer_scale_ = self._layer_deviation(train.subset(val_index.sort().values)).mean(dim=0) + 1e-7
        return self

    def _fit_ranges(self, data: FeatureView, num_classes: int) -> None:
        """Class-wise min and max of every Gram value (by predicted class), accumulated batch by batch."""
        model, mins, maxs = data.model.eval(), None, None
        for x in data.batches("gram ranges" if len(data) > 4 * data.batch_size else None):
            v, logits = self._values(model, x)
            if mins is None:
                mins = torch.full((num_classes, v.shape[1]), float("inf"), dtype=torch.float64, device=v.device)
                maxs = torch.full((num_classes, v.shape[1]), float("-inf"), dtype=torch.float64, device=v.device)
            index = logits.argmax(dim=1)[:, None].expand_as(v)
            mins.scatter_reduce_(0, index, v, "amin")
            maxs.scatter_reduce_(0, index, v, "amax")
        self.mins_, self.maxs_ = mins, maxs

    def _layer_deviation(self, data: FeatureView) -> torch.Tensor:
        """N × layers deviations δ_ℓ(x), divided by the confidence (memoised per view and fit)."""
        model = data.model

        def batch(x: torch.Tensor) -> torch.Tensor:
            v, logits = self._values(model, x)
            pred = logits.argmax(dim=1)
            lo, hi = self.mins_[pred], self.maxs_[pred]
            below = torch.where(torch.isfinite(lo), (lo - v).clamp_min(0) / (lo + 1e-6).abs(), 0.0)
            above = torch.where(torch.isfinite(hi), (v - hi).clamp_min(0) / (hi + 1e-6).abs(), 0.0)
            per_layer = torch.stack([d.sum(dim=1) for d in (below + above).split(self.widths_, dim=1)], dim=1)
            return per_layer / torch.softmax(logits.double(), dim=1).max(dim=1).values[:, None]

        return data.memo(("gram", self.fit_id_), lambda: data.map_inputs(batch).double())

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        return -(self._layer_deviation(data) / self.layer_scale_).sum(dim=1)

    def describe_fit(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers_),
            "powers": self.max_power,
            "ranges_from": f"{self.n_fit_} ID training images, by predicted class",
            "normaliser_from": f"{self.n_val_} held-out ID training images (the authors' code: 10% of ID test)",
            "normaliser": dict(zip(self.layers_, self.layer_scale_.tolist())),
        }
