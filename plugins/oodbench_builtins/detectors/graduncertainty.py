"""Gradients as uncertainty (Lee & AlRegib, ICIP 2020, "Gradients as a Measure of Uncertainty in Neural Networks",
arXiv:2008.08030).

The paper back-propagates a loss against a *confounding label* — the all-ones vector y_c = 1, no class of which
the network can fit at once — and reads how far the network would have to move: the squared L2 norms of the
gradients of every parameter. With the binary cross-entropy of the softmax output p = softmax(f(x)) against y_c,

    L(x) = Σ_c BCE(p_c, 1) = −Σ_c log p_c,       S(x) = Σ_θ ‖∂L(x)/∂θ‖₂²,

summed over the parameters (``parameters="all"``, the paper's layers) or over the classifier head alone
(``"head"``, OpenOOD's cheaper choice). ∂L/∂z = C·p − 1 for C classes: the gradient vanishes at a uniform
softmax and grows with confidence, so S is higher for familiar inputs — higher = more ID, as in pytorch-ood.

- ``"head"`` is a closed form on the cached features (no backward pass): for z = W h + b, ∇_W = g hᵀ and ∇_b = g
  with g = C·p − 1, so S = ‖g‖² (‖h‖² + 1) (the + 1 only where the head has a bias).
- ``"all"`` has no closed form: per-sample gradients of every parameter, batched with ``torch.func`` (``vmap``
  over ``grad`` of a ``functional_call``; chunks of samples sized so that their per-sample gradients stay under
  ``2**27`` floats) in one pass over ``data.batches()`` (``FeatureView.map_inputs``), memoised per view.

Where oodbench departs from the paper: its experiments (§4, as pytorch-ood's notes read it) concatenate the
per-layer squared norms and train a small classifier on labelled ID and OOD gradients; that needs OOD training
data, so oodbench, like pytorch-ood, scores the unsupervised sum. L is computed as −Σ log_softmax, the same loss in
exact arithmetic; pytorch-ood's ``binary_cross_entropy`` of the softmax clamps log p at −100 and its backward
divides by max(p(1 − p), 10⁻¹²), so for a class with p below about 10⁻¹² (a logit gap of about 28) its gradient
is not C·p − 1.
"""

from __future__ import annotations

import torch
from torch.func import functional_call, grad, vmap

from oodbench import Detector, Needs
from oodbench.models.features import FeatureView
from oodbench.plugins.constraints import Options

#: per-sample gradients held at once (floats): a chunk of the batch is at most this over the parameter count
PER_SAMPLE_FLOATS = 2**27


def head_gradient_norms(model, penultimate: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Σ over the head's weight (and bias) of ‖∂L/∂θ‖², in closed form: ‖C·p − 1‖² (‖h‖² + [bias])."""
    p = torch.softmax(logits.double(), dim=1)
    g = p * p.shape[1] - 1.0
    has_bias = getattr(model.head, "bias", None) is not None
    return g.pow(2).sum(dim=1) * (penultimate.double().pow(2).sum(dim=1) + float(has_bias))


def all_gradient_norms(data: FeatureView) -> torch.Tensor:
    """Σ over every parameter of ‖∂L/∂θ‖² per sample: batched per-sample gradients (torch.func), float64."""
    model = data.model
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    chunk = max(1, PER_SAMPLE_FLOATS // max(1, sum(v.numel() for v in params.values())))

    def loss(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, (p, buffers), (x[None],))
        return -torch.log_softmax(logits.float(), dim=1).sum()

    def squared_norm(p: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return sum(g.pow(2).sum() for g in grad(loss)(p, x).values())

    def batch(x: torch.Tensor) -> torch.Tensor:
        return vmap(squared_norm, in_dims=(None, 0), chunk_size=chunk)(params, x)

    return data.map_inputs(batch, desc="gradient norms" if len(data) > 4 * data.batch_size else None).double()


class GradUncertainty(Detector):
    name = "grad-uncertainty"
    description = "squared gradient norms of the loss against an all-ones confounding label (Lee & AlRegib 2020)"
    paper = "Lee & AlRegib 2020, Gradients as a Measure of Uncertainty in Neural Networks"
    criterion = "auroc"
    needs = Needs(gradients="network")  # per-sample gradients of every parameter (or the head in closed form)
    parameter_constraints = {"parameters": [Options("all", "head")]}

    def __init__(self, parameters: str = "all"):
        self.parameters = parameters

    def search_space(self):
        return {"parameters": ["all", "head"]}

    def required_layers(self, model) -> list[str]:
        return ["penultimate", "logits"]

    def fit(self, train: FeatureView) -> GradUncertainty:
        self.fitted_ = True
        return self

    def score_samples(self, data: FeatureView) -> torch.Tensor:
        self.check_fitted()
        if self.parameters == "head":
            feats = data.features(["penultimate", "logits"])
            return head_gradient_norms(data.model, feats["penultimate"], feats["logits"])
        if self.parameters != "all":
            raise ValueError(f"grad-uncertainty: parameters must be 'all' or 'head', got {self.parameters!r}")
        return data.memo(("grad-uncertainty", "all"), lambda: all_gradient_norms(data))
