"""Issue 26's training-time methods, part b: G-ODIN (Hsu et al., CVPR 2020) and VOS (Du et al., ICLR 2022).

Hand-worked heads, losses, queues and pre-processing on tiny tensors; each method trained through the one trainer on
a small real subset (FashionMNIST, LeNet, 2 epochs: seconds) lowers its loss and gives finite scores, one per
sample, that separate FashionMNIST from MNIST; VOS's uncertainty loss and scores agree with pytorch-ood 0.4.0.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oodbench_builtins.detectors.godin import GODIN, PAPER_EPSILONS, GodinNet, GodinTask
from oodbench_builtins.detectors.vos import (
    VOS,
    VOSNet,
    VOSTask,
    lowest_likelihood,
    tied_gaussian,
    uncertainty_loss,
    weighted_energy,
)
from test_pytorch_ood_agreement import agree
from torch import nn

from oodbench.data.imageset import ImageSet, LoadContext
from oodbench.models.backbones import Backbone
from oodbench.models.checkpoints import ModelSpec
from oodbench.models.features import FeatureView
from oodbench.models.provider import ModelProvider
from oodbench.models.train import TrainConfig
from oodbench.plugins.detector import Supplies, validate_scores
from oodbench.plugins.manager import registries
from oodbench.records.metrics import auroc

pood = pytest.importorskip("pytorch_ood")


def identity_backbone() -> Backbone:
    """A backbone whose penultimate features are its 1×1×2 input, flattened (pixels / 255, no normalisation)."""
    net = nn.Sequential(nn.Flatten(), nn.Identity(), nn.Linear(2, 2))
    return Backbone(net, {}, "2", [0.0], [1.0], (1, 1, 2), arch="identity")


def hand_godin_net() -> GodinNet:
    """h: w_1 = (1, 0), w_2 = (0, 2); g = σ(BN(0.1·f_1 + 0.2·f_2)) with running mean 0.1 and variance 4."""
    net = GodinNet(identity_backbone(), 2, (1, 1, 2))
    with torch.no_grad():
        net.h.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0]]))
        net.g.weight.copy_(torch.tensor([[0.1, 0.2]]))
        net.g.bias.zero_()
        net.g_norm.running_mean.fill_(0.1)
        net.g_norm.running_var.fill_(4.0)
    return net.eval()


def test_godin_head_and_loss_by_hand():
    """f = (3, 4): h^C = (0.6, 0.8); g = σ((1.1 − 0.1)/√4) = σ(0.5); f_i = h_i/g; CE on the quotient."""
    net = hand_godin_net()
    x = torch.tensor([[3.0, 4.0]]).view(1, 1, 1, 2)
    h, g = net.parts(x)
    g_hand = 1 / (1 + math.exp(-(1.0 / math.sqrt(4.0 + net.g_norm.eps))))
    assert h.tolist()[0] == pytest.approx([0.6, 0.8], abs=1e-6)
    assert g.item() == pytest.approx(g_hand, rel=1e-6)
    quotient = torch.tensor([0.6, 0.8]) / g_hand
    assert net(x)[0].tolist() == pytest.approx(quotient.tolist(), rel=1e-5)
    ce = -torch.log_softmax(quotient, 0)[1].item()
    assert GodinTask().loss(net, x, torch.tensor([1])).item() == pytest.approx(ce, rel=1e-5)
    # training mode: a batch of one is normalised with the running statistics (no error), a batch of two with its own
    net.train()
    assert net(x)[0].tolist() == pytest.approx(net.eval()(x)[0].tolist(), rel=1e-6)
    two = torch.tensor([[3.0, 4.0], [1.0, 0.0]]).view(2, 1, 1, 2)  # g's pre-activations 1.1 and 0.1: BN → ±1
    g_train = net.train().parts(two)[1]
    assert g_train.tolist() == pytest.approx([1 / (1 + math.exp(-1)), 1 / (1 + math.exp(1))], rel=1e-4)


def test_godin_h_gets_no_weight_decay_from_the_trainer():
    """The trainer's SGD (Nesterov, momentum 0.9) with weight decay 0.1 and lr 0.1, one step on zero gradients:
    d = 0.1·p, d + 0.9·d = 0.19·p, so every parameter shrinks by 1 − 0.019 but h's weights, which the paper
    exempts (GodinNet.no_weight_decay, read by the trainer's parameter groups)."""
    from oodbench.models.train import make_optimizer, parameter_groups

    net = hand_godin_net()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    cfg = TrainConfig(optimizer="sgd", lr=0.1, momentum=0.9, weight_decay=0.1)
    opt = make_optimizer(parameter_groups(net), cfg)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    for n, p in net.named_parameters():
        expected = before[n] if n == "h.weight" else before[n] * (1 - 0.019)
        assert torch.allclose(p.detach(), expected), n
    assert not torch.equal(net.g.weight, before["g.weight"])


def test_godin_input_preprocessing_by_hand():
    """x̃ = x + ε·sign(∇_x S(x)). For S = max_i h_i = cos(x, e_2) at x = (30, 40)/255 the gradient's sign is
    (−1, +1); for S = g the sign of σ'·w_g/√var is (+1, +1)."""
    net = hand_godin_net()
    image = ImageSet(torch.tensor([30, 40], dtype=torch.uint8).view(1, 1, 1, 2), torch.zeros(1, dtype=torch.long), "h")
    view = FeatureView(image, net.backbone)
    det = GODIN(epsilon=0.02)
    det.net_, det.net_key_, det.fitted_epsilon_ = net, "by-hand", {"h": 0.01, "g": 0.01}
    x = torch.tensor([30.0, 40.0]) / 255
    x_h = x + 0.02 * torch.tensor([-1.0, 1.0])
    assert det.score_samples(view).item() == pytest.approx((x_h[1] / x_h.norm()).item(), rel=1e-5)
    x_g = x + 0.02
    z = (0.1 * x_g[0] + 0.2 * x_g[1] - 0.1) / math.sqrt(4.0 + net.g_norm.eps)
    g_det = det.tuned_copy(score="g")
    assert g_det.score_samples(view).item() == pytest.approx(torch.sigmoid(z).item(), rel=1e-5)
    # ε = None: the fitted one (here 0.01) of the chosen score; ε = 0: S(x) itself
    x_fit = x + 0.01 * torch.tensor([-1.0, 1.0])
    assert det.tuned_copy(epsilon=None).score_samples(view).item() == pytest.approx(
        (x_fit[1] / x_fit.norm()).item(), rel=1e-5
    )
    assert det.tuned_copy(epsilon=0.0).score_samples(view).item() == pytest.approx(0.8, rel=1e-5)


def test_vos_uncertainty_loss_and_weighted_energy_by_hand_and_as_pytorch_ood():
    """−E_w = log Σ ReLU(w_k) e^{f_k}; φ = Linear(1, 2) on it, real → 1, virtual → 0, mean cross-entropy."""
    net = VOSNet(nn.Identity(), 2)
    with torch.no_grad():
        net.energy_weight.copy_(torch.tensor([1.0, 0.5]))
        net.phi.weight.copy_(torch.tensor([[0.0], [1.0]]))
        net.phi.bias.zero_()
    real, virtual = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 0.0]])
    e_r, e_v = math.log(math.e + 0.5), math.log(1.5)
    assert weighted_energy(real, net.energy_weight).item() == pytest.approx(e_r, rel=1e-6)
    assert weighted_energy(real, torch.tensor([1.0, -3.0])).item() == pytest.approx(1.0, rel=1e-6)  # clipped: out
    hand = (math.log1p(math.exp(-e_r)) + math.log1p(math.exp(e_v))) / 2
    assert uncertainty_loss(net, real, virtual).item() == pytest.approx(hand, rel=1e-6)
    # pytorch-ood's VOSRegLoss feeds the energy E = −(ours) to its φ: the same loss with φ's slope negated
    g = torch.Generator().manual_seed(0)
    real, virtual = torch.randn(16, 5, generator=g), 3 * torch.randn(5, 5, generator=g)
    net = VOSNet(nn.Identity(), 5)
    phi, weights = nn.Linear(1, 2), nn.Linear(5, 1)
    with torch.no_grad():
        phi.weight.copy_(-net.phi.weight)
        phi.bias.copy_(net.phi.bias)
        weights.weight.copy_(net.energy_weight[None])
    theirs = pood.loss.VOSRegLoss(phi, weights)
    reference = theirs._calculate_reg_loss(theirs._energy(real), theirs._energy(virtual))
    assert uncertainty_loss(net, real, virtual).item() == pytest.approx(reference.item(), rel=1e-5)


