"""NAC-UE (Liu et al., ICLR 2024) against pytorch-ood 0.4.0's ``NACUE``, and on values worked out by hand.

pytorch-ood differs from the authors' code on purpose in three places (its docstring): its histogram bins are
geometric, dense near 0 and 1 (M usable bins), where the authors' are log-spaced towards ½ (M − 1 intervals, the last
never hit); a convolutional map's state is the spatial *mean of* o ⊙ g there, (Σ_hw o)·(Σ_hw g) in the authors' code;
and it sums the layers' coverages where the authors average them. With different bins the two coverage scores are
unrelated rankings (Spearman ≈ −0.1 on this LeNet), so the agreement tests hand pytorch-ood the authors' bins (its
module-level ``_bin_indices_geometric`` is swapped for them) and compare on dense layers, where the pooling
conventions coincide: then states, histograms, O and the mean over neurons must agree to float precision, and
the layer sum is a fixed multiple of the mean. The convolutional convention is checked against the authors' formula
computed here directly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_pytorch_ood_agreement import agree, ours, setup  # noqa: F401

from oodbench.data.imageset import ImageSet
from oodbench.models.features import FeatureView
from oodbench.plugins.manager import registries
from oodbench.plugins.testing import synthetic_view

pnac = pytest.importorskip("pytorch_ood.detector.nac")


def _authors_bins(z_hat: torch.Tensor, m: int) -> torch.Tensor:
    """pytorch-ood's bin-index hook with the authors' interval edges (M = m + 1 edges give m intervals)."""
    from oodbench_builtins.detectors.nac import bin_edges

    edges = bin_edges(m + 1).to(z_hat.dtype)
    return (torch.bucketize(z_hat, edges, right=True) - 1).clamp(0, m - 1)


def _theirs(monkeypatch, model, modules, x_train, x, alpha, m, o):
    monkeypatch.setattr(pnac, "_bin_indices_geometric", _authors_bins)
    det = pnac.NACUE(model, layers=modules, m_bins=m - 1, alpha=alpha, o_star=o)
    det.fit(list(x_train.split(500)))
    return det.predict(x)


@pytest.mark.parametrize("alpha", [10.0, 100.0])
def test_penultimate_agrees_with_pytorch_ood_given_the_authors_bins(setup, monkeypatch, alpha):  # noqa: F811
    """Penultimate layer (the closed-form gradient Wᵀ(p − u)) against pytorch-ood's autograd, same bins, α, M, O."""
    model, tr, te, x, x_train = setup
    theirs = _theirs(monkeypatch, model, [model.net.fc2], x_train, x, alpha, 50, 50)
    mine = ours("nac-ue", tr, te, alpha=alpha, bins=50, min_count=50, n_fit=None)
    rho = agree(mine, theirs)
    assert np.allclose(np.asarray(mine), -theirs.numpy(), atol=1e-6), rho


def test_dense_inner_layer_agrees_with_pytorch_ood_given_the_authors_bins(setup, monkeypatch):  # noqa: F811
    """fc1 (N×120, no pooling) through oodbench's batched backward pass, plus the penultimate layer: pytorch-ood
    sums the two layers' coverages, the authors (and oodbench) average them — the same ranking, half the value."""
    model, tr, te, x, x_train = setup
    theirs = _theirs(monkeypatch, model, [model.net.fc1, model.net.fc2], x_train, x, 10.0, 50, 20)
    mine = ours("nac-ue", tr, te, layers=["fc1", "penultimate"], alpha=10.0, bins=50, min_count=20, n_fit=None)
    agree(mine, theirs)
    assert np.allclose(2 * np.asarray(mine), -theirs.numpy(), atol=1e-6)


def test_conv_state_is_the_authors_summed_product_and_batch_independent(setup):  # noqa: F811
    """conv2 (N×16×4×4): the state is (Σ_hw o)·(Σ_hw ∂KL/∂o), computed here with one autograd call over the
    whole set, and a view scored in batches of 7 gives the same states as one in batches of 512."""
    model, tr, te, x, _ = setup
    det = registries().detectors.get("nac-ue")(layers=["conv2"], alpha=1.0, n_fit=None).fit(tr)
    maps = {}
    handle = model.net.conv2.register_forward_hook(lambda m, i, o: maps.__setitem__("o", o))
    try:
        loss = -torch.log_softmax(model(x), dim=1).mean(dim=1).sum()
        g = torch.autograd.grad(loss, maps["o"])[0]
    finally:
        handle.remove()
    expected = maps["o"].detach().sum(dim=(2, 3)) * g.sum(dim=(2, 3))
    got = det._states(te)["conv2"]
    assert torch.allclose(got, expected, rtol=1e-4, atol=1e-6)
    small = det._states(FeatureView(te.imageset, model, "cpu", 7))["conv2"]
    assert torch.allclose(small, got, rtol=1e-5, atol=1e-7)
    assert not torch.allclose(got, (maps["o"].detach() * g).mean(dim=(2, 3)), rtol=1e-2)  # pytorch-ood's


