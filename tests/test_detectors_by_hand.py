"""Detectors on tiny synthetic features, checked against values worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from oodbench.plugins.manager import registries
from oodbench.plugins.testing import synthetic_view


def det(name, **params):
    return registries().detectors.get(name)(**params)


def test_logit_scores():
    v = synthetic_view({"logits": torch.tensor([[2.0, 0.0], [0.0, 0.0]])})
    assert np.allclose(det("maxlogit").fit(v).score_samples(v), [2.0, 0.0])
    assert np.allclose(det("energy").fit(v).score_samples(v), [math.log(math.exp(2) + 1), math.log(2)])
    p = math.exp(2) / (math.exp(2) + 1)
    assert np.allclose(
        det("entropy").fit(v).score_samples(v), [p * math.log(p) + (1 - p) * math.log(1 - p), math.log(0.5)], atol=1e-6
    )
    # GEN with gamma = 1: −Σ p(1−p) = −2·p(1−p)
    assert np.allclose(det("gen", gamma=1.0).fit(v).score_samples(v), [-2 * p * (1 - p), -0.5], atol=1e-6)


def test_mahalanobis_two_known_gaussians():
    """Class means (±2, 0), identity-like tied covariance: the score is −min squared distance."""
    g = torch.Generator().manual_seed(0)
    n = 20000
    labels = torch.arange(n) % 2
    means = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    train = synthetic_view({"penultimate": means[labels] + torch.randn(n, 2, generator=g)}, labels)
    d = det("mahalanobis", layers=["penultimate"]).fit(train)
    assert torch.allclose(d.means_["penultimate"], means, atol=0.05)
    assert torch.allclose(d.precision_["penultimate"], torch.eye(2), atol=0.05)
    test = synthetic_view({"penultimate": torch.tensor([[-2.0, 0.0], [0.0, 0.0], [2.0, 3.0]])})
    assert np.allclose(d.score_samples(test), [0.0, -4.0, -9.0], atol=0.15)


def test_mahalanobis_leaves_out_absent_classes_and_is_stable_far_from_the_origin():
    """Issue 28: a class without training samples gets no zero mean in the minimum; the quadratic form keeps its
    precision when every feature shares a large offset (float32's expanded form loses it to cancellation)."""
    from oodbench_builtins.detectors._common import mahalanobis_sq

    labels = torch.tensor([0, 0, 0, 0, 2, 2, 2, 2])  # class 1 absent (a --train-limit subset)
    spread = torch.tensor([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])  # Σ = ½ I, P = 2 I
    x = torch.cat([torch.tensor([5.0, 0.0]) + spread, torch.tensor([15.0, 0.0]) + spread])
    d = det("mahalanobis", layers=["penultimate"]).fit(synthetic_view({"penultimate": x}, labels))
    assert d.means_["penultimate"].tolist() == [[5.0, 0.0], [15.0, 0.0]]
    s = d.score_samples(synthetic_view({"penultimate": torch.tensor([[0.0, 0.0]])}))
    assert s[0] == pytest.approx(-50.0, rel=1e-4)  # 2·5²: the nearest present class, not a zero mean (score 0)
    mean = torch.full((1, 64), 3000.0)
    point = mean + 0.01  # ‖f − μ‖² ≈ 64 · 1e-4 (exactly: from the float32 values, in float64)
    exact = ((point.double() - mean.double()) ** 2).sum().item()
    expanded32 = ((point * point).sum() - 2 * (point * mean).sum() + (mean * mean).sum()).item()
    assert abs(expanded32 - exact) > 0.5 * exact  # what the float32 expansion gave
    assert mahalanobis_sq(point, mean, torch.eye(64))[0, 0].item() == pytest.approx(exact, rel=1e-5)


def test_rmd_subtracts_the_background_distance():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(20000) % 2
    x = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])[labels] + torch.randn(20000, 2, generator=g)
    d = det("rmd").fit(synthetic_view({"penultimate": x}, labels))
    # background: mean 0, covariance diag(5, 1) → at (2, 0): MD_0 = 4/5; MD_1 = 0 → RMD = −0.8, score 0.8
    s = d.score_samples(synthetic_view({"penultimate": torch.tensor([[2.0, 0.0]])}))
    assert s[0] == pytest.approx(0.8, abs=0.05)


def test_knn_kth_neighbour_distance():
    bank = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    d = det("knn", k=2).fit(synthetic_view({"penultimate": bank}))
    q = synthetic_view({"penultimate": torch.tensor([[2.0, 0.0]])})  # normalised (1, 0): distances 0, √2, 2
    assert d.score_samples(q)[0] == pytest.approx(-math.sqrt(2), abs=1e-5)
    assert d.tuned_copy(k=3).score_samples(q)[0] == pytest.approx(-2.0, abs=1e-5)


def test_knn_grid_shares_one_search_per_view(monkeypatch):
    """Issue 28: the eight grid points read one top-1000 search per view (they differ only at score time), and
    each point's scores equal those of a detector fitted with that k alone."""
    import oodbench_builtins.detectors.knn as knn_module

    depths = []
    real = knn_module.topk_similarities
    monkeypatch.setattr(knn_module, "topk_similarities", lambda q, b, k: depths.append(k) or real(q, b, k))
    g = torch.Generator().manual_seed(0)
    bank, queries = torch.randn(1500, 8, generator=g), torch.randn(40, 8, generator=g)
    fitted = det("knn").fit(synthetic_view({"penultimate": bank}))
    view = synthetic_view({"penultimate": queries})
    grid = [fitted.tuned_copy(k=k).score_samples(view) for k in knn_module.K_GRID]
    assert depths == [1000]
    alone = [det("knn", k=k).fit(synthetic_view({"penultimate": bank})).score_samples(view) for k in knn_module.K_GRID]
    assert all(torch.allclose(a, b) for a, b in zip(grid, alone))
    assert depths[1:] == knn_module.K_GRID  # an untuned detector searches only as deep as its own k


