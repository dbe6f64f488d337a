"""RankFeat: rank-1 feature removal (Song, Sebe & Wang, NeurIPS 2022, "RankFeat: Rank-1 Feature Removal for
Out-of-distribution Detection", §3).

For the high-level feature map of an image, read as a matrix X ∈ R^{C×HW} with singular value decomposition
X = U S Vᵀ (eq. 1), RankFeat subtracts the rank-1 matrix of the largest singular value, X' = X − s₁u₁v₁ᵀ (eq. 2),
runs X' through the rest of the network and scores the energy of the logits it gives, log Σ_k exp f_k(X') (eq. 3):
the paper's observation is that OOD maps have a larger dominant singular value, which their prediction leans
on, so removing it lowers their energy more than an ID map's. Higher = more ID. Hyperparameter-free.

As in the paper's RankFeat (Block 4) variant, the map is the last block's: by default the deepest named
N×C×H×W layer of the backbone (``layer`` picks another). X' goes through the rest of the network the way the
authors' code does it (``head(before_head(X'))``): a forward hook puts X' in place of the layer's output, so
whatever follows runs on it — for a ResNet, global pooling and the linear head, i.e. ``head_logits`` of X''s
channel means; for a LeNet, its fully connected layers. A compiled model (``torch.export``, TorchScript) runs
no hooks; there the head is applied to X''s channel means (``_common.head_logits``), which ``fit`` checks is what
the network does (the pooled map must equal the head's input).

Where oodbench departs from the code: s₁u₁v₁ᵀ is computed exactly, in float64, from the top eigenvector e of
the smaller Gram matrix of X (s₁u₁v₁ᵀ = X v₁v₁ᵀ = u₁u₁ᵀ X), instead of the code's full SVD in float32 (the same
matrix up to rounding) or the paper's optional power iteration (§3, an approximation for speed). The paper's
best row fuses Block 3 and Block 4 (the logits averaged); only the Block-4 variant is implemented here. Needs
the un-pooled map, so it runs its own forward pass (memoised per view).
"""

from __future__ import annotations

import uuid
from typing import Any

import torch

from oodbench import Detector, Needs
from oodbench.models.backbones import pool_feature
from oodbench.models.features import FeatureView

from ._common import energy, head_logits


def remove_rank1(maps: torch.Tensor) -> torch.Tensor:
    """N×C×H×W maps → the same maps less each one's top singular component s₁u₁v₁ᵀ (eq. 2), in float64."""
    n, c = maps.shape[:2]
    x = maps.reshape(n, c, -1).double()
    if c <= x.shape[2]:
        e = torch.linalg.eigh(x @ x.mT).eigenvectors[..., -1:]  # u₁ (sign-free: u₁u₁ᵀ)
        rest = x - e @ (e.mT @ x)
    else:
        e = torch.linalg.eigh(x.mT @ x).eigenvectors[..., -1:]  # v₁
        rest = x - (x @ e) @ e.mT
    return rest.reshape(maps.shape).to(maps.dtype)


def _is_compiled(model) -> bool:
    return hasattr(model.net, "forward_taps")


class RankFeat(Detector):
    name = "rankfeat"
    description = "energy after removing the top singular component of the last feature map (Song et al. 2022)"
    paper = "Song, Sebe & Wang 2022, RankFeat: Rank-1 Feature Removal for Out-of-distribution Detection"
    criterion = "auroc"
    needs = Needs(feature_maps=True)  # the deepest feature map, through the rest of the network
    parameter_constraints = {"layer": [str, None]}

    def __init__(self, layer: str | None = None):
        self.layer = layer

    def required_layers(self, model) -> list[str]:
        return ["logits"]

    def _spatial_layer(self, model, shape: tuple[int, ...]) -> str:
        """The chosen layer, or the deepest named layer whose output is an N×C×H×W map."""
        model.eval()
        with torch.inference_mode():
            x = torch.zeros(1, *shape, device=next(model.parameters()).device)
            probe = model.forward_features(x, list(model.layer_paths), pool=False)
        if self.layer is not None:
            if self.layer not in model.layer_paths or probe[self.layer].ndim != 4:
                raise ValueError(f"rankfeat: layer {self.layer!r} is not a named N×C×H×W feature map of the backbone")
            return self.layer
        maps = [k for k in model.layer_paths if probe[k].ndim == 4]
        if not maps:
            raise ValueError("rankfeat needs a convolutional feature map; the backbone names none (N×C×H×W)")
        return maps[-1]

    def fit(self, train: FeatureView) -> RankFeat:
        model = train.model
        self.layer_ = self._spatial_layer(model, train.imageset.shape)
        self.route_ = "pooled map → head" if _is_compiled(model) else "rest of the network"
        if _is_compiled(model):
            self._check_pooled_head(train)
        self.fit_id_ = uuid.uuid4().hex
        return self

    def _check_pooled_head(self, train: FeatureView) -> None:
        """On a compiled model: the layer's channel means must be the head's input (else the head alone is not
        the rest of the network)."""
        x = next(train.subset(torch.arange(min(8, len(train)))).batches())
        with torch.inference_mode():
            out = train.model.forward_features(x, [self.layer_, "penultimate"])
        pooled, penultimate = out[self.layer_].float(), out["penultimate"].float()
        if pooled.shape != penultimate.shape or not torch.allclose(pooled, penultimate, rtol=1e-4, atol=1e-5):
            raise ValueError(
                f"rankfeat: on a compiled model the channel means of {self.layer_!r} must be the head's input "
                "(hooks cannot run the rest of the network); pass layer= a map that global pooling feeds to the head"
            )

    def _logits(self, model, x: torch.Tensor) -> torch.Tensor:
        """Logits of the network with the layer's map replaced by X' (one forward pass, no gradients)."""
        with torch.inference_mode():
            if _is_compiled(model):
                maps = model.forward_features(x, [self.layer_], pool=False)[self.layer_]
                return head_logits(model, pool_feature(remove_rank1(maps)).float())
            module = model.net.get_submodule(model.layer_paths[self.layer_])
            handle = module.register_forward_hook(lambda m, i, out: remove_rank1(out))
            try:
                return model(x).float()
            finally:
                handle.remove()

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        model = data.model
        logits = data.memo(("rankfeat", self.fit_id_), lambda: data.map_inputs(lambda x: self._logits(model, x)))
        return energy(logits)

    def describe_fit(self) -> dict[str, Any]:
        return {"layer": self.layer_, "route": self.route_}
