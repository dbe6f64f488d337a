"""Input pre-processing shared by ODIN, Mahalanobis and FSSD: x̃ = x + ε·sign(∇_x objective(x)).

The gradient sign does not depend on ε, so it is computed once per (samples, fitted detector,
objective) — one batched backward pass on the model's device — and memoised in the view; each
ε on the grid then costs one forward pass. Perturbations act in pixel space ([0, 1] inputs;
every backbone normalises internally), which matches the reference code's ε after its
division of the gradient by the normalisation std.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable

import torch

from oodbench.models.features import FeatureView


def gradient_sign(data: FeatureView, key: Hashable, objective: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """sign(∇_x objective(x)) for every sample (int8, on the CPU), memoised under ``key``.

    ``objective(x)`` returns one value per sample; samples do not interact, so the gradient of
    the batch sum is each sample's own gradient.
    """

    def batch_sign(x: torch.Tensor) -> torch.Tensor:
        x = x.clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(objective(x).sum(), x)
        return grad.sign()

    return data.memo(("grad-sign", key), lambda: data.map_inputs(batch_sign).to(torch.int8))


def perturbed_scores(
    data: FeatureView,
    key: Hashable,
    sign: torch.Tensor,
    epsilon: float,
    score: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``score(x + ε·sign)`` for every sample (no gradients), memoised under (key, ε)."""

    def batch(x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return score(x + epsilon * s.to(x.dtype))

    return data.memo(("perturbed", key, epsilon), lambda: data.map_inputs(batch, sign))