def vos_task(counts: list[int], queue: int) -> VOSTask:
    return VOSTask(torch.tensor(counts), 1, queue, sample_from=100, select=1, weight=0.1, start=0)


def test_vos_queue_is_a_ring_buffer_of_each_class_latest_features_by_hand():
    task = vos_task([5, 5], queue=3)
    task.enqueue(torch.tensor([[1.0], [2.0], [3.0]]), torch.tensor([0, 0, 1]))
    assert task.queue[:, :, 0].tolist() == [[1, 2, 0], [3, 0, 0]] and task.filled.tolist() == [2, 1]
    assert not task.ready
    # class 0 gets four: the last three are kept (4 is dropped), written from its pointer on
    task.enqueue(torch.tensor([[4.0], [5.0], [6.0], [7.0], [8.0], [9.0]]), torch.tensor([0, 0, 0, 0, 1, 1]))
    assert sorted(task.queue[0, :, 0].tolist()) == [5, 6, 7] and task.queue[1, :, 0].tolist() == [3, 8, 9]
    assert task.ready and task.ptr.tolist() == [0, 0]
    assert vos_task([5, 2], queue=3).length == 2  # never longer than the smallest class: it could not fill
    absent = vos_task([5, 0, 4], queue=3)  # a class without training samples has no queue to wait for
    assert absent.length == 3 and absent.present.tolist() == [0, 2]


