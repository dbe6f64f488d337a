"""RankFeat, NCI, GradUncertainty and pNML (issue 26): agreement with pytorch-ood 0.4.0 on the same trained LeNet
and FashionMNIST/MNIST samples (Spearman(ours, −theirs) ≥ 0.99, as in ``test_pytorch_ood_agreement.py``), and one
value per detector worked out by hand from its equation."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np
import pytest
import torch
from test_pytorch_ood_agreement import agree, encoder, ours, setup  # noqa: F401

from oodbench.data.imageset import ImageSet
from oodbench.models.backbones import Backbone
from oodbench.models.features import FeatureView
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import synthetic_view

pood = pytest.importorskip("pytorch_ood.detector")


def det(name, **params):
    return registries().detectors.get(name)(**params)


# -- agreement with pytorch-ood -----------------------------------------------------------------------------------


def test_rankfeat_agrees(setup):  # noqa: F811
    """Same map (LeNet's conv2, the deepest N×C×H×W layer, which oodbench picks by itself) and the same rest of the
    network (fc1 → fc2 → fc3): pytorch-ood subtracts s₁u₁v₁ᵀ from a float32 SVD, oodbench from the top eigenvector
    of the Gram matrix in float64 — the same matrix up to rounding."""
    model, tr, te, x, _ = setup
    fitted = det("rankfeat").fit(tr)
    assert fitted.describe_fit() == {"layer": "conv2", "route": "rest of the network"}
    net = model.net
    theirs = pood.RankFeat(
        backbone=lambda images: model.forward_features(images, ["conv2"], pool=False)["conv2"],
        head=lambda maps: net.fc3(net.fc2(net.fc1(maps))),
    )
    with torch.no_grad():
        rho = agree(fitted.score_samples(te), theirs.predict(x))
    assert rho > 0.999


@pytest.mark.parametrize("alpha", [0.0, 1e-4, 0.1])
def test_nci_agrees(setup, alpha):  # noqa: F811
    """pytorch-ood returns −pScore − α‖h‖₁ (−pScore alone at α = 0): the negative of oodbench's score."""
    model, tr, te, x, _ = setup
    theirs = pood.NCI(encoder(model), model.head, alpha=alpha)
    with torch.no_grad():
        theirs.fit_features(tr.features(["penultimate"])["penultimate"])
        t = theirs.predict(x)
    ref = ours("nci", tr, te, alpha=alpha)
    agree(ref, t, at_least=0.9999)
    assert np.allclose(np.asarray(ref), -t.numpy(), rtol=1e-4, atol=1e-4)  # the same numbers, not only the order


@pytest.mark.parametrize("parameters", ["all", "head"])
def test_grad_uncertainty_agrees(setup, parameters):  # noqa: F811
    """pytorch-ood back-propagates BCE(softmax, 1) per sample (torch.func) through every parameter, or through the
    head's with a ``param_filter``; oodbench the same loss as −Σ log_softmax (batched per-sample gradients) or the
    head's closed form. pytorch-ood's BCE backward clamps p(1 − p) at 10⁻¹² (module docstring), which changes the
    norms of very confident samples only, so the ranks agree; the values agree on samples whose smallest class
    probability stays above 10⁻⁸, where the clamp never acts."""
    model, tr, te, x, _ = setup
    keep = (lambda name: name.startswith("net.fc3.")) if parameters == "head" else None
    theirs = pood.GradUncertainty(model, param_filter=keep).predict(x)
    ref = ours("grad-uncertainty", tr, te, parameters=parameters)
    rho = agree(ref, theirs)
    assert rho > 0.995
    unclamped = (torch.softmax(te.logits().double(), dim=1).min(dim=1).values > 1e-8).numpy()
    assert unclamped.sum() > 50
    assert np.allclose(np.asarray(ref)[unclamped], -theirs.numpy()[unclamped], rtol=1e-3)


def test_grad_uncertainty_head_closed_form_is_the_all_parameter_sum_restricted_to_the_head(setup):  # noqa: F811
    """The head's terms are part of the full sum: ``all`` ≥ ``head`` for every sample, strictly where the earlier
    layers' gradients do not vanish."""
    _, tr, te, _, _ = setup
    head = np.asarray(ours("grad-uncertainty", tr, te, parameters="head"))
    every = np.asarray(ours("grad-uncertainty", tr, te, parameters="all"))
    assert (every >= head * (1 - 1e-5)).all() and (every > head).mean() > 0.9


def test_pnml_agrees(setup):  # noqa: F811
    """Same normalised features, same head on them, same (XᵀX)⁺: pytorch-ood's pinv of the float32 Gram matrix at
    its default cutoff (D·ε_float32) against oodbench's float64 one at the same relative cutoff, and its clamp of p
    to [10⁻¹², 1 − 10⁻¹²] against oodbench's exact log-space summand. The values differ by float32 rounding only:
    this LeNet's Gram matrix keeps eigenvalues from 2·10³ down to the cutoff, 2·10⁻², where float32 eigenvalues
    carry about ε·λ_max/λ ≈ 1 % error, so the scores agree to about 1 % (max 1.2·10⁻³ on regrets of ~10⁻²)."""
    model, tr, te, x, _ = setup
    theirs = pood.PNML(encoder(model), model.head)
    with torch.no_grad():
        theirs.fit_features(tr.features(["penultimate"])["penultimate"], tr.labels)
        t = theirs.predict(x)
    ref = ours("pnml", tr, te)
    rho = agree(ref, t)
    assert rho > 0.999
    gap = np.abs(np.asarray(ref) + t.numpy())
    assert gap.mean() < 0.01 * np.abs(np.asarray(ref)).mean() and gap.max() < 2e-3


# -- values by hand ----------------------------------------------------------------------------------------------


def _two_by_two_backbone(head: torch.nn.Linear) -> Backbone:
    """Images of 2 channels × 1 × 2 pixels are the feature map itself (layer ``map``, a ReLU of the non-negative
    image: X ∈ R^{2×2} is the image), then global average pooling and ``head``: logits = head(row means of X)."""
    net = torch.nn.Sequential(
        OrderedDict(map=torch.nn.ReLU(), pool=torch.nn.AdaptiveAvgPool2d(1), flat=torch.nn.Flatten(), head=head)
    )
    return Backbone(net, {"map": "map"}, "head", [0.0, 0.0], [1.0, 1.0], (2, 1, 2), arch="2x2")


def test_rankfeat_by_hand():
    """Head W = I, b = 0, so the score is log(e^{m₁} + e^{m₂}) with (m₁, m₂) the row means of X' = X − s₁u₁v₁ᵀ (eq. 2).

    - X = [[1, 0], [0, 0.2]]: s₁ = 1, u₁ = v₁ = e₁, X' = [[0, 0], [0, 0.2]]; means (0, 0.1);
      score log(1 + e^{0.1}) = 0.744397 (the plain energy of X would be log(e^{0.5} + e^{0.1}) = 1.2130).
    - X = [[1, 1], [1, 1]] has rank 1: X' = 0, means (0, 0), score log 2 = 0.693147.
    - X = [[1, 1], [1, 0]] is symmetric with eigenvalues φ = (1 + √5)/2 and ψ = (1 − √5)/2: s₁ = φ, u₁ = v₁ ∝ (φ, 1),
      so X' = ψ u₂u₂ᵀ with u₂ = (−1, φ)/√(1 + φ²): X' = ψ/(φ + 2) · [[1, −φ], [−φ, φ²]] (φ² = φ + 1). Row means:
      m₁ = ψ(1 − φ)/(2(φ + 2)) = ψ²/(2(φ + 2)) = 0.052786, m₂ = ψ(φ² − φ)/(2(φ + 2)) = ψ/(2(φ + 2)) = −0.085410;
      score log(e^{0.052786} + e^{−0.085410}) = 0.679221.
    """
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.2]], [[1.0, 1.0], [1.0, 1.0]], [[1.0, 1.0], [1.0, 0.0]]])
    images = (maps * 255).round().to(torch.uint8)[:, :, None, :]  # N × C=2 × H=1 × W=2
    view = FeatureView(ImageSet(images, torch.zeros(3, dtype=torch.long), "2x2"), _two_by_two_backbone(head))
    scores = det("rankfeat").fit(view).score_samples(view)
    assert scores.tolist() == pytest.approx([math.log(1 + math.exp(0.1)), math.log(2.0), 0.6792206747690677], abs=1e-6)


