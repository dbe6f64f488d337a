"""Score values of the detectors that bring their own networks or statistics (issue 29, item 4), on tiny fixed
weights and 2×2 images worked out by hand: OpenMax, Deep Ensemble, Outlier Exposure, the autoencoders (and the
``+`` division by the image's entropy), the abnormality module and the DEC embedding model (and ``+centre``).

Every expected value below is written from the paper's equation with scalar arithmetic, independently of the
vectorised code it checks; a constant or negated score fails each test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from oodbench_builtins.detectors.abnormality import AbnormalityNet
from oodbench_builtins.detectors.dec_embedding import DECNet
from torch import nn

from oodbench.data.imageset import ImageSet
from oodbench.models.backbones import Backbone
from oodbench.models.features import FeatureView
from oodbench.plugins.manager import registries

SHAPE = (1, 2, 2)


def det(name, **params):
    return registries().detectors.get(name)(**params)


def linear_backbone(weight: list[list[float]]) -> Backbone:
    """logits = W · x for a flattened 2×2 image x in [0, 1] (no normalisation); penultimate = x."""
    head = nn.Linear(4, len(weight), bias=False)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(weight))
    return Backbone(nn.Sequential(nn.Flatten(), nn.Identity(), head), {}, "2", [0.0], [1.0], SHAPE, arch="hand")


def view(pixels: list[list[int]], model: Backbone | None = None) -> FeatureView:
    """Images given as four uint8 pixels each (255 ↦ 1.0)."""
    images = torch.tensor(pixels, dtype=torch.uint8).view(-1, *SHAPE)
    model = model or linear_backbone([[0.0] * 4, [0.0] * 4])
    return FeatureView(ImageSet(images, torch.zeros(len(images), dtype=torch.long), "hand"), model)


def softmax(z: list[float]) -> list[float]:
    e = [math.exp(v) for v in z]
    return [v / sum(e) for v in e]


def test_openmax_scores_minus_the_unknown_probability():
    """Bendale & Boult 2016, Alg. 2: w_k = 1 − (α − i + 1)/α · CDF_k(‖z − μ_k‖) for rank i, ẑ_k = z_k w_k,
    ẑ_0 = Σ z_k (1 − w_k); score −softmax([ẑ_0, ẑ])_0. Weibull shape 1, scale 1: CDF(d) = 1 − e^(−d)."""
    from oodbench.plugins.testing import synthetic_view

    om = det("openmax", alpha=2)
    om.means_ = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    om.weibull_ = np.array([[1.0, 0.0, 1.0], [1.0, 0.0, 1.0]])
    cdf = lambda d: 1 - math.exp(-d)  # noqa: E731

    def by_hand(z0: float, z1: float) -> float:
        d = [math.dist((z0, z1), (2, 0)), math.dist((z0, z1), (0, 2))]
        first, second = (0, 1) if z0 > z1 else (1, 0)  # rank 1 gets weight α/α = 1, rank 2 (α−1)/α = 1/2
        w = [0.0, 0.0]
        w[first], w[second] = 1 - cdf(d[first]), 1 - 0.5 * cdf(d[second])
        z = [z0, z1]
        unknown = sum(z[k] * (1 - w[k]) for k in range(2))
        return -softmax([unknown, z[0] * w[0], z[1] * w[1]])[0]

    points = [(2.0, 0.0), (1.5, 0.5), (0.2, 3.0)]
    s = om.score_samples(synthetic_view({"logits": torch.tensor(points)}))
    assert s.tolist() == pytest.approx([by_hand(*p) for p in points], abs=1e-6)
    assert s[0] == pytest.approx(-1 / (math.exp(2) + 2), abs=1e-6)  # at its class mean: CDF 0, unknown logit 0
    assert s[0] > s[1]  # farther from the mean → more probability on "unknown"


def test_openmax_fits_means_of_correctly_classified_samples_only():
    from oodbench.plugins.testing import synthetic_view

    logits = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 5.0], [0.0, 9.0]])
    labels = torch.tensor([0, 0, 1, 0])  # the last one is class 0 predicted as 1: left out of both means
    om = det("openmax", tailsize=2).fit(synthetic_view({"logits": logits}, labels))
    assert om.means_.tolist() == [[2.0, 0.0], [0.0, 5.0]]
    # class 0's tail: distances {1, 1} have no spread → the degenerate fit keeps their mean as the scale
    assert om.weibull_[0].tolist() == [1.0, 0.0, 1.0]


def test_deep_ensemble_scores_the_max_of_the_averaged_softmax():
    """Lakshminarayanan et al. 2017 as paper 003's DE: S(x) = max_k (1/M) Σ_m softmax(f_m(x))_k."""
    a = linear_backbone([[2.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    b = linear_backbone([[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0]])
    de = det("deep-ensemble", members=2)
    de.models_, de.keys_ = [a, b], ["run", "member-1"]
    data = view([[255, 0, 0, 0], [0, 255, 0, 0], [0, 0, 0, 0]], a)
    agree = softmax([2.0, 0.0])[0]  # both members: logits (2, 0)
    split = max((p + q) / 2 for p, q in zip(softmax([2.0, 0.0]), softmax([0.0, 2.0])))  # members disagree
    assert de.score_samples(data).tolist() == pytest.approx([agree, split, 0.5], abs=1e-6)
    assert split == pytest.approx(0.5)


def test_outlier_exposure_scores_msp_of_its_fine_tuned_network():
    """Hendrycks et al. 2019: the fine-tuned network's maximum softmax probability, not the run's backbone."""
    oe = det("outlier-exposure")
    oe.net_, oe.net_key_ = linear_backbone([[3.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), "hand"
    data = view([[255, 0, 0, 0], [0, 255, 0, 0]])  # the run's backbone has zero weights: its MSP is 0.5
    assert oe.score_samples(data).tolist() == pytest.approx([softmax([3.0, 0.0])[0], 0.5], abs=1e-6)


class Halve(nn.Module):
    def forward(self, x):
        return 0.5 * x


@pytest.mark.parametrize("name", ["ae", "memae", "lamae"])
def test_reconstruction_error_and_the_entropy_division(name):
    """Paper 002: S(x) = −‖x − x̂‖²; the ``+`` variant divides by log(H(x) + 1) + γ (eq. 4), H in bits (eq. 3).
    With x̂ = x/2: ‖x − x̂‖² = ¼ Σ x²."""
    pixels = [[255, 0, 0, 0], [255, 255, 0, 0], [255, 255, 255, 0]]
    data = view(pixels)
    errors = [0.25 * sum(p == 255 for p in img) for img in pixels]
    entropy = [-sum(q * math.log2(q) for q in (n / 4, 1 - n / 4) if q > 0) for n in (1, 2, 3)]
    for variant, expected in (
        (name, [-e for e in errors]),
        (f"{name}+", [-e / (math.log(h + 1) + 1e-9) for e, h in zip(errors, entropy)]),
    ):
        d = det(variant)
        d.net_, d.net_key_ = Halve(), f"halve-{variant}"
        assert d.score_samples(data).tolist() == pytest.approx(expected, rel=1e-5)
    assert entropy[0] == entropy[2]  # one pixel of four or three of four: same histogram entropy, 0.811 bits
    assert entropy[1] == 1.0


def test_abnormality_module_scores_its_classifier_logit():
    """Paper 004 §4: the abnormality classifier reads [softmax(z), penultimate h, (x̂ − x)²] and its logit is the
    score. Fixed weights: decoder x̂ ≈ 0, one hidden unit u = p_0 + Σ (x̂ − x)², logit = 3 − u."""
    backbone = linear_backbone([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    net = AbnormalityNet(backbone, SHAPE, hidden=1)
    with torch.no_grad():
        for p in net.decoder.parameters():
            p.zero_()
        net.decoder[2].bias.fill_(-100.0)  # sigmoid(−100) ≈ 0: x̂ = 0
        first, last = net.abnormality[0], net.abnormality[2]
        first.weight.copy_(torch.tensor([[1.0, 0.0] + [0.0] * 4 + [1.0] * 4]))
        first.bias.zero_()
        last.weight.fill_(-1.0)
        last.bias.fill_(3.0)
    am = det("abnormality-module")
    am.net_, am.net_key_ = net.eval(), "hand"
    pixels = [[0, 0, 0, 0], [255, 0, 0, 0], [0, 255, 255, 0]]
    p0 = [0.5, softmax([1.0, 0.0])[0], 0.5]  # the frozen classifier's softmax, class 0
    expected = [3 - (p + sum(v == 255 for v in img)) for p, img in zip(p0, pixels)]
    assert am.score_samples(view(pixels)).tolist() == pytest.approx(expected, abs=1e-5)


def test_dec_embedding_scores_reconstruction_and_distance_to_the_assigned_centre():
    """Paper 000: ``dec-embedding`` S(x) = −‖x − x̂‖²; ``+centre`` S(x) = −(‖x − x̂‖² + λ·min_j ‖z − c_j‖²) with
    c_j = (1 − α)μ_j + αμ'_j (§III-B, §V). Zero weights: z = the encoder's last bias, x̂ = the decoder's last bias."""
    net = DECNet(SHAPE, num_classes=2, dim=2)
    with torch.no_grad():
        for p in net.parameters():
            p.zero_()
        net.encoder[-1].bias.copy_(torch.tensor([1.0, 0.0]))  # z = (1, 0) for every image
        net.decoder[-1].bias.fill_(0.25)  # x̂ = 0.25 everywhere
        net.centres.copy_(torch.tensor([[1.0, 0.0], [0.0, 3.0]]))  # μ
        net.label_centres.copy_(torch.tensor([[3.0, 0.0], [0.0, 1.0]]))  # μ'; α = ½ → c = (2, 0), (0, 2)
    pixels = [[255, 0, 0, 0], [255, 255, 0, 0]]
    errors = [sum((0.25 - v / 255) ** 2 for v in img) for img in pixels]  # 0.75 and 1.25
    nearest = min((1 - 2) ** 2 + 0**2, 1**2 + 2**2)  # ‖(1, 0) − c_j‖²: 1 and 5
    for name, weight, expected in (
        ("dec-embedding", 1.0, [-e for e in errors]),
        ("dec-embedding+centre", 10.0, [-(e + 10.0 * nearest) for e in errors]),
    ):
        d = det(name, distance_weight=weight)
        d.net_, d.net_key_ = net.eval(), f"hand-{name}"
        assert d.score_samples(view(pixels)).tolist() == pytest.approx(expected, abs=1e-5)
    assert errors == pytest.approx([0.75, 1.25])