def test_react_ash_scale_dice_gradnorm_by_hand():
    head = torch.nn.Linear(4, 2)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 1.0, 1.0]]))
        head.bias.zero_()
    h = torch.tensor([[4.0, 1.0, 2.0, 3.0]])
    v = synthetic_view({"penultimate": h}, head=head)
    lse = lambda z: float(torch.logsumexp(torch.tensor(z), 0))  # noqa: E731
    # ReAct: threshold = 75th percentile of the training activations {4, 1, 2, 3} = 3.25 → h = (3.25, 1, 2, 3)
    react = det("react", percentile=75).fit(v)
    assert react.threshold() == pytest.approx(3.25)
    assert react.score_samples(v)[0] == pytest.approx(lse([3.25, 6.0]))
    # ASH at p = 50 keeps the top 2 activations (4, 3); s1 = 10, s2 = 7
    assert det("ash", variant="p", percentile=50).fit(v).score_samples(v)[0] == pytest.approx(lse([4.0, 3.0]))
    assert det("ash", variant="b", percentile=50).fit(v).score_samples(v)[0] == pytest.approx(lse([5.0, 5.0]))
    e = math.exp(10 / 7)
    assert det("ash", variant="s", percentile=50).fit(v).score_samples(v)[0] == pytest.approx(
        lse([4 * e, 3 * e]), rel=1e-5
    )
    # SCALE: no pruning, same factor
    assert det("scale", percentile=50).fit(v).score_samples(v)[0] == pytest.approx(lse([4 * e, 6 * e]), rel=1e-5)
    # DICE: contributions W ⊙ mean(h) = [[4,0,0,0],[0,1,2,3]]; sparsity 75 keeps entries above the 75th
    # percentile (2.25) → 4 and 3 → logits (4, 3)
    assert det("dice", sparsity=75).fit(v).score_samples(v)[0] == pytest.approx(lse([4.0, 3.0]))
    # GradNorm: ‖softmax(z) − u‖₁ · ‖h‖₁ with z = (4, 6)
    p = torch.softmax(torch.tensor([4.0, 6.0]), 0)
    want = float((p - 0.5).abs().sum() * 10)
    assert det("gradnorm").fit(v).score_samples(v)[0] == pytest.approx(want, rel=1e-5)
    # and that closed form is the L1 norm of the back-propagated weight gradient
    w = head.weight.detach().clone().requires_grad_(True)
    loss = -torch.log_softmax(h @ w.T, dim=1).mean()  # KL(u ‖ p) up to a constant
    (grad,) = torch.autograd.grad(loss, w)
    assert float(grad.abs().sum()) == pytest.approx(want, rel=1e-5)


def test_she_klm_vim_by_hand():
    head = torch.nn.Linear(2, 2)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
        head.bias.zero_()
    train = synthetic_view(
        {"penultimate": torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 2.0]])}, torch.tensor([0, 0, 1]), head=head
    )
    she = det("she").fit(train)
    assert torch.allclose(she.patterns_, torch.tensor([[2.0, 0.0], [0.0, 2.0]]))
    test = synthetic_view({"penultimate": torch.tensor([[1.0, 0.5]])}, head=head)
    assert she.score_samples(test)[0] == pytest.approx(2.0)  # predicted class 0: (1, 0.5)·(2, 0)
    klm = det("klm").fit(train)
    same = synthetic_view({"logits": torch.log(klm.templates_[:1])})  # exactly template 0 → KL 0
    assert klm.score_samples(same)[0] == pytest.approx(0.0, abs=1e-5)
    # ViM with D = 1 in 2-D: zero bias → origin 0; principal axis of the training features
    x = torch.tensor([[2.0, 0.0], [-2.0, 0.0], [3.0, 0.0], [-3.0, 0.0], [0.0, 0.1], [0.0, -0.1]])
    vim = det("vim", dim=1).fit(synthetic_view({"penultimate": x}, head=head))
    assert torch.allclose(vim.residual_basis_.abs().squeeze(), torch.tensor([0.0, 1.0], dtype=torch.float64), atol=1e-6)
    probe = synthetic_view({"penultimate": torch.tensor([[0.0, 1.0]])}, head=head)
    assert vim.score_samples(probe)[0] == pytest.approx(math.log(1 + math.e) - vim.alpha_ * 1.0, rel=1e-5)


def test_fdbd_by_hand():
    """fDBD (Liu & Qin 2024, eq. 3 and 5): head rows (1, 0), (0, 1), (−1, 0), no bias; training mean 0. At z = (2, 1)
    the logits are (2, 1, −2), ŷ = 0; boundary distances 1/√2 (to class 1) and 4/2 (to class 2), mean
    (1/√2 + 2)/2, divided by ‖z‖ = √5."""
    head = torch.nn.Linear(2, 3)
    with torch.no_grad():
        head.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]))
        head.bias.zero_()
    train = synthetic_view({"penultimate": torch.tensor([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0], [0.0, -1.0]])}, head=head)
    fdbd = det("fdbd").fit(train)
    probe = synthetic_view({"penultimate": torch.tensor([[2.0, 1.0], [0.1, 0.0]])}, head=head)
    expected = [(1 / math.sqrt(2) + 2) / 2 / math.sqrt(5), (0.1 / math.sqrt(2) + 0.1) / 2 / 0.1]
    assert np.allclose(fdbd.score_samples(probe), expected, rtol=1e-6)