def test_coverage_by_hand():
    """Two neurons, head W = I, b = 0, so ∂KL/∂h = p − u = (s, −s) with s = σ(h₁ − h₂) − ½, and the raw states are
    (h₁·s, −h₂·s). M = 4: edges log_1000(linspace(1, √1000, 2)) = (0, ½), mirrored (½, 1) → (0, ½, 1.01, 1.2):
    interval 0 = [0, ½), interval 1 = [½, 1.01), so a state lands in interval 1 iff its raw value is ≥ 0 (any α).

    Fit set (h₁, h₂) → intervals (n₁, n₂): (2, 1) → (1, 0); (3, 1) → (1, 0); (1, 2) → s < 0 → (0, 1).
    Counts n₁: [1, 2], n₂: [2, 1]; O = 2: Φ(n₁) = [½, 1], Φ(n₂) = [1, ½].
    Test: (5, 1) → (1, 0) → (1 + 1)/2 = 1; (1, 4) → (0, 1) → (½ + ½)/2 = ½; (2, 2) → s = 0, raw 0, σ = ½ exactly
    → (1, 1) → (1 + ½)/2 = ¾. With O = 1 every visited interval is full: 1, 1, 1.

    M = 6: edges (0, log_1000 16.311 = 0.40416, ½, 0.59584, 1.01, 1.2). At α = 100 the fit states saturate
    (|raw| ≥ 0.23 ⇒ σ < 10⁻¹⁰ or > 1 − 10⁻¹⁰): n₁ → intervals 3, 3, 0; n₂ → 0, 0, 3; counts n₁ [1, 0, 0, 2],
    n₂ [2, 0, 0, 1]. Test (5, 1) → (3, 0) → 1; (1, 4) → (0, 3) → ½; (2, 2) → raw 0 → σ = ½ → interval 2, never
    visited in the fit set → 0.
    """
    from oodbench_builtins.detectors.nac import bin_edges

    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    train = synthetic_view({"penultimate": torch.tensor([[2.0, 1.0], [3.0, 1.0], [1.0, 2.0]])}, head=head)
    test = synthetic_view({"penultimate": torch.tensor([[5.0, 1.0], [1.0, 4.0], [2.0, 2.0]])}, head=head)
    det = registries().detectors.get("nac-ue")(alpha=1.0, bins=4, min_count=2, n_fit=None).fit(train)
    assert det.layers_ == ["penultimate"]
    assert torch.allclose(bin_edges(4), torch.tensor([0.0, 0.5, 1.01, 1.2], dtype=torch.float64))
    assert np.allclose(det.score_samples(test), [1.0, 0.5, 0.75])
    assert np.allclose(det.tuned_copy(min_count=1).score_samples(test), [1.0, 1.0, 1.0])
    third = math.log10(math.sqrt(1000.0) / 2 + 0.5) / 3
    assert torch.allclose(bin_edges(6), torch.tensor([0, third, 0.5, 1 - third, 1.01, 1.2], dtype=torch.float64))
    assert abs(third - 0.40416) < 1e-5
    assert np.allclose(det.tuned_copy(alpha=100.0, bins=6).score_samples(test), [1.0, 0.5, 0.0])


def test_fit_set_is_class_balanced_and_seeded():
    """n_fit = 12 over 3 classes (20, 10, 6 samples): 4 per class, the same indices for the same seed."""
    from oodbench_builtins.detectors.nac import balanced_subset

    labels = torch.cat([torch.zeros(20), torch.ones(10), torch.full((6,), 2.0)]).long()
    index = balanced_subset(labels, 12, seed=3)
    assert torch.equal(torch.bincount(labels[index]), torch.tensor([4, 4, 4]))
    assert torch.equal(index, balanced_subset(labels, 12, seed=3)) and torch.equal(index, index.sort().values)
    assert not torch.equal(index, balanced_subset(labels, 12, seed=4))
    assert torch.equal(torch.bincount(labels[balanced_subset(labels, 60, seed=0)]), torch.tensor([6, 6, 6]))


def test_resnet_defaults_to_the_papers_layers_and_per_layer_grid():
    """On a ResNet the default layers are the authors' (layer1–layer3 + penultimate = avgpool), each with the
    authors' CIFAR-10 values, and the grid crosses their per-layer sweeps (2·1·2·1 α × 2·1·2·1 M × 4·2·1·2 O)."""
    torch.manual_seed(0)
    model = registries().backbones.get("resnet18").build((3, 32, 32), 10).eval()
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (24, 3, 32, 32), generator=g, dtype=torch.uint8)
    view = FeatureView(ImageSet(images, torch.arange(24) % 10, "noise"), model, "cpu", 8)
    det = registries().detectors.get("nac-ue")().fit(view)
    assert det.layers_ == ["layer1", "layer2", "layer3", "penultimate"]
    assert det.describe_fit()["alpha"] == [0.001, 0.001, 1000.0, 100.0]
    assert {k: v.shape[1] for k, v in det.states_.items()} == {
        "layer1": 64,
        "layer2": 128,
        "layer3": 256,
        "penultimate": 512,
    }
    space = det.search_space()
    assert [len(space[k]) for k in ("alpha", "bins", "min_count")] == [4, 4, 16]
    assert space["alpha"][0] == (0.001, 0.001, 1000.0, 100.0)
    scores = det.tuned_copy(**{k: v[-1] for k, v in space.items()}).score_samples(view)
    assert scores.shape == (24,) and torch.isfinite(scores).all() and (scores >= 0).all() and (scores <= 1).all()