def test_vos_gaussians_and_lowest_likelihood_draws_by_hand():
    """Shared covariance over the centred queues + 1e-4·I (eq. 2); the kept draws are those of lowest density
    under N(μ_c, Σ) as torch.distributions computes it (the official code's ranking)."""
    means, cov = tied_gaussian(torch.tensor([[[1.0], [3.0]], [[10.0], [14.0]]]))
    assert means[:, 0].tolist() == [2.0, 12.0] and cov.item() == pytest.approx((1 + 1 + 4 + 4) / 4 + 1e-4)
    g = torch.Generator().manual_seed(1)
    a = torch.randn(3, 3, generator=g, dtype=torch.float64)
    cov = a @ a.T + 0.5 * torch.eye(3, dtype=torch.float64)
    means = torch.randn(2, 3, generator=g, dtype=torch.float64)
    z = torch.randn(2, 50, 3, generator=g)
    ours = lowest_likelihood(means, cov, z, select=2).view(2, 2, 3)
    chol = torch.linalg.cholesky(cov)
    for c in range(2):
        draws = means[c] + z[c].double() @ chol.T
        density = torch.distributions.MultivariateNormal(means[c], covariance_matrix=cov).log_prob(draws)
        expected = draws[(-density).topk(2).indices]
        assert torch.allclose(ours[c], expected, atol=1e-10)


@pytest.fixture(scope="module")
def fmnist(data_root):
    """FashionMNIST train (3,000) for the methods' own networks; FashionMNIST test: 300 ID validation samples and
    1,000 ID test samples; 1,000 MNIST test samples (OOD). The views' LeNet is untrained: both methods score with
    networks of their own."""
    reg, ctx = registries(), LoadContext(data_root)
    train = reg.datasets.get("fashionmnist").load("train", ctx).head(3000)
    test = reg.datasets.get("fashionmnist").load("test", ctx).head(1300)
    ood = reg.datasets.get("mnist").load("test", ctx).head(1000)
    factory = reg.backbones.get("lenet")
    spec = ModelSpec("lenet", "fashionmnist", train.shape, 10, TrainConfig(epochs=1), train_limit=3000)
    model = factory.build(train.shape, 10).eval()
    supplies = Supplies(ModelProvider(spec, factory, train, None, "cpu"))
    views = [
        FeatureView(d, model) for d in (train, test.subset(torch.arange(300)), test.subset(torch.arange(300, 1300)))
    ]
    return (*views, FeatureView(ood, model)), supplies


def separation(det, id_view: FeatureView, ood_view: FeatureView) -> float:
    s_id = validate_scores(det, det.score_samples(id_view), len(id_view))
    s_ood = validate_scores(det, det.score_samples(ood_view), len(ood_view))
    return auroc(s_id, s_ood)