def test_rankfeat_on_a_compiled_model_applies_the_head_to_the_pooled_map():
    """A ``torch.export`` program runs no hooks: the head is applied to the channel means of X', which is what the
    network does here (pooling, then the head), so the scores are those above. A network that flattens the map into
    its head instead is refused at fit, in one line."""
    from oodbench.models.taps import ExportTaps

    def compiled(net: torch.nn.Module, head: str) -> Backbone:
        program = torch.export.export(net, (torch.zeros(2, 2, 1, 2),), dynamic_shapes=({0: torch.export.Dim("n")},))
        return Backbone(ExportTaps(program.module()), {"map": "map"}, head, [0.0, 0.0], [1.0, 1.0], (2, 1, 2))

    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    maps = torch.tensor([[[1.0, 0.0], [0.0, 0.2]], [[1.0, 1.0], [1.0, 0.0]]])
    images = (maps * 255).round().to(torch.uint8)[:, :, None, :]
    labels = torch.zeros(2, dtype=torch.long)
    view = FeatureView(ImageSet(images, labels, "2x2"), compiled(_two_by_two_backbone(head).net, "head"))
    fitted = det("rankfeat").fit(view)
    assert fitted.describe_fit()["route"] == "pooled map → head"
    assert fitted.score_samples(view).tolist() == pytest.approx([math.log(1 + math.exp(0.1)), 0.6792206747690677])
    flat = torch.nn.Sequential(OrderedDict(map=torch.nn.ReLU(), flat=torch.nn.Flatten(), fc=torch.nn.Linear(4, 2)))
    with pytest.raises(ValueError, match="channel means"):
        det("rankfeat").fit(FeatureView(ImageSet(images, labels, "2x2"), compiled(flat, "fc")))


def test_nci_by_hand():
    """Training features (2, 1) and (0, 1): μ_G = (1, 1). Head W = [[2, 0], [0, 1]], b = 0 (‖w₀‖ = 2: not divided by),
    α = 0.1. S = ⟨w_ŷ, h − μ_G⟩/‖h − μ_G‖ + α‖h‖₁:

    - h = (4, 1): logits (8, 1), ŷ = 0; h − μ_G = (3, 0); 6/3 + 0.1·5 = 2.5.
    - h = (1, 3): logits (2, 3), ŷ = 1; h − μ_G = (0, 2); 2/2 + 0.1·4 = 1.4.
    - h = (2, 3): logits (4, 3), ŷ = 0; h − μ_G = (1, 2); 2/√5 + 0.1·5 = 1.394427.
    """
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 1.0]]))
        head.bias.zero_()
    train = synthetic_view({"penultimate": torch.tensor([[2.0, 1.0], [0.0, 1.0]])}, head=head)
    test = synthetic_view({"penultimate": torch.tensor([[4.0, 1.0], [1.0, 3.0], [2.0, 3.0]])}, head=head)
    scores = det("nci", alpha=0.1).fit(train).score_samples(test)
    assert scores.tolist() == pytest.approx([2.5, 1.4, 2 / math.sqrt(5) + 0.5], abs=1e-9)
    assert det("nci", alpha=0.0).fit(train).score_samples(test).tolist() == pytest.approx([2.0, 1.0, 2 / math.sqrt(5)])