def test_godin_trains_on_real_data_and_chooses_epsilon_on_id_validation_only(fmnist):
    (_, val, id_test, ood), supplies = fmnist
    det = GODIN(epochs=2, batch_size=64).fit(val, supplies)  # fit is given the ID validation split
    losses = det.train_log_["epoch_loss"]
    assert det.train_log_["source"] == "trained" and np.isfinite(losses).all() and losses[1] < losses[0], losses
    for score in ("h", "g"):  # ε maximises the mean score of the ID validation samples (§3.3)
        means = [float(det.tuned_copy(score=score, epsilon=e).score_samples(val).mean()) for e in PAPER_EPSILONS]
        assert det.fitted_epsilon_[score] == PAPER_EPSILONS[int(np.argmax(means))]
        assert means == pytest.approx(det.validation_means_[score], rel=1e-6)
    plain = separation(det.tuned_copy(epsilon=0.0), id_test, ood)
    chosen = separation(det, id_test, ood)
    print(f"G-ODIN (2 epochs, 3,000 images) AUROC FashionMNIST vs MNIST: ε = 0 {plain:.1f}, ID-val ε {chosen:.1f}")
    assert plain > 60  # the decomposed confidence alone separates; the pre-processing need not help here
    assert det.describe_fit()["fitted_on"] == "ID validation, 300"


def test_vos_trains_on_real_data_with_virtual_outliers_and_agrees_with_pytorch_ood(fmnist):
    (train, _, id_test, ood), supplies = fmnist
    det = VOS(epochs=2, start_epoch=0, queue=20).fit(train, supplies)
    log = det.train_log_
    assert log["source"] == "trained" and log["queue_length"] == 20
    assert np.isfinite(log["epoch_loss"]).all() and log["epoch_loss"][1] < log["epoch_loss"][0], log["epoch_loss"]
    assert set(log["virtual_outliers"]) == {1, 2} and min(log["virtual_outliers"].values()) > 0
    assert all(math.isfinite(v) for v in log["uncertainty_loss"].values())
    value = separation(det, id_test, ood)
    print(f"VOS (2 epochs, 3,000 images) energy AUROC FashionMNIST vs MNIST: {value:.1f}")
    assert value > 75
    x = torch.cat([id_test.imageset.images, ood.imageset.images]).float() / 255
    with torch.no_grad():
        logits = det.net_.backbone(x)  # pytorch-ood scores the trained network's logits of the same images
    ours = torch.cat([det.score_samples(id_test), det.score_samples(ood)])
    weighted = det.tuned_copy(score="weighted-energy")
    ours_weighted = torch.cat([weighted.score_samples(id_test), weighted.score_samples(ood)])
    rho_energy = agree(ours, pood.detector.EnergyBased.score(logits))
    rho_weighted = agree(ours_weighted, pood.detector.WeightedEBO.score(logits, det.net_.energy_weight.detach()))
    print(f"Spearman vs pytorch-ood: energy {rho_energy:.4f}, weighted energy {rho_weighted:.4f}")
    # the uncertainty branch's log-odds of ID: log p_1 − log p_0 of φ(−E_w), the class posterior of φ's two logits
    with torch.no_grad():
        log_p = torch.log_softmax(det.net_.phi(weighted.score_samples(id_test)[:, None]), dim=1)
    odds = det.tuned_copy(score="uncertainty").score_samples(id_test)
    assert torch.allclose(odds, log_p[:, 1] - log_p[:, 0], atol=1e-4)


def test_vos_regulariser_waits_for_the_start_epoch(data_root):
    reg, ctx = registries(), LoadContext(data_root)
    train = reg.datasets.get("fashionmnist").load("train", ctx).head(600)
    factory = reg.backbones.get("lenet")
    spec = ModelSpec("lenet", "fashionmnist", train.shape, 10, TrainConfig(epochs=1), train_limit=600)
    supplies = Supplies(ModelProvider(spec, factory, train, None, "cpu"))
    view = FeatureView(train, factory.build(train.shape, 10).eval())
    det = VOS(epochs=2, start_epoch=1, queue=10, batch_size=64).fit(view, supplies)
    assert set(det.train_log_["virtual_outliers"]) == {2}  # epoch 1 only fills the queues
    assert det.train_log_["virtual_outliers"][2] == 10 * math.ceil(600 / 64)  # one per class per step