def test_grad_uncertainty_by_hand():
    """A two-layer network x → h = A x (A = I, no bias) → z = W h + b, W = [[ln 3, 0], [0, 0]], b = 0, on 2-pixel
    images. L = −Σ_c log p_c has ∂L/∂z = g = C·p − 1, so ∇_W = g hᵀ, ∇_b = g, ∇_A = (Wᵀg) xᵀ and
    S_all = ‖g‖²(‖h‖² + 1) + ‖Wᵀg‖²‖x‖², S_head = ‖g‖²(‖h‖² + 1).

    - x = (1, 0): h = (1, 0), z = (ln 3, 0), p = (3/4, 1/4), g = (1/2, −1/2), ‖g‖² = 1/2, Wᵀg = (ln 3 / 2, 0):
      S_head = 1/2 · 2 = 1, S_all = 1 + (ln 3)²/4 = 1.301737.
    - x = (0, 0): z = 0, p uniform, g = 0: both 0 (a uniform softmax needs no change).
    """
    hidden = torch.nn.Linear(2, 2, bias=False)
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        hidden.weight.copy_(torch.eye(2))
        head.weight.copy_(torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]]))
        head.bias.zero_()
    net = torch.nn.Sequential(OrderedDict(flat=torch.nn.Flatten(), hidden=hidden, head=head))
    model = Backbone(net, {"hidden": "hidden"}, "head", [0.0], [1.0], (1, 1, 2), arch="two-layer")
    images = torch.tensor([[[[255, 0]]], [[[0, 0]]]], dtype=torch.uint8)
    view = FeatureView(ImageSet(images, torch.zeros(2, dtype=torch.long), "pixels"), model)
    every = det("grad-uncertainty").fit(view).score_samples(view)
    head_only = det("grad-uncertainty", parameters="head").fit(view).score_samples(view)
    assert every.tolist() == pytest.approx([1 + math.log(3.0) ** 2 / 4, 0.0], abs=1e-6)
    assert head_only.tolist() == pytest.approx([1.0, 0.0], abs=1e-6)  # from float32 logits


def test_pnml_by_hand():
    """Training features (1, 0) three times and (0, 1) once (already unit length): XᵀX = diag(3, 1), (XᵀX)⁺ =
    diag(1/3, 1). Head W = ln 3 · I, b = 0, on the normalised test feature z:

    - h = (5, 0) → z = (1, 0) (normalised first): zᵀ(XᵀX)⁺z = 1/3, xᵀg = (1/3)/(4/3) = 1/4; logits (ln 3, 0),
      p = (3/4, 1/4). Summands 0.75/(0.75 + 0.25·0.75^{1/4}) = 0.763241 and 0.25/(0.25 + 0.75·0.25^{1/4}) = 0.320377;
      Γ = log(1.083618)/log 2 = 0.115857, S = −0.115857.
    - h = (0, 1): the rarely seen direction, zᵀ(XᵀX)⁺z = 1, xᵀg = 1/2; p = (1/4, 3/4). Summands
      0.75/(0.75 + 0.25·√0.75) = 0.775991 and 0.25/(0.25 + 0.75·0.5) = 0.4; Γ = log(1.175991)/log 2 = 0.233877,
      S = −0.233877: larger regret, lower score.
    """
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(math.log(3.0) * torch.eye(2))
        head.bias.zero_()
    train = synthetic_view({"penultimate": torch.tensor([[1.0, 0.0]] * 3 + [[0.0, 1.0]])}, head=head)
    test = synthetic_view({"penultimate": torch.tensor([[5.0, 0.0], [0.0, 1.0]])}, head=head)
    fitted = det("pnml").fit(train)
    assert torch.allclose(fitted.projector_, torch.diag(torch.tensor([1 / 3, 1.0], dtype=torch.float64)))
    scores = fitted.score_samples(test)
    assert scores.tolist() == pytest.approx([-0.11585699650012825, -0.2338767274415078], abs=1e-9)
